/**
 * Lending under the owner's own CPU load (issue 17), with real processes: CPU burners outside
 * cutter (one busy `node` per core) push the owner's CPU over the agent's `--lend-max-owner-cpu`;
 * the agent stops its running exec task (SIGSTOP of its process group: state T in /proc/PID/stat)
 * and pauses its running container (`docker inspect` State.Paused), within a few 1 s samples, and
 * continues them once the burners stop; both tasks then finish.
 *
 * A stress-group file (vitest.config.ts): it runs alone, after the rest of the pass, because a
 * burner can only be told from the machine's other load on a quiet machine. When the machine is
 * busy anyway (over BUSY_BASELINE % before any burner) the checks are skipped and say so; the power
 * double tests the same suspend and resume paths deterministically (lending-exec, lending-docker).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { BURNER_THRESHOLD, BUSY_BASELINE, burners, hostBusyPercent, lendingOf, NOT_STOPPED, procState } from './lending-helpers.js';
import { docker, dockerExec, showTask, t, until, watch } from './recovery-helpers.js';

const engine = needs('docker');
const baseline = await hostBusyPercent();
const busy = baseline > BUSY_BASELINE ? ` [skipped: machine busy (${Math.round(baseline)}% CPU without a burner)]` : '';
/** Runs until /tmp/go exists in the container, then exits 0. */
const GATED_OK = ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.2; done; echo finished'];
const paused = (ref: string) => docker('inspect', '-f', '{{.State.Paused}}', ref) === 'true';

describe('lending: the owner burns CPU outside cutter', () => {
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

  it(`an exec task is stopped while the owner burns CPU, and continued after${busy}`, async (ctx) => {
    if (busy) return ctx.skip();
    const statuses = await watch(url, t.allNodeStatus());
    const events = await watch(url, t.allTaskEvents());
    agents.push(
      await startAgent(url, 'workstation', ['--allow-exec', '--lend-max-owner-cpu', String(BURNER_THRESHOLD), '--lend-sample', '1s']),
    );
    const gate = join(tempDir('cutter-lend-'), 'go');
    const burn: { stop: () => void }[] = [];
    try {
      await until(() => lendingOf(statuses.messages, 'workstation')?.state === 'lending', 20_000);
      const r = await cli(['run', '-d', '--node', 'workstation', 'exec', '--', 'sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.2; done`], {
        broker: url,
      });
      const id = r.stdout.trim();
      const started = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started'));
      const pid = Number(started.ref);
      const burnedAt = Date.now();
      burn.push(burners());
      await until(() => procState(pid) === 'T', 20_000, 100);
      console.log(`exec task stopped ${Date.now() - burnedAt} ms after the burners started (1 s samples)`);
      // The agent stops the task first, then announces why: wait for the announcement.
      await until(() => lendingOf(statuses.messages, 'workstation')?.state === 'suspended', 10_000);
      expect(lendingOf(statuses.messages, 'workstation')?.reason).toMatch(new RegExp(`^owner CPU \\d+% > ${BURNER_THRESHOLD}%$`));
      burn.pop()?.stop();
      await until(() => procState(pid) !== 'T', 30_000, 100);
      expect(procState(pid)).toMatch(NOT_STOPPED);
      writeFileSync(gate, '');
      await until(async () => (await showTask(url, id)).state === 'succeeded', 30_000);
    } finally {
      for (const b of burn) b.stop();
      await statuses.close();
      await events.close();
    }
  }, 120_000);

  it.skipIf(engine.skip)(
    `a docker task is paused while the owner burns CPU, and unpaused after${busy}${engine.tag}`,
    async (ctx) => {
      if (busy) return ctx.skip();
      ensureTestImage();
      const statuses = await watch(url, t.allNodeStatus());
      const events = await watch(url, t.allTaskEvents());
      agents.push(await startAgent(url, 'dworkstation', ['--lend-max-owner-cpu', String(BURNER_THRESHOLD), '--lend-sample', '1s']));
      const burn: { stop: () => void }[] = [];
      try {
        await until(() => lendingOf(statuses.messages, 'dworkstation')?.state === 'lending', 20_000);
        const r = await cli(['run', '-d', '--node', 'dworkstation', 'docker', 'run', TEST_IMAGE, ...GATED_OK], { broker: url });
        const id = r.stdout.trim();
        const started = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started'), 60_000);
        const ref = String(started.ref);
        const burnedAt = Date.now();
        burn.push(burners());
        await until(() => paused(ref), 20_000, 200);
        console.log(`container paused ${Date.now() - burnedAt} ms after the burners started (1 s samples)`);
        // The agent stops the task first, then announces why: wait for the announcement.
        await until(() => lendingOf(statuses.messages, 'dworkstation')?.state === 'suspended', 10_000);
        expect(lendingOf(statuses.messages, 'dworkstation')?.reason).toMatch(new RegExp(`^owner CPU \\d+% > ${BURNER_THRESHOLD}%$`));
        burn.pop()?.stop();
        await until(() => !paused(ref), 30_000, 200);
        dockerExec(ref, 'touch', '/tmp/go');
        await until(async () => (await showTask(url, id)).state === 'succeeded', 30_000);
        const logs = await cli(['logs', id], { broker: url });
        expect(logs.stdout).toBe('finished\n');
      } finally {
        for (const b of burn) b.stop();
        await statuses.close();
        await events.close();
      }
    },
    180_000,
  );
});
