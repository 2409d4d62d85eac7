/**
 * broker/retained-index.ts: a SUBSCRIBE gets the same retained messages, in the same order, from
 * Aedes with the index as from Aedes' own in-memory persistence, and an exact filter no longer
 * scans every retained message; and each retained payload is kept in memory of its own, not as a
 * view of the larger buffer it was parsed from. Real Aedes brokers on loopback sockets, real
 * MQTT.js clients.
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexRetained, isExactFilter, ownBytes, type RetainedPersistence } from '../../broker/retained-index.js';

const memory = aedesPersistence as unknown as () => RetainedPersistence;

interface Running {
  url: string;
  persistence: RetainedPersistence;
  close(): Promise<void>;
}

async function broker(persistence: RetainedPersistence): Promise<Running> {
  const aedes = await Aedes.createBroker({ persistence: persistence as never });
  const server: Server = createServer((s) => aedes.handle(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    persistence,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Publishes the retained messages, then subscribes to `filters` in one SUBSCRIBE and lists what arrives. */
async function retainedFor(url: string, filters: string[]): Promise<string[]> {
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const got: string[] = [];
  sub.on('message', (topic, payload, packet) => {
    if (packet.retain) got.push(`${topic}=${payload.toString()}`);
  });
  await sub.subscribeAsync(filters, { qos: 1 });
  await new Promise((r) => setTimeout(r, 200));
  await sub.endAsync();
  return got;
}

describe('indexRetained', () => {
  let plain: Running;
  let indexed: Running;

  beforeAll(async () => {
    plain = await broker(memory());
    indexed = await broker(indexRetained(memory()));
    for (const b of [plain, indexed]) {
      const pub = await mqtt.connectAsync(b.url, { reconnectPeriod: 0 });
      for (let i = 0; i < 50; i++) await pub.publishAsync(`mesh/nodes/n${i}/status`, `s${i}`, { qos: 1, retain: true });
      await pub.publishAsync('mesh/nodes/n7/status', 's7-again', { qos: 1, retain: true });
      await pub.publishAsync('mesh/tasks/t1/state', 'running', { qos: 1, retain: true });
      // An empty retained payload clears the topic (MQTT 3.1.1 §3.3.1.3).
      await pub.publishAsync('mesh/nodes/n9/status', '', { qos: 1, retain: true });
      await pub.endAsync();
    }
  });
  afterAll(async () => {
    await plain?.close();
    await indexed?.close();
  });

  it('tells exact filters from wildcard ones', () => {
    expect(isExactFilter('mesh/nodes/n1/status')).toBe(true);
    expect(isExactFilter('mesh/nodes/+/status')).toBe(false);
    expect(isExactFilter('mesh/#')).toBe(false);
  });

  it('answers exact, wildcard and overlapping filters as Aedes does, in the same order', async () => {
    const cases = [
      ['mesh/nodes/n3/status'],
      ['mesh/nodes/n7/status', 'mesh/nodes/n9/status', 'mesh/nodes/none/status'],
      ['mesh/tasks/t1/state', 'mesh/nodes/+/status'],
      ['mesh/#', 'mesh/nodes/n1/status'],
    ];
    for (const filters of cases) {
      const want = await retainedFor(plain.url, filters);
      expect(want.length, filters.join(' ')).toBeGreaterThan(0);
      expect(await retainedFor(indexed.url, filters), filters.join(' ')).toEqual(want);
    }
    expect(await retainedFor(indexed.url, ['mesh/nodes/n7/status', 'mesh/nodes/n9/status'])).toEqual(['mesh/nodes/n7/status=s7-again']);
  });

  it('keeps each retained payload in a buffer of its own, in the index and in the persistence', async () => {
    const read = async (stream: AsyncIterable<{ topic: string; payload: Buffer }>) => {
      const out: { topic: string; payload: Buffer }[] = [];
      for await (const p of stream) out.push(p);
      return out;
    };
    const p = indexed.persistence;
    const all = await read(p.createRetainedStream('mesh/#') as AsyncIterable<{ topic: string; payload: Buffer }>);
    const exact = await read(
      p.createRetainedStreamCombi(['mesh/tasks/t1/state', 'mesh/nodes/n3/status']) as AsyncIterable<{ topic: string; payload: Buffer }>,
    );
    expect(all).toHaveLength(50);
    expect(exact.map((k) => `${k.topic}=${k.payload.toString()}`)).toEqual(['mesh/tasks/t1/state=running', 'mesh/nodes/n3/status=s3']);
    // Parsed from a socket read, each payload was a view of that read (the whole PUBLISH, and more).
    for (const k of [...all, ...exact]) expect([k.topic, k.payload.buffer.byteLength]).toEqual([k.topic, k.payload.length]);
  });

  it('ownBytes copies a view of a larger buffer, and gives back a buffer that owns its memory', () => {
    const slab = Buffer.from('x'.repeat(64) + 'payload' + 'y'.repeat(64));
    const view = slab.subarray(64, 71);
    const own = ownBytes(view);
    expect(own.toString()).toBe('payload');
    expect(own.buffer.byteLength).toBe(7);
    slab.fill(0);
    expect(own.toString()).toBe('payload');
    expect(ownBytes(own)).toBe(own);
  });

  it('answers an exact filter without the persistence scanning its retained messages', async () => {
    const p = indexed.persistence;
    const scan = p.createRetainedStream;
    let scans = 0;
    p.createRetainedStream = (pattern) => {
      scans++;
      return scan.call(p, pattern);
    };
    try {
      expect(await retainedFor(indexed.url, ['mesh/nodes/n1/status', 'mesh/tasks/t1/state'])).toHaveLength(2);
      expect(scans).toBe(0);
      expect(await retainedFor(indexed.url, ['mesh/nodes/+/status'])).toHaveLength(49);
      expect(scans).toBe(1);
    } finally {
      p.createRetainedStream = scan;
    }
  });
});
