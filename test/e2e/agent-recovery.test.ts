/**
 * Re-adoption across an agent restart, with real processes: an agent SIGKILLed while its container
 * runs (or after it exited) is started again with the same node id and reports the container's
 * result itself, with one container only. Runs against `cutter server`; skipped when no Docker
 * engine answers (except in CI, CUTTER_REQUIRE_ALL=1).
 *
 * Drain on SIGTERM is in agent-drain.test.ts, fencing (the agent alone) in agent-fencing.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, type Daemon } from '../harness.js';
import { type LogEvent, logText } from '../../shared/log-data.js';
import { needs } from '../services.js';
import { t, GATED, GATED_5, until, watch, containersOf, release, showTask, nodeView } from './recovery-helpers.js';

const engine = needs('docker');

describe.skipIf(engine.skip)(`re-adoption of containers after an agent restart${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await server?.stop();
  });

  it('a restarted agent re-adopts a running container: streams its new output and reports its exit code; one container only', async () => {
    const events = await watch(url, t.allTaskEvents());
    try {
      const first = await startAgent(url, 'phoenix', ['--lost-after', '60s']);
      agents.push(first);
      const r = await cli(['run', '-d', '--node', 'phoenix', 'docker', 'run', TEST_IMAGE, ...GATED], { broker: url });
      expect(r.code, r.stderr).toBe(0);
      const id = r.stdout.trim();
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      await until(() => ofTask().some((e) => e.type === 'log' && logText(e as unknown as LogEvent).includes('before')));

      await first.stop('SIGKILL');
      const restartedAt = Date.now();
      const second = await startAgent(url, 'phoenix', ['--lost-after', '60s']);
      agents.push(second);
      const adopted = await second.waitForLog((l) => l.msg === 're-adopted task' && l.taskId === id);
      expect(adopted).toMatchObject({ attempt: 1 });
      // Still running, and the restart created no second container.
      expect(containersOf(id).split('\n')).toEqual([expect.stringMatching(/ running$/)]);
      // The heartbeat lists it: that is how the controller learns it lives on.
      await until(async () => (await nodeView(url, 'phoenix'))?.status.running.some((x) => x.taskId === id && x.attempt === 1));
      expect((await showTask(url, id)).state).toBe('running');

      release(id);
      const result = await until(() => ofTask().find((e) => e.type === 'result'), 15_000);
      expect(result).toMatchObject({ attempt: 1, node: 'phoenix', exitCode: 7, oomKilled: false, cancelled: false });
      // Events of the re-adopted run count on from the restart time, above the first process's.
      expect(result.seq).toBeGreaterThanOrEqual(restartedAt);
      const logs = ofTask()
        .filter((e) => e.type === 'log')
        .map((e) => logText(e as unknown as LogEvent))
        .join('');
      expect(logs).toBe('before\ndone\n'); // new output only: `before` is not replayed
      await until(() => containersOf(id) === '');
      expect(ofTask().every((e) => e.attempt === 1)).toBe(true);

      // Controller side: the node came back within its lost-after window, so the re-adopted run's result counts.
      const final = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'failed' || s.state === 'succeeded' || s.state === 'lost' ? s : null;
      }, 15_000);
      expect(final).toMatchObject({ state: 'failed', exitCode: 7, attempt: 1, node: 'phoenix' });
      expect(containersOf(id)).toBe('');
    } finally {
      await events.close();
    }
  });

  it('a container that exited while its agent was down is reported with its exit code when the agent is back', async () => {
    const events = await watch(url, t.allTaskEvents());
    try {
      const first = await startAgent(url, 'lazarus', ['--lost-after', '60s']);
      agents.push(first);
      const r = await cli(['run', '-d', '--node', 'lazarus', 'docker', 'run', TEST_IMAGE, ...GATED_5], { broker: url });
      const id = r.stdout.trim();
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      await until(() => ofTask().some((e) => e.type === 'started'));

      await first.stop('SIGKILL');
      const releasedAt = Date.now();
      release(id);
      await until(() => containersOf(id).endsWith(' exited'), 10_000);
      const restartedAt = Date.now();
      const second = await startAgent(url, 'lazarus', ['--lost-after', '60s']);
      agents.push(second);

      const result = await until(() => ofTask().find((e) => e.type === 'result'), 10_000);
      expect(result).toMatchObject({ attempt: 1, node: 'lazarus', exitCode: 5, oomKilled: false, cancelled: false });
      // Times are the engine's: it finished after the test let it go, before the agent came back.
      const { startedAt, finishedAt } = result as { startedAt: number; finishedAt: number };
      expect(startedAt).toBeLessThan(releasedAt);
      expect(finishedAt).toBeGreaterThanOrEqual(releasedAt - 1_000); // engine and test clocks are the same host's; allow rounding
      expect(finishedAt).toBeLessThan(restartedAt);
      await until(() => containersOf(id) === '');

      // Controller side.
      const final = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'failed' || s.state === 'succeeded' || s.state === 'lost' ? s : null;
      }, 15_000);
      expect(final).toMatchObject({ state: 'failed', exitCode: 5, attempt: 1 });
    } finally {
      await events.close();
    }
  });
});
