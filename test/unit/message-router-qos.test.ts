/**
 * shared/mqtt.ts MessageRouter: each route subscribes at its own QoS (`qos`, default 1), in one
 * SUBSCRIBE (`subscribeAll`) or on its own (`on`). What a subscriber notices is the QoS the broker
 * delivers at: a QoS 1 publish reaches a QoS 0 route as QoS 0 (no PUBACK, no in-flight copy kept by
 * the broker), and other routes as QoS 1. Real Aedes broker on a loopback socket, real MQTT.js clients.
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../shared/logger.js';
import { MessageRouter } from '../../shared/mqtt.js';

let aedes: Aedes;
let server: Server;
let url: string;

beforeAll(async () => {
  aedes = await Aedes.createBroker();
  server = createServer((s) => aedes.handle(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const Payload = z.object({ n: z.number() });

it('delivers each route at the QoS it asked for', async () => {
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0, clean: false, clientId: 'router-qos' });
  const router = new MessageRouter(sub, createLogger('silent'));
  const got: { topic: string; n: number }[] = [];
  const qosOf = new Map<string, number>();
  sub.on('message', (topic, _p, packet) => qosOf.set(topic, packet.qos));
  router.route('nodes/+/status', Payload, (v, topic) => void got.push({ topic, n: v.n }), { qos: 0 });
  router.route('tasks/+/events', Payload, (v, topic) => void got.push({ topic, n: v.n }));
  await router.subscribeAll();
  await router.on('requests/+', Payload, (v, topic) => void got.push({ topic, n: v.n }), { qos: 0 });
  await router.on('replies/+', Payload, (v, topic) => void got.push({ topic, n: v.n }));

  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  for (const [i, topic] of ['nodes/a/status', 'tasks/t1/events', 'requests/c1', 'replies/c1'].entries())
    await pub.publishAsync(topic, JSON.stringify({ n: i }), { qos: 1 });
  await expect.poll(() => got.length).toBe(4);

  expect(got).toEqual([
    { topic: 'nodes/a/status', n: 0 },
    { topic: 'tasks/t1/events', n: 1 },
    { topic: 'requests/c1', n: 2 },
    { topic: 'replies/c1', n: 3 },
  ]);
  expect(Object.fromEntries(qosOf)).toEqual({ 'nodes/a/status': 0, 'tasks/t1/events': 1, 'requests/c1': 0, 'replies/c1': 1 });
  await pub.endAsync();
  await sub.endAsync();
});
