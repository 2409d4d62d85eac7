/**
 * The Docker engine watch (agent/executors/docker-engine.ts) and a task's wait through an outage
 * (`outlast()`, agent/executors/docker-container.ts), against a fake engine whose ping answers,
 * refuses or hangs on command. The e2e test (test/e2e/docker-engine-fault.test.ts) covers an
 * engine that does not come back in time; these cover one that does.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { outlast, type Run } from '../../agent/executors/docker-container.js';
import { EngineDownError, EngineWatch } from '../../agent/executors/docker-engine.js';
import type { ExecutorContext } from '../../agent/executors/executor.js';
import { CutterError } from '../../shared/errors.js';

type PingMode = 'up' | 'refused' | 'hung';

/** A dockerode stand-in: ping per `mode`, an event stream that never ends, a container per `container`. */
function fakeDocker(state: { mode: PingMode; pings: number }) {
  return {
    ping(opts: { abortSignal: AbortSignal }) {
      state.pings++;
      if (state.mode === 'up') return Promise.resolve('OK');
      if (state.mode === 'refused')
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED /x.sock'), { code: 'ECONNREFUSED' }));
      return new Promise((_, reject) =>
        opts.abortSignal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))),
      );
    },
    getEvents: () => new Promise(() => undefined),
    modem: { demuxStream() {} },
  } as unknown as Docker;
}

const never = <T>() => new Promise<T>(() => undefined);

function ctx(): ExecutorContext & { stderr: string } {
  const c = {
    taskId: 't1',
    attempt: 1,
    node: 'n1',
    memory: 0,
    stderr: '',
    output(_s: 'stdout' | 'stderr', chunk: Buffer) {
      c.stderr += chunk.toString();
    },
    progress() {},
    started() {},
  };
  return c;
}

const run = (): Run => ({ stopRequested: false, graceMs: 1_000, stopped: new AbortController() });

