/**
 * A subscriber that stops reading (a frozen dashboard, a client on a dying Wi-Fi link) against the
 * embedded broker: delivery to everyone else goes on, and the broker cuts the slow reader once
 * more than `brokerMaxQueuedBytes` wait unsent for it (here 1 MiB), logging its address and how much.
 * A reader that falls behind by less is never cut and gets everything once it reads again.
 *
 * Before this behaviour Aedes made each publish wait for every subscriber's socket to drain, so one
 * such reader held up the whole mesh: in the flood test, node heartbeats reached the controller
 * seconds late, nodes were taken for dead, and their tasks were placed again and again.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEmbeddedBroker, eventually, startServer, type Daemon } from '../harness.js';

const TOPIC = 'lab/slow-reader';
const CHUNK = 64 * 1024;

describeEmbeddedBroker('a slow reader on the embedded broker', () => {
  let server: Daemon;
  let url: string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer([], { env: { CUTTER_BROKER_MAX_QUEUED_BYTES: String(1024 * 1024) } }));
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A subscriber whose socket is no longer read (TCP backpressure reaches the broker). */
  async function frozenSubscriber(clientId: string): Promise<{ client: mqtt.MqttClient; got: () => number; resume: () => void }> {
    const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0 });
    let got = 0;
    client.on('message', () => got++);
    client.on('error', () => undefined);
    await client.subscribeAsync(TOPIC, { qos: 0 });
    const socket = client.stream as unknown as { pause(): void; resume(): void };
    socket.pause();
    return { client, got: () => got, resume: () => socket.resume() };
  }

  it('cuts a reader that falls more than the limit behind, and delivery to the others goes on', async () => {
    const healthy = await mqtt.connectAsync(url, { clientId: 'healthy-reader', reconnectPeriod: 0 });
    let healthyGot = 0;
    healthy.on('message', () => healthyGot++);
    await healthy.subscribeAsync(TOPIC, { qos: 0 });
    const slow = await frozenSubscriber('frozen-reader');
    let closed = false;
    slow.client.on('close', () => (closed = true));

    // 48 MiB: more than the kernel's socket buffers on both sides can hold, and the 1 MiB limit.
    const publisher = await mqtt.connectAsync(url, { clientId: 'slow-reader-publisher', reconnectPeriod: 0 });
    const payload = Buffer.alloc(CHUNK, 7);
    const count = 768;
    for (let i = 0; i < count; i++) await publisher.publishAsync(TOPIC, payload, { qos: 1 });

    const cut = await server.waitForMsg('connection cut: reader too slow', 30_000);
    expect(String(cut.reason)).toMatch(/^\d+ bytes waiting to be sent to it \(limit 1048576\)$/);
    await eventually(() => healthyGot === count, 30_000);
    slow.resume();
    await eventually(() => closed, 10_000);
    expect(slow.got()).toBeLessThan(count);
    // The server is still there for everyone else.
    expect(server.child.exitCode).toBeNull();
    await publisher.endAsync();
    await healthy.endAsync();
  });

  it('does not cut a reader that falls behind by less than the limit; it gets everything when it reads again', async () => {
    const slow = await frozenSubscriber('briefly-slow-reader');
    let closed = false;
    slow.client.on('close', () => (closed = true));
    const before = server.lines.filter((l) => l.msg === 'connection cut: reader too slow').length;
    const publisher = await mqtt.connectAsync(url, { clientId: 'slow-reader-publisher-2', reconnectPeriod: 0 });
    const payload = Buffer.alloc(1024, 3);
    for (let i = 0; i < 200; i++) await publisher.publishAsync(TOPIC, payload, { qos: 1 });
    slow.resume();
    await eventually(() => slow.got() === 200, 15_000);
    expect(closed).toBe(false);
    expect(server.lines.filter((l) => l.msg === 'connection cut: reader too slow').length).toBe(before);
    await publisher.endAsync();
    await slow.client.endAsync();
  });
});
