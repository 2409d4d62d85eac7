/**
 * The embedded broker's limits, over raw sockets: an announced 200 MB packet is cut off before
 * it is buffered (before and after CONNECT) with the broker's memory flat, a topic 200 levels deep
 * is refused without a crash, and a subscriber that stops reading stalls the others for at most
 * the broker's drain timeout, then is cut.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startServer, type Daemon } from '../harness.js';
import { varint } from '../mqtt-wire.js';

/** A CONNECT packet (3.1.1, clean session) with the given client id. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes up to `bytes` of filler until the broker closes the socket; resolves with what was written. */
async function pushUntilClosed(s: Socket, bytes: number): Promise<{ written: number; closed: boolean }> {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let written = 0;
  let closed = false;
  s.once('close', () => (closed = true));
  s.on('error', () => undefined);
  while (written < bytes && !closed) {
    const ok = s.write(chunk);
    written += chunk.length;
    if (!ok)
      await new Promise((r) => {
        s.once('drain', r);
        s.once('close', r);
      });
  }
  await new Promise((r) => setTimeout(r, 300));
  return { written, closed: closed || s.destroyed };
}

describe('broker limits', () => {
  let server: Daemon;
  let url: string;
  let port: number;

  beforeAll(async () => {
    ({ daemon: server, url, port } = await startServer());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('cuts a connection whose first packet announces 200 MB, before buffering it', async () => {
    const before = rssBytes(server.child.pid!);
    const s = await open(port);
    s.write(Buffer.concat([Buffer.from([0x10]), varint(200 * 1024 * 1024)]));
    const r = await pushUntilClosed(s, 200 * 1024 * 1024);
    expect(r.closed).toBe(true);
    expect(r.written).toBeLessThan(50 * 1024 * 1024);
    await server.waitForLog(
      (l) =>
        l.msg === 'connection cut: packet too large' && String(l.reason).startsWith('first packet (CONNECT) announces 209715200 bytes'),
    );
    expect(rssBytes(server.child.pid!) - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('cuts a PUBLISH announcing 200 MB after a good CONNECT', async () => {
    const before = rssBytes(server.child.pid!);
    const s = await open(port);
    s.write(connectPacket('big-publisher'));
    await new Promise<void>((resolve) => s.once('data', () => resolve())); // CONNACK
    const topic = Buffer.from('cutter/v1/x');
    s.write(Buffer.concat([Buffer.from([0x30]), varint(200 * 1024 * 1024), Buffer.from([0, topic.length]), topic]));
    const r = await pushUntilClosed(s, 200 * 1024 * 1024);
    expect(r.closed).toBe(true);
    expect(r.written).toBeLessThan(50 * 1024 * 1024);
    await server.waitForLog(
      (l) => l.msg === 'connection cut: packet too large' && String(l.reason).startsWith('packet announces 209715200 bytes'),
    );
    expect(rssBytes(server.child.pid!) - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses a topic 200 levels deep without a crash', async () => {
    const c = await mqtt.connectAsync(url, { clientId: 'deep-topic', reconnectPeriod: 0 });
    const closed = new Promise((r) => c.once('close', r));
    c.publish(Array.from({ length: 200 }, (_, i) => `l${i}`).join('/'), 'x', { qos: 1 });
    await closed;
    c.end(true);
    expect(server.child.exitCode).toBeNull();
    const r = await cli(['nodes', 'list', '--json'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
  });

  /** Publishes `count` × 256 KiB on load/… and resolves with the ms until `sub` has them all. */
  async function deliver(sub: mqtt.MqttClient, publisher: mqtt.MqttClient, count: number, prefix: string): Promise<number> {
    let received = 0;
    const onMessage = (topic: string) => topic.startsWith(`load/${prefix}/`) && received++;
    sub.on('message', onMessage);
    const payload = Buffer.alloc(256 * 1024, 0x62);
    const t0 = Date.now();
    for (let i = 0; i < count; i++) await publisher.publishAsync(`load/${prefix}/${i}`, payload, { qos: 1 });
    await new Promise((r) => {
      const t = setInterval(() => received >= count && (clearInterval(t), r(undefined)), 20);
    });
    sub.off('message', onMessage);
    return Date.now() - t0;
  }

  it('a subscriber that stops reading stalls others for at most the drain timeout, then is cut', async () => {
    const healthy = await mqtt.connectAsync(url, { clientId: 'healthy-sub' });
    await healthy.subscribeAsync('load/#', { qos: 1 });
    const publisher = await mqtt.connectAsync(url, { clientId: 'load-publisher' });
    const count = 200; // 50 MiB in all: far more than a frozen socket's buffers hold
    const baseline = await deliver(healthy, publisher, count, 'base');

    // The frozen subscriber: subscribes, then never reads its socket again.
    const frozen = await open(port);
    frozen.write(connectPacket('frozen-sub'));
    await new Promise<void>((resolve) => frozen.once('data', () => resolve()));
    const filter = Buffer.from('load/#');
    frozen.write(
      Buffer.concat([
        Buffer.from([0x82]),
        varint(2 + 2 + filter.length + 1),
        Buffer.from([0, 1, 0, filter.length]),
        filter,
        Buffer.from([1]),
      ]),
    );
    await new Promise<void>((resolve) => frozen.once('data', () => resolve())); // SUBACK
    frozen.pause();
    let frozenClosed = false;
    frozen.once('close', () => (frozenClosed = true));

    const ms = await deliver(healthy, publisher, count, 'frozen');
    // At most one drain timeout (2 s by default) of stall, plus noise.
    expect(ms).toBeLessThan(baseline + 2_000 + 3_000);
    // The broker has closed its end: reading what is buffered reaches its FIN.
    frozen.resume();
    for (let i = 0; i < 100 && !frozenClosed; i++) await new Promise((r) => setTimeout(r, 50));
    expect(frozenClosed).toBe(true);
    // Request/reply through the same broker keeps working while the frozen one is still connected.
    const r = await cli(['nodes', 'list', '--json'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    console.log(`200 × 256 KiB delivered in ${baseline} ms alone, ${ms} ms with a frozen subscriber on the same topics`);
    await Promise.all([healthy.endAsync(), publisher.endAsync()]);
    frozen.destroy();
  });
});
