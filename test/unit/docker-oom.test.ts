/**
 * agent/executors/docker-oom.ts: an exit that looks like an OOM kill (137, a memory limit, not our
 * stop) is inspected again until the engine says OOMKilled or a few tries pass; any other exit is
 * reported from the first inspect at once. The inspections here are scripted answers in the
 * Docker Engine API's shape (`GET /containers/{id}/json`); the race itself (containerd's OOM event
 * after its exit event) is not reproducible on demand, and docker.test.ts checks a real OOM kill.
 */
import type { ContainerInspectInfo } from 'dockerode';
import { describe, expect, it } from 'vitest';
import { OOM_SETTLE_TRIES, settleOomKilled } from '../../agent/executors/docker-oom.js';

const inspected = (exitCode: number, oomKilled: boolean, memory = 64 * 1024 * 1024) =>
  ({ State: { ExitCode: exitCode, OOMKilled: oomKilled }, HostConfig: { Memory: memory } }) as unknown as ContainerInspectInfo;

/** A reinspect that answers `answers` in turn (the last one again after), counting its calls. */
function scripted(answers: (ContainerInspectInfo | undefined)[]) {
  let calls = 0;
  return {
    reinspect: async () => answers[Math.min(calls++, answers.length - 1)],
    calls: () => calls,
  };
}

describe('settleOomKilled', () => {
  it('waits for an OOM kill the engine records after the exit', async () => {
    const s = scripted([inspected(137, false), inspected(137, true)]);
    const info = await settleOomKilled(inspected(137, false), s.reinspect, false);
    expect(info?.State.OOMKilled).toBe(true);
    expect(s.calls()).toBe(2);
  });

  it('reports a SIGKILL that was not an OOM kill after a bounded number of tries', async () => {
    const s = scripted([inspected(137, false)]);
    const info = await settleOomKilled(inspected(137, false), s.reinspect, false);
    expect(info?.State.OOMKilled).toBe(false);
    expect(s.calls()).toBe(OOM_SETTLE_TRIES);
  });

  it('does not wait for other exits, for its own stop, without a memory limit, or when the container is gone', async () => {
    for (const [first, stop] of [
      [inspected(0, false), false],
      [inspected(1, false), false],
      [inspected(137, true), false],
      [inspected(137, false), true],
      [inspected(137, false, 0), false],
      [undefined, false],
    ] as const) {
      const s = scripted([inspected(137, true)]);
      expect(await settleOomKilled(first, s.reinspect, stop)).toBe(first);
      expect(s.calls()).toBe(0);
    }
    const gone = scripted([undefined]);
    expect((await settleOomKilled(inspected(137, false), gone.reinspect, false))?.State.OOMKilled).toBe(false);
    expect(gone.calls()).toBe(1);
  });
});
