/**
 * One client floods the controller with submissions while a second submits normally: the flooder
 * is rate limited, then cut by the broker, and the second client's submit→reply p99 stays under
 * 100 ms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { Requester } from '../netns.js';
import { eventually, startServer, type Daemon, describeEmbeddedBroker } from '../harness.js';

const t = topics();

describeEmbeddedBroker('a flooding client does not starve the others', () => {
  let server: Daemon;
  let url: string;
  let dataDir: string;

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('limits and cuts the flooder; the well-behaved client keeps p99 under 100 ms', async () => {
    const flooder = await mqtt.connectAsync(url, { clientId: 'flooder', reconnectPeriod: 0 });
    let limited = 0;
    let flooderClosed = false;
    flooder.on('close', () => (flooderClosed = true));
    flooder.on('message', (_topic, payload) => {
      if ((JSON.parse(payload.toString()) as { error?: { code: string } }).error?.code === 'RATE_LIMITED') limited++;
    });
    await flooder.subscribeAsync(t.replies('flooder'), { qos: 0 });
    const submit = (i: number) =>
      JSON.stringify({
        v: 1,
        id: `f${i}`,
        op: 'submit',
        spec: { kind: 'exec', argv: ['true'], env: {} },
        requirements: { memory: 0, cpus: 0 },
      });
    // As fast as the socket takes them, without waiting for anything.
    const flood = (async () => {
      for (let i = 0; i < 20_000 && !flooderClosed; i++) {
        flooder.publish(t.requests('flooder'), submit(i), { qos: 0 });
        if (i % 200 === 0) await new Promise((r) => setImmediate(r));
      }
    })();

    const normal = await Requester.connect(url);
    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      const r = await normal.request({
        op: 'submit',
        spec: { kind: 'exec', argv: ['true'], env: {} },
        requirements: { memory: 0, cpus: 0 },
      });
      latencies.push(performance.now() - t0);
      expect(r.ok, JSON.stringify(r)).toBe(true);
    }
    await flood;
    await normal.end();
    flooder.end(true);

    latencies.sort((a, b) => a - b);
    const p50 = latencies[49];
    const p99 = latencies[98];
    console.log(
      `well-behaved client during the flood: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; flooder got ${limited} RATE_LIMITED replies, cut: ${flooderClosed}`,
    );
    expect(p99).toBeLessThan(100);
    expect(flooderClosed).toBe(true);
    await server.waitForMsg('client cut: too many requests');
    // The controller refused what got through past the flooder's quota (its replies went to a client already cut).
    const audit = await eventually(() => {
      const lines = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { who: string; action: string; outcome: string });
      return lines.some((l) => l.who === 'flooder' && l.action === 'rate.limited' && l.outcome === 'disconnected') ? lines : null;
    });
    const refused = audit.filter((l) => l.who === 'flooder' && l.action === 'rate.limited' && l.outcome === 'denied').length;
    const accepted = audit.filter((l) => l.who === 'flooder' && l.action === 'submit' && l.outcome !== 'denied').length;
    console.log(`flooder: ${accepted} submissions accepted, ${refused} refused by the controller, then cut by the broker`);
    // 120 at once, then 2 a second as the bucket refills.
    expect(accepted).toBeLessThanOrEqual(130);
    expect(refused + limited).toBeGreaterThan(0);
    expect(audit.some((l) => l.who === 'flooder' && l.action === 'rate.limited' && l.outcome === 'disconnected')).toBe(true);
  });
});
