/**
 * Nodes offline longer than `forgetAfterMs` are forgotten by the controller's sweep (issue 14),
 * like `cutter nodes forget`: their retained status is cleared and `nodeRemoved` is emitted (Home
 * Assistant removes the device on it); a node with an unfinished task, or with forgetting off (0),
 * is kept. A real Controller over a bare in-process Aedes, with a clock the test moves.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeStatus } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { eventually } from '../harness.js';
import { bareBroker } from '../e2e/recovery-helpers.js';
import { startClockedController } from './clocked-controller.js';

const t = topics('cutter');
const DAY = 24 * 3_600_000;

const offline = (node: string): NodeStatus => ({
  v: 1,
  node,
  state: 'offline',
  version: 'test',
  seq: 0,
  ts: 1,
  heartbeatMs: 1_000,
  running: [],
  reason: 'connection lost',
});

describe('forgetting nodes offline past forgetAfterMs', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(forgetAfterMs: number) {
    const broker = await bareBroker();
    cleanups.push(broker.close);
    let clock = 1_000_000;
    const controller = await startClockedController(broker.url, () => clock, { forgetAfterMs });
    cleanups.push(() => controller.stop());
    const removed: string[] = [];
    controller.events.on('nodeRemoved', (node) => removed.push(node));
    const client = await mqtt.connectAsync(broker.url, { clientId: 'forget-test' });
    cleanups.push(() => client.endAsync());
    await client.publishAsync(t.nodeStatus('gone'), JSON.stringify(offline('gone')), { qos: 1, retain: true });
    await eventually(() => controller.registry.get('gone'));
    return { controller, client, removed, url: broker.url, advance: (ms: number) => (clock += ms) };
  }

  it('forgets a node offline longer than forgetAfterMs and clears its retained status', async () => {
    const { controller, client, removed, url, advance } = await setup(7 * DAY);
    // Watching the status topic from before: the clear (an empty retained message) reaches live subscribers too.
    const seen: Buffer[] = [];
    client.on('message', (topic, payload) => topic === t.nodeStatus('gone') && seen.push(payload));
    await client.subscribeAsync(t.nodeStatus('gone'), { qos: 1 });
    advance(6 * DAY);
    await new Promise((r) => setTimeout(r, 600));
    expect(removed).toEqual([]);
    advance(2 * DAY);
    await eventually(() => removed.length > 0);
    expect(removed).toEqual(['gone']);
    expect(controller.registry.get('gone')).toBeUndefined();
    await eventually(() => seen.some((p) => p.length === 0));
    // And a new subscriber is handed no status for it.
    const fresh = await mqtt.connectAsync(url, { clientId: 'forget-test-fresh' });
    cleanups.push(() => fresh.endAsync());
    const retained: Buffer[] = [];
    fresh.on('message', (_topic, payload) => retained.push(payload));
    await fresh.subscribeAsync(t.nodeStatus('gone'), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(retained.filter((p) => p.length > 0)).toEqual([]);
  });

  it('keeps every node with forgetAfterMs 0', async () => {
    const { controller, removed, advance } = await setup(0);
    advance(365 * DAY);
    await new Promise((r) => setTimeout(r, 800));
    expect(removed).toEqual([]);
    expect(controller.registry.get('gone')).toBeDefined();
  });
});
