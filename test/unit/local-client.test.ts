/**
 * broker/local-client.ts: the in-process client of the embedded broker, speaking to Aedes's API
 * instead of MQTT packets. Against the real cutter broker (startBroker) with real MQTT.js clients
 * on a loopback socket, it must behave as an MQTT client would for what cutter uses: messages both
 * ways, retained messages stored and replayed (flagged retained), one delivery for overlapping
 * filters, order kept, no delivery inside the publisher's own call, unsubscribe and end, and the
 * broker's stats counting it.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker } from '../../broker/broker.js';
import type { RunningBroker } from '../../broker/broker-types.js';
import { createLogger } from '../../shared/logger.js';

let broker: RunningBroker;
let url: string;
const opened: MqttClient[] = [];

beforeAll(async () => {
  broker = await startBroker({
    host: '127.0.0.1',
    port: 0,
    log: createLogger('silent'),
    maxPacketBytes: 1024 * 1024,
    maxConnectBytes: 64 * 1024,
    maxConnections: 100,
    drainTimeoutMs: 1_000,
  });
  url = `mqtt://127.0.0.1:${await broker.listen()}`;
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.endAsync(true)));
  await broker.close();
});

const local = (id: string) => {
  const c = broker.localClient(id, 'admin');
  opened.push(c);
  return c;
};
const remote = async () => {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  opened.push(c);
  return c;
};
type Got = { topic: string; text: string; retain: boolean };
const collect = (c: MqttClient) => {
  const got: Got[] = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, text: payload.toString(), retain: packet.retain }));
  return got;
};
const connected = (c: MqttClient) => new Promise<void>((resolve) => (c.connected ? resolve() : c.once('connect', () => resolve())));

describe('LocalClient', () => {
  it('connects on the next turn, with connect heard by listeners added after creation', async () => {
    const c = local('lc-connect');
    expect(c.connected).toBe(false);
    await connected(c);
    expect(c.connected).toBe(true);
  });

  it('receives what a network client publishes, and a network client receives what it publishes, retained kept', async () => {
    const c = local('lc-both');
    const got = collect(c);
    await c.subscribeAsync('t/both/+', { qos: 1 });
    const r = await remote();
    await r.publishAsync('t/both/in', 'from the network', { qos: 1 });
    await expect.poll(() => got).toEqual([{ topic: 't/both/in', text: 'from the network', retain: false }]);

    const rgot = collect(r);
    await r.subscribeAsync('t/out', { qos: 1 });
    await c.publishAsync('t/out', Buffer.from([0, 255, 10]), { qos: 1, retain: true });
    await expect.poll(() => rgot.length).toBe(1);
    expect(rgot[0]).toMatchObject({ topic: 't/out', retain: false });
    // Stored as retained: a later subscriber gets it, flagged so.
    const late = await remote();
    const lateGot: Buffer[] = [];
    late.on('message', (_t, p, packet) => packet.retain && lateGot.push(p));
    await late.subscribeAsync('t/out', { qos: 1 });
    await expect.poll(() => lateGot.length).toBe(1);
    expect([...lateGot[0]]).toEqual([0, 255, 10]);
  });

  it('replays retained messages at subscribe, flagged retained, then live ones unflagged', async () => {
    const r = await remote();
    await r.publishAsync('t/ret/a', 'kept a', { qos: 1, retain: true });
    await r.publishAsync('t/ret/b', 'kept b', { qos: 1, retain: true });
    const c = local('lc-retained');
    const got = collect(c);
    const granted = await c.subscribeAsync({ 't/ret/+': { qos: 0 }, 't/ret/a': { qos: 1 } });
    expect(granted).toEqual([
      { topic: 't/ret/+', qos: 0 },
      { topic: 't/ret/a', qos: 1 },
    ]);
    await expect
      .poll(() =>
        got
          .filter((g) => g.retain)
          .map((g) => g.text)
          .sort(),
      )
      .toEqual(['kept a', 'kept a', 'kept b']);
    got.length = 0;
    await r.publishAsync('t/ret/a', 'live', { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // One live message matching two of the client's filters arrives once.
    expect(got).toEqual([{ topic: 't/ret/a', text: 'live', retain: false }]);
  });

  it('hands messages over in order, after the publishing code has run', async () => {
    const a = local('lc-order-a');
    const b = local('lc-order-b');
    const got = collect(b);
    await b.subscribeAsync('t/order', { qos: 1 });
    for (let i = 0; i < 1_000; i++) a.publish('t/order', String(i), { qos: 1 });
    expect(got).toEqual([]); // nothing inside the publish calls
    await expect.poll(() => got.length).toBe(1_000);
    expect(got.map((g) => Number(g.text))).toEqual([...Array(1_000).keys()]);
  });

  it('routes its publishes in order, retained or not, so a network subscriber of both gets every one', async () => {
    // Aedes drops a message whose counter is below the last one a connection was handed (its
    // dedupe of overlapping subscriptions); a retained publish reaches routing later than a plain one.
    const r = await remote();
    const got: string[] = [];
    r.on('message', (_t, p) => got.push(p.toString()));
    await r.subscribeAsync({ 't/mix/state': { qos: 1 }, 't/mix/events': { qos: 1 } });
    const c = local('lc-mix');
    const sent: string[] = [];
    for (let i = 0; i < 3_000; i++) {
      const retained = i % 3 === 0;
      sent.push(String(i));
      c.publish(retained ? 't/mix/state' : 't/mix/events', String(i), { qos: i % 2 === 0 ? 1 : 0, retain: retained });
    }
    await expect.poll(() => got.length).toBe(3_000);
    expect(got).toEqual(sent);
  });

  it('stops delivering after unsubscribe, and after end, which says close', async () => {
    const c = local('lc-stop');
    const got = collect(c);
    await c.subscribeAsync(['t/stop/1', 't/stop/2'], { qos: 1 });
    await c.unsubscribeAsync('t/stop/1');
    const r = await remote();
    await r.publishAsync('t/stop/1', 'dropped', { qos: 1 });
    await r.publishAsync('t/stop/2', 'kept', { qos: 1 });
    await expect.poll(() => got.map((g) => g.text)).toEqual(['kept']);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await c.endAsync();
    await closed;
    expect(c.connected).toBe(false);
    await r.publishAsync('t/stop/2', 'after end', { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(got.map((g) => g.text)).toEqual(['kept']);
    await expect(c.publishAsync('t/stop/2', 'x')).rejects.toThrow('client disconnecting');
  });

  it('counts in the broker: a client while connected, its publishes in, what it is handed out', async () => {
    const before = broker.stats();
    const c = local('lc-stats');
    expect(broker.stats().clients).toBe(before.clients + 1);
    expect(broker.addressOf('lc-stats')).toBe('in-process');
    const got = collect(c);
    await c.subscribeAsync('t/stats', { qos: 0 });
    await c.publishAsync('t/stats', 'abc', { qos: 0 });
    await expect.poll(() => got.length).toBe(1);
    const after = broker.stats();
    expect(after.messagesIn - before.messagesIn).toBe(1);
    expect(after.bytesIn - before.bytesIn).toBe(3);
    expect(after.messagesOut - before.messagesOut).toBeGreaterThanOrEqual(1);
    await c.endAsync();
    expect(broker.stats().clients).toBe(before.clients);
  });
});
