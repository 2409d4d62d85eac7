/**
 * The broker itself: embedded Aedes (a real `cutter server`, with its packet guard and hooks)
 * versus Mosquitto (Debian's), on the same message pattern — the heartbeat fan-in: `publishers`
 * clients each publish `perPublisher` retained QoS 1 NodeStatus-sized messages on their own
 * status topic, as fast as the PUBACKs come back (`window` in flight per client), and one
 * subscriber receives them all on a `+` filter. The topic prefix is `benchbroker`, not `cutter`,
 * so cutter's controller (which shares the embedded broker's process) does not handle them.
 * Measured: messages/s delivered, publish→delivery latency p50/p99, the broker process's CPU.
 */
import mqtt from 'mqtt';
import { haveMosquitto, startMosquitto } from '../scripts/mosquitto.js';
import { freePort, startBenchServer } from '../scripts/procs.js';
import { quantile, sampleUsage, type Usage } from './proc-stats.js';

export interface BrokerRun {
  broker: 'aedes (cutter server)' | 'mosquitto';
  messages: number;
  ms: number;
  perSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  usage: Usage;
}

async function pattern(
  url: string,
  pid: number,
  broker: BrokerRun['broker'],
  publishers: number,
  perPublisher: number,
  window: number,
): Promise<BrokerRun> {
  const sub = await mqtt.connectAsync(url, { clientId: `bb-sub-${pid}` });
  const total = publishers * perPublisher;
  const latencies: number[] = [];
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  sub.on('message', (_t, payload, packet) => {
    if (packet.retain) return; // a retained copy from an earlier subscription, not this run
    latencies.push(performance.now() - Number(payload.subarray(0, 20).toString().trim()));
    if (++received === total) done();
  });
  await sub.subscribeAsync('benchbroker/v1/nodes/+/status', { qos: 1 });
  const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => mqtt.connectAsync(url, { clientId: `bb-pub-${i}` })));
  const filler = 'x'.repeat(600); // a NodeStatus with capacity and offer is ~600-700 bytes of JSON
  const usage = sampleUsage([pid]);
  const t0 = performance.now();
  await Promise.all(
    pubs.map(async (c, i) => {
      let next = 0;
      const lane = async () => {
        while (next < perPublisher) {
          next++;
          await c.publishAsync(`benchbroker/v1/nodes/n${i}/status`, `${performance.now().toFixed(3).padStart(20)}${filler}`, {
            qos: 1,
            retain: true,
          });
        }
      };
      await Promise.all(Array.from({ length: window }, lane));
    }),
  );
  await all;
  const ms = performance.now() - t0;
  const u = usage.stop();
  await Promise.all([...pubs, sub].map((c) => c.endAsync()));
  return {
    broker,
    messages: total,
    ms,
    perSec: total / (ms / 1000),
    latencyP50Ms: quantile(latencies, 0.5),
    latencyP99Ms: quantile(latencies, 0.99),
    usage: u,
  };
}

/** Runs the pattern on both brokers (Mosquitto skipped with null when not installed). */
export async function compareBrokers(opts: {
  publishers: number;
  perPublisher: number;
  window: number;
}): Promise<{ aedes: BrokerRun; mosquitto: BrokerRun | null }> {
  const { child: server, broker } = await startBenchServer({ ready: 'controller started' });
  let aedes: BrokerRun;
  try {
    await new Promise((r) => setTimeout(r, 300));
    aedes = await pattern(broker, server.pid!, 'aedes (cutter server)', opts.publishers, opts.perPublisher, opts.window);
  } finally {
    server.kill('SIGTERM');
  }
  if (!haveMosquitto()) return { aedes, mosquitto: null };
  const m = await startMosquitto(await freePort());
  try {
    return { aedes, mosquitto: await pattern(m.url, m.child.pid!, 'mosquitto', opts.publishers, opts.perPublisher, opts.window) };
  } finally {
    await m.stop();
  }
}
