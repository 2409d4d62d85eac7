/**
 * A queued task's waiting reason ("needs 8 GiB memory, has 4 GiB free…") is published when it first
 * waits, then at most every WAITING_REFRESH_MS however often the nodes' figures change (stop 28:
 * with ~1,300 queued tasks, rewriting every reason on every placement pass saturated the server's
 * thread and delayed heartbeats and assignments by minutes). A real Controller over a bare
 * in-process Aedes, with a clock the test moves (./clocked-controller.ts); the node is a retained
 * status published by the test, the task a submit on the request topic, as a CLI sends it.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { WAITING_REFRESH_MS } from '../../controller/placement.js';
import type { NodeStatus } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { eventually } from '../harness.js';
import { bareBroker } from '../e2e/recovery-helpers.js';
import { startClockedController } from './clocked-controller.js';

const t = topics('cutter');
const GiB = 1024 ** 3;
const TASK = 'a1b2c3d4e5f6';

describe('a queued task’s waiting reason is refreshed at most every WAITING_REFRESH_MS', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('publishes the first reason at once, holds later changes until the interval passed, then publishes the newest', async () => {
    const broker = await bareBroker();
    cleanups.push(broker.close);
    let clock = 5_000_000;
    const controller = await startClockedController(broker.url, () => clock);
    cleanups.push(() => controller.stop());
    const client = await mqtt.connectAsync(broker.url, { clientId: 'waiting-test' });
    cleanups.push(() => client.endAsync());

    // A node whose free memory the test sets with each heartbeat; the heartbeat interval is long so
    // the moved clock never takes it for lost.
    let seq = 0;
    const heartbeat = (freeGiB: number) => {
      const status: NodeStatus = {
        v: 1,
        node: 'small',
        state: 'online',
        version: 'test',
        seq: ++seq,
        ts: clock,
        heartbeatMs: 600_000,
        capacity: {
          cpu: { cores: 4, loadPercent: 1 },
          memory: { total: 16 * GiB, available: freeGiB * GiB },
          gpus: [],
          docker: { available: false, error: 'not installed' },
        },
        offer: { maxMemory: 16 * GiB, maxTasks: 4, executors: ['exec'] },
        running: [],
      };
      return client.publishAsync(t.nodeStatus('small'), JSON.stringify(status), { qos: 1, retain: true });
    };
    await heartbeat(4);
    await eventually(() => controller.registry.get('small'));

    const reasons: string[] = [];
    client.on('message', (topic, payload) => {
      if (topic !== t.taskState(TASK) || payload.length === 0) return;
      const state = JSON.parse(payload.toString()) as { state: string; reason?: string };
      if (state.state === 'queued' && state.reason) reasons.push(state.reason);
    });
    await client.subscribeAsync([t.taskState(TASK), t.replies('waiting-test')], { qos: 1 });
    await client.publishAsync(
      t.requests('waiting-test'),
      JSON.stringify({
        v: 1,
        id: TASK,
        op: 'submit',
        taskId: TASK,
        spec: { kind: 'exec', argv: ['true'], env: {} },
        requirements: { memory: 8 * GiB, cpus: 0 },
      }),
      { qos: 1 },
    );
    await eventually(() => reasons.length > 0);
    expect(reasons.at(-1)).toMatch(/needs 8(\.0)? GiB memory, has 4(\.0)? GiB free/);

    // The node's free memory changes with every heartbeat; each one runs a placement pass.
    for (const free of [3, 2, 1]) {
      await heartbeat(free);
      await eventually(() => controller.registry.get('small')?.capacity?.memory.available === free * GiB);
    }
    // Room for the passes to write and publish, if they did.
    await new Promise((r) => setTimeout(r, 500));
    expect(reasons.filter((r) => /has [123](\.0)? GiB free/.test(r))).toEqual([]);

    // Once the interval has passed, the next pass publishes the reason as it is now.
    clock += WAITING_REFRESH_MS;
    await heartbeat(1.5);
    await eventually(() => reasons.some((r) => /has 1\.5 GiB free/.test(r)));
    expect(controller.registry.get('small')?.state).toBe('online');
  });
});
