/**
 * Lending with real processes and no Docker (issue 17). An exec task is stopped (SIGSTOP of its
 * process group: state T in /proc/PID/stat) when its node stops lending and continued when it
 * lends again; past the preempt time it is stopped, reported PREEMPTED, and its restart policy runs
 * it again on another node, where it succeeds. The trigger is the power double (a directory shaped
 * like /sys/class/power_supply, AC `online` 0 → `suspended: on battery`); CPU burners outside
 * cutter (the owner's own work) are lending-burner.test.ts, run alone in the stress group.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { lendingOf, NOT_STOPPED, powerDouble, procState } from './lending-helpers.js';
import { showTask, t, until, watch } from './recovery-helpers.js';

describe('lending: an exec task on a notebook', () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    for (const a of agents) await a.stop('SIGKILL');
    await server?.stop();
  });

  it('is stopped on battery (state T), continued on AC, and preempted to another node past the grace time', async () => {
    const statuses = await watch(url, t.allNodeStatus());
    const events = await watch(url, t.allTaskEvents());
    const power = powerDouble();
    // A long preempt time while the checks below run; shortened at runtime (cutter nodes policy) before the preemption.
    const sample = ['--lend-sample', '1s', '--lend-preempt-after', '10m'];
    agents.push(await startAgent(url, 'notebook', ['--allow-exec', '--lend-ac-only', '--power-supply-dir', power.dir, ...sample]));
    const gate = join(tempDir('cutter-lend-'), 'go');
    try {
      await until(() => lendingOf(statuses.messages, 'notebook')?.state === 'lending', 20_000);
      const r = await cli(['run', '-d', 'exec', '--', 'sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.2; done; echo finished`], {
        broker: url,
      });
      expect(r.code).toBe(0);
      const id = r.stdout.trim();
      const started = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started' && e.attempt === 1));
      expect(started.node).toBe('notebook');
      const pid = Number(started.ref);
      expect(procState(pid)).toMatch(NOT_STOPPED);

      power.set(false);
      await until(() => procState(pid) === 'T', 20_000, 100);
      await until(() => lendingOf(statuses.messages, 'notebook')?.state === 'suspended', 10_000);
      expect(lendingOf(statuses.messages, 'notebook')).toMatchObject({ state: 'suspended', reason: 'on battery', suspended: [`${id}:1`] });
      const list = await cli(['nodes', 'list'], { broker: url });
      expect(list.stdout).toMatch(/notebook .*suspended: on battery/);
      const refused = await cli(['run', '--no-queue', 'exec', '--', 'true'], { broker: url });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('notebook: not lending now: suspended: on battery');

      power.set(true);
      await until(() => procState(pid) !== 'T', 20_000, 100);
      expect(procState(pid)).toMatch(NOT_STOPPED);
      await until(() => lendingOf(statuses.messages, 'notebook')?.state === 'lending', 10_000);

      // Another node joins; the owner shortens the preempt time at runtime; the notebook goes on battery for longer than that.
      agents.push(await startAgent(url, 'desktop', ['--allow-exec']));
      const shorter = await cli(['nodes', 'policy', 'notebook', '--preempt-after', '4s', '--json'], { broker: url });
      expect(shorter.code).toBe(0);
      expect(JSON.parse(shorter.stdout)).toMatchObject({ applied: true, lending: { state: 'lending', policy: { preemptAfterMs: 4_000 } } });
      power.set(false);
      await until(() => procState(pid) === 'T', 20_000, 100);
      const failed = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'failed' && e.attempt === 1), 60_000);
      expect(failed.code).toBe('PREEMPTED');
      expect(String(failed.message)).toMatch(/stopped lending: suspended \d+ s \(on battery\)/);
      await until(() => procState(pid) === undefined, 20_000);
      const again = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started' && e.attempt === 2), 30_000);
      expect(again.node).toBe('desktop');
      expect(lendingOf(statuses.messages, 'notebook')?.state).toBe('closed');

      writeFileSync(gate, '');
      const done = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'succeeded' ? s : null;
      }, 30_000);
      expect(done).toMatchObject({ node: 'desktop', attempt: 2 });
      expect(events.messages.filter((e) => e.taskId === id && e.type === 'result')).toHaveLength(1);

      // The owner changes the policy at runtime: AC power no longer required.
      const changed = await cli(['nodes', 'policy', 'notebook', '--ac-only', 'no', '--json'], { broker: url });
      expect(changed.code).toBe(0);
      expect(JSON.parse(changed.stdout)).toMatchObject({ node: 'notebook', applied: true, lending: { policy: { acOnly: false } } });
      await until(() => lendingOf(statuses.messages, 'notebook')?.state === 'lending', 10_000);
    } finally {
      power.set(true);
      await statuses.close();
      await events.close();
    }
  }, 180_000);
});