describe('EngineWatch', () => {
  it('gives up on a call that outlives its deadline even when it ignores its abortSignal', async () => {
    const watch = new EngineWatch(fakeDocker({ mode: 'up', pings: 0 }));
    await expect(watch.guard(() => never(), 50)).rejects.toThrow('the Docker engine did not answer within 50 ms');
    expect(watch.state.up).toBe(true);
  });

  it('keeps nothing per call: 30,000 calls with a deadline leave the heap where it was (nodejs/node#54614)', async () => {
    // With AbortSignal.any([the watch's signal, AbortSignal.timeout()]) each call left its composite
    // signal in the long-lived signal's set of dependants on Node 20: 13 MB here.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const watch = new EngineWatch(fakeDocker({ mode: 'up', pings: 0 }));
    const calls = async (n: number) => {
      for (let i = 0; i < n; i++) await watch.guard(() => Promise.resolve(i), 50);
      await new Promise((r) => setTimeout(r, 300)); // past every deadline: what is left stays
    };
    await calls(1_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    await calls(30_000);
    gc();
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(512 * 1024);
  });

  it('marks a hung engine down after two pings without answer, and a wait that never settles (F7) rejects with it', async () => {
    const s = { mode: 'up' as PingMode, pings: 0 };
    const watch = new EngineWatch(fakeDocker(s), { pingMs: 50, timeoutMs: 50 });
    const changes: boolean[] = [];
    watch.onChange((st) => changes.push(st.up));
    watch.start();
    const wait = watch.guard(() => never());
    s.mode = 'hung';
    const t0 = Date.now();
    await expect(wait).rejects.toBeInstanceOf(EngineDownError);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(watch.state).toMatchObject({ up: false, reason: 'Docker engine gave no answer to a ping within 50 ms' });
    // While down every call fails at once, and waitUp() resolves when it answers again.
    await expect(watch.guard(() => Promise.resolve(1))).rejects.toBeInstanceOf(EngineDownError);
    const back = watch.waitUp(5_000);
    s.mode = 'up';
    expect(await back).toBe(true);
    expect(changes).toEqual([false, true]);
    expect(await watch.guard(() => Promise.resolve(1))).toBe(1);
    watch.stop();
  });

  it('a call that fails on the transport checks the engine at once: refused → down; answering → the call’s own error', async () => {
    const s = { mode: 'refused' as PingMode, pings: 0 };
    const watch = new EngineWatch(fakeDocker(s));
    await expect(watch.guard(() => Promise.reject(new Error('socket hang up')))).rejects.toMatchObject({
      reason: 'Docker engine not reachable (connect ECONNREFUSED /x.sock)',
    });
    s.mode = 'up';
    expect(await watch.confirm()).toBe(true);
    await expect(watch.guard(() => Promise.reject(new Error('socket hang up')))).rejects.toThrow('socket hang up');
    // An HTTP answer is the engine speaking: no check.
    const pings = s.pings;
    await expect(watch.guard(() => Promise.reject(Object.assign(new Error('no such container'), { statusCode: 404 })))).rejects.toThrow(
      'no such container',
    );
    expect(s.pings).toBe(pings);
  });
});

describe('a task waiting through an engine outage', () => {
  /** An engine that is down now and answers again after `backAfterMs` (never when undefined). */
  async function outage(backAfterMs: number | undefined, inspect: () => Promise<unknown>, wait = () => never<unknown>()) {
    const s = { mode: 'refused' as PingMode, pings: 0 };
    const engine = new EngineWatch(fakeDocker(s), { pingMs: 20, timeoutMs: 50 });
    engine.start();
    await engine.confirm();
    if (backAfterMs !== undefined) setTimeout(() => (s.mode = 'up'), backAfterMs);
    // Attaching fails (the output is not followed again): the wait goes on regardless.
    const attach = () => Promise.reject(Object.assign(new Error('attach refused'), { statusCode: 500 }));
    const container = { id: 'c0ffee0000000000', inspect, wait, attach } as unknown as Docker.Container;
    const orphans = new Set<string>();
    const c = ctx();
    const first = Promise.reject(new EngineDownError(engine.state.up ? '' : engine.state.reason));
    const result = outlast({ engine, docker: fakeDocker(s), graceMs: 400, orphans }, container, first, run(), c, () => undefined);
    return { result: result.finally(() => engine.stop()), orphans, c };
  }

  it('back in time with the container exited: its exit code', async () => {
    const { result, c } = await outage(100, async () => ({ State: { Running: false, ExitCode: 7 } }));
    expect(await result).toEqual({ StatusCode: 7 });
    expect(c.stderr).toMatch(/stopped answering .*waiting up to 0.4 s/);
  });

  it('back in time with the container still running: followed again and waited on', async () => {
    let waited = 0;
    const { result, c } = await outage(
      100,
      async () => ({ State: { Running: true, ExitCode: 0 } }),
      async () => {
        waited++;
        return { StatusCode: 3 };
      },
    );
    expect(await result).toEqual({ StatusCode: 3 });
    expect(waited).toBe(1);
    expect(c.stderr).toMatch(/answers again; container c0ffee000000 still runs/);
  });

  it('back in time without the container: EXECUTOR_LOST', async () => {
    const { result } = await outage(100, () => Promise.reject(Object.assign(new Error('no such container'), { statusCode: 404 })));
    await expect(result).rejects.toMatchObject({ code: 'EXECUTOR_LOST', message: expect.stringMatching(/is gone after/) });
  });

  it('not back within the grace: EXECUTOR_LOST, and the container is kept for removal when it answers', async () => {
    const t0 = Date.now();
    const { result, orphans } = await outage(undefined, async () => ({ State: { Running: false, ExitCode: 0 } }));
    const err = await result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CutterError);
    expect(err).toMatchObject({ code: 'EXECUTOR_LOST', message: expect.stringMatching(/did not answer again within 0.4 s/) });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect([...orphans]).toEqual(['c0ffee0000000000']);
  });
});
