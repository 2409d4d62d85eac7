/**
 * Drain on SIGTERM, with real processes: the agent announces `draining`, lets running tasks finish
 * (or stops them after --drain-timeout), then announces `offline` and exits 0.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliBackground, startAgent, startServer, type Daemon } from '../harness.js';
import { t, until, watch, showTask, nodeView, alive } from './recovery-helpers.js';

describe('drain on SIGTERM', () => {
  let server: Daemon;
  let url: string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('announces draining, lets the running task finish with its output, then goes offline and exits 0', async () => {
    const statuses = await watch(url, t.nodeStatus('drainer'));
    const agent = await startAgent(url, 'drainer', ['--allow-exec']);
    const gate = join(mkdtempSync(join(tmpdir(), 'cutter-drain-')), 'go');
    try {
      const run = cliBackground(
        ['run', '--node', 'drainer', 'exec', '--', 'sh', '-c', `echo begun; while [ ! -e ${gate} ]; do sleep 0.1; done; echo finished`],
        url,
      );
      await until(() => run.stdout.includes('begun'));
      agent.child.kill('SIGTERM');

      const view = await until(async () => {
        const n = await nodeView(url, 'drainer');
        return n?.state === 'draining' ? n : null;
      });
      expect(view.status.running).toHaveLength(1);
      // Heartbeats go on while it drains; the agent waits for the task.
      const drainingAt = Date.now();
      await until(() => statuses.messages.some((m) => m.state === 'draining' && Number(m.ts) > drainingAt));
      expect(agent.child.exitCode).toBe(null);

      writeFileSync(gate, '');
      expect(await run.exited).toBe(0);
      expect(run.stdout).toBe('begun\nfinished\n');
      expect(await agent.exited).toBe(0);

      const n = await until(async () => {
        const v = await nodeView(url, 'drainer');
        return v?.state === 'offline' ? v : null;
      });
      expect(n.status.reason).toBe('agent stopped');
      const states = statuses.messages.map((s) => s.state);
      expect(states.indexOf('draining')).toBeGreaterThan(states.indexOf('online'));
      expect(states.at(-1)).toBe('offline');
      expect(states.slice(states.indexOf('draining'), -1).every((s) => s === 'draining')).toBe(true);
    } finally {
      await statuses.close();
      await agent.stop('SIGKILL');
    }
  });

  it('with --drain-timeout 500ms stops a task that would run on, reports it AGENT_SHUTDOWN, and exits 0 within a few seconds', async () => {
    const events = await watch(url, t.allTaskEvents());
    const agent = await startAgent(url, 'impatient', ['--allow-exec', '--drain-timeout', '500ms']);
    try {
      const r = await cli(['run', '-d', '--node', 'impatient', 'exec', '--', 'sleep', '30'], { broker: url });
      const id = r.stdout.trim();
      const started = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started'));
      const pid = Number(started.ref);
      expect(alive(pid)).toBe(true);

      const t0 = Date.now();
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(alive(pid)).toBe(false);
      const failed = events.messages.find((e) => e.taskId === id && (e.type === 'failed' || e.type === 'result'));
      expect(failed).toMatchObject({ type: 'failed', code: 'AGENT_SHUTDOWN', attempt: 1 });
      expect(agent.lines.some((l) => l.msg === 'drain timeout: stopping the tasks left')).toBe(true);

      // Controller side: the attempt is over (the task is rescheduled, or queued for its node).
      const s = await until(async () => {
        const x = await showTask(url, id);
        return x.state !== 'running' && x.state !== 'unknown' ? x : null;
      });
      expect(s.state).not.toBe('running');
    } finally {
      await events.close();
      await agent.stop('SIGKILL');
    }
  });
});
