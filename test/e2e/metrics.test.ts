/**
 * `/metrics` on the server's HTTP port, parsed with a Prometheus text-format parser
 * (the Prometheus Python client's own, see test/prometheus-parse.ts), and compared
 * with the mesh as the CLI reports it: nodes by state, capacity per node, tasks by state and kind,
 * placements and rejections, queue length, wait and run histograms, broker clients and messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ON_MOSQUITTO, cli, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';
import { parsePrometheus, type PromFamily } from '../prometheus-parse.js';
import { needs } from '../services.js';

const parser = needs('prometheusParser');

describe.skipIf(parser.skip)(`Prometheus /metrics${parser.tag}`, () => {
  let server: Daemon;
  let agents: Daemon[] = [];
  let url: string;
  let http: string;

  /** Families by name; a counter's family is named without `_total`, as the parser names it. */
  const scrape = async (): Promise<Map<string, PromFamily>> => {
    const res = await fetch(`${http}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    return new Map(parsePrometheus(await res.text()).map((f) => [f.name, f]));
  };
  /** The value of the sample named `sample` with these labels (among others), from any family. */
  const value = (m: Map<string, PromFamily>, sample: string, labels: Record<string, string> = {}): number | undefined => {
    for (const f of m.values()) {
      const s = f.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
      if (s) return s.value;
    }
    return undefined;
  };

  beforeAll(async () => {
    const port = await freePort();
    ({ daemon: server, url } = await startServer(['--http-port', String(port)]));
    http = `http://127.0.0.1:${port}`;
    agents = await Promise.all([
      startAgent(url, 'm-big', ['--allow-exec', '--max-memory', '1g']),
      startAgent(url, 'm-small', ['--allow-exec', '--max-memory', '64m']),
    ]);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('reports the mesh: nodes, capacity, tasks, placements, rejections, queue, durations, broker', async () => {
    await eventually(async () => (await scrape()).get('cutter_node_up')?.samples.length === 2);
    // One task that runs, one that fits nowhere and waits in the queue.
    const ok = await cli(['run', '--node', 'm-big', 'exec', '--', 'sh', '-c', 'echo hi'], { broker: url });
    expect(ok.code).toBe(0);
    const queued = await cli(['run', '-d', '--memory', '100g', 'exec', '--', 'true'], { broker: url });
    expect(queued.code).toBe(0);
    expect((await cli(['nodes', 'drain', 'm-small'], { broker: url })).code).toBe(0);

    const nodes = JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url })).stdout) as {
      node: string;
      state: string;
      status: { capacity: { memory: { total: number }; cpu: { cores: number } }; offer: { maxMemory: number; maxTasks: number } };
    }[];
    const m = await eventually(async () => {
      const s = await scrape();
      return value(s, 'cutter_nodes', { state: 'draining' }) === 1 &&
        value(s, 'cutter_task_run_seconds_count', { kind: 'exec', state: 'succeeded' }) === 1
        ? s
        : null;
    });

    expect(m.get('cutter_nodes')!.type).toBe('gauge');
    expect(value(m, 'cutter_nodes', { state: 'online' })).toBe(1);
    expect(value(m, 'cutter_nodes', { state: 'offline' })).toBe(0);
    for (const n of nodes) {
      expect(value(m, 'cutter_node_memory_total_bytes', { node: n.node })).toBe(n.status.capacity.memory.total);
      expect(value(m, 'cutter_node_cpu_cores', { node: n.node })).toBe(n.status.capacity.cpu.cores);
      expect(value(m, 'cutter_node_memory_offered_bytes', { node: n.node })).toBe(n.status.offer.maxMemory);
      expect(value(m, 'cutter_node_max_tasks', { node: n.node })).toBe(n.status.offer.maxTasks);
      expect(value(m, 'cutter_node_up', { node: n.node })).toBe(1);
    }
    expect(value(m, 'cutter_node_memory_offered_bytes', { node: 'm-small' })).toBe(64 * 1024 ** 2);

    expect(value(m, 'cutter_tasks', { state: 'succeeded', kind: 'exec' })).toBe(1);
    expect(value(m, 'cutter_tasks', { state: 'queued', kind: 'exec' })).toBe(1);
    expect(value(m, 'cutter_queue_length')).toBe(1);
    expect(m.get('cutter_placements')!.type).toBe('counter');
    expect(value(m, 'cutter_placements_total', { kind: 'exec' })).toBe(1);
    // The 100g task was rejected by both nodes for memory at least once.
    expect(value(m, 'cutter_rejections_total', { reason: 'memory' })).toBeGreaterThanOrEqual(2);

    expect(m.get('cutter_task_wait_seconds')!.type).toBe('histogram');
    expect(value(m, 'cutter_task_wait_seconds_count', { kind: 'exec' })).toBe(1);
    expect(value(m, 'cutter_task_wait_seconds_bucket', { kind: 'exec', le: '+Inf' })).toBe(1);
    expect(value(m, 'cutter_task_run_seconds_count', { kind: 'exec', state: 'succeeded' })).toBe(1);
    expect(value(m, 'cutter_task_run_seconds_sum', { kind: 'exec', state: 'succeeded' })).toBeGreaterThan(0);

    // The broker's own figures exist only for the embedded broker (Mosquitto has its $SYS topics).
    if (ON_MOSQUITTO) expect(m.has('cutter_broker_clients')).toBe(false);
    else {
      // Controller, HA extension and two agents at least; messages flow.
      expect(value(m, 'cutter_broker_clients')).toBeGreaterThanOrEqual(4);
      const before = value(m, 'cutter_broker_messages_received_total')!;
      expect(before).toBeGreaterThan(0);
      expect(value(m, 'cutter_broker_messages_sent_total')).toBeGreaterThan(0);
      const later = await eventually(async () => {
        const v = value(await scrape(), 'cutter_broker_messages_received_total')!;
        return v > before ? v : null;
      });
      expect(later).toBeGreaterThan(before);
    }

    // An agent killed: the node is counted offline.
    await agents[1].stop('SIGKILL');
    await eventually(async () => value(await scrape(), 'cutter_node_up', { node: 'm-small' }) === 0);
  });

  it('serves a health check and refuses what it does not serve', async () => {
    expect(await (await fetch(`${http}/healthz`)).text()).toBe('ok\n');
    expect((await fetch(`${http}/nope`)).status).toBe(404);
    expect((await fetch(`${http}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});
