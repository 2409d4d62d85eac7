/**
 * Prometheus metrics (prom-client), served as `/metrics` by controller/extensions/http-server.ts in the text
 * exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Gauges are read from the controller's registry and task store at scrape time (no copy to keep
 * in step); counters and histograms are fed by the controller's event bus. Metric names:
 *
 * | metric | type | labels | meaning |
 * | --- | --- | --- | --- |
 * | `cutter_nodes` | gauge | state | nodes by state (online, draining, offline) |
 * | `cutter_node_up` | gauge | node | 1 online or draining, 0 offline |
 * | `cutter_node_memory_total_bytes`, `cutter_node_memory_available_bytes` | gauge | node | live memory |
 * | `cutter_node_memory_offered_bytes` | gauge | node | memory cutter may commit there |
 * | `cutter_node_cpu_cores`, `cutter_node_cpu_load_percent` | gauge | node | CPU |
 * | `cutter_node_running_tasks`, `cutter_node_max_tasks` | gauge | node | tasks running / allowed |
 * | `cutter_node_gpu_memory_free_bytes` | gauge | node, gpu | per GPU that reports it |
 * | `cutter_node_ollama_models_loaded` | gauge | node | models in memory |
 * | `cutter_node_heartbeat_age_seconds` | gauge | node | since the controller last heard from it |
 * | `cutter_tasks` | gauge | state, kind | tasks the controller keeps, by state |
 * | `cutter_queue_length` | gauge | | tasks waiting for a node |
 * | `cutter_placements_total` | counter | kind | attempts placed |
 * | `cutter_rejections_total` | counter | reason | nodes rejected for a task no node fits, by reason class (memory, offline, …); counted when a task's answer changes, not at every retry |
 * | `cutter_task_wait_seconds` | histogram | kind | submit → running (controller's clock) |
 * | `cutter_task_run_seconds` | histogram | kind, state | running → finished |
 * | `cutter_broker_clients` | gauge | | clients connected to the embedded broker |
 * | `cutter_broker_messages_received_total`, `cutter_broker_messages_sent_total` | counter | | PUBLISH packets in from clients / delivered to subscribers |
 *
 * plus prom-client's default process metrics (`cutter_process_*`, `cutter_nodejs_*`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { warnCounts } from '../../shared/warn-limiter.js';
import { rejectionLabel } from '../../shared/reasons.js';
import { isTerminal, type TaskState } from '../../shared/schemas/index.js';
import type { Extension, ExtensionContext } from './extension.js';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class MetricsExtension implements Extension {
  readonly name = 'metrics';
  readonly registry = new Registry();
  private readonly off: (() => void)[] = [];
  /** taskId/attempt → when the controller saw it running (ms, controller clock). Bounded. */
  private readonly runningSince = new Map<string, number>();

  constructor(private readonly ctx: ExtensionContext) {}

  /** The exposition text. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async start(): Promise<void> {
    const { controller, broker } = this.ctx;
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'cutter_' });
    const views = () => controller.registry.views(Date.now());

    new Gauge({
      name: 'cutter_nodes',
      help: 'Nodes by state',
      labelNames: ['state'],
      registers: [r],
      collect() {
        this.reset();
        const counts: Record<string, number> = { online: 0, draining: 0, offline: 0 };
        for (const v of views()) counts[v.state]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    const perNode = (name: string, help: string, value: (v: ReturnType<typeof views>[number]) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['node'],
        registers: [r],
        collect() {
          this.reset();
          for (const v of views()) {
            const x = value(v);
            if (x !== null && x !== undefined) this.set({ node: v.node }, x);
          }
        },
      });
    perNode('cutter_node_up', '1 when the node is online or draining, 0 when offline', (v) => (v.state === 'offline' ? 0 : 1));
    perNode('cutter_node_memory_total_bytes', 'Memory of the node, bytes', (v) => v.status.capacity?.memory.total);
    perNode(
      'cutter_node_memory_available_bytes',
      'Memory available on the node (MemAvailable), bytes',
      (v) => v.status.capacity?.memory.available,
    );
    perNode('cutter_node_memory_offered_bytes', 'Memory cutter may commit on the node, bytes', (v) =>
      v.status.offer ? (v.status.offer.maxMemory ?? v.status.capacity?.memory.total) : null,
    );
    perNode('cutter_node_cpu_cores', 'CPU cores of the node', (v) => v.status.capacity?.cpu.cores);
    perNode('cutter_node_cpu_load_percent', 'CPU load of the node over all cores, percent', (v) => v.status.capacity?.cpu.loadPercent);
    perNode('cutter_node_running_tasks', 'Tasks the node reports running', (v) => v.status.running.length);
    perNode('cutter_node_max_tasks', 'Concurrent tasks the node allows', (v) => v.status.offer?.maxTasks);
    perNode(
      'cutter_node_ollama_models_loaded',
      'Ollama models loaded in memory on the node',
      (v) => v.status.capacity?.ollama?.loaded.length,
    );
    perNode('cutter_node_heartbeat_age_seconds', 'Seconds since the controller last heard from the node', (v) => v.lastSeenAgoMs / 1000);
    new Gauge({
      name: 'cutter_node_lending',
      help: 'Lending state of each node with a lending policy (issue 17): 1 for its state (lending, suspended, closed), 0 for the others',
      labelNames: ['node', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const v of views()) {
          const l = v.status.lending;
          if (l) for (const state of ['lending', 'suspended', 'closed']) this.set({ node: v.node, state }, l.state === state ? 1 : 0);
        }
      },
    });
    new Counter({
      name: 'cutter_input_rejected_total',
      help: 'Network input this process dropped or refused, by kind (shared/warn-limiter.ts; logged at most once per 10 s per kind)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        this.reset();
        for (const [kind, n] of warnCounts) if (kind !== 'controller-backlog') this.inc({ kind }, n);
      },
    });
    new Gauge({
      name: 'cutter_node_gpu_memory_free_bytes',
      help: 'Free memory of each GPU that reports it, bytes',
      labelNames: ['node', 'gpu'],
      registers: [r],
      collect() {
        this.reset();
        for (const v of views()) {
          (v.status.capacity?.gpus ?? []).forEach((g, i) => {
            if (g.memoryFree !== null) this.set({ node: v.node, gpu: String(i) }, g.memoryFree);
          });
        }
      },
    });
    new Gauge({
      name: 'cutter_tasks',
      help: 'Tasks the controller keeps, by state and kind',
      labelNames: ['state', 'kind'],
      registers: [r],
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const rec of controller.tasks.all()) {
          const key = `${rec.state.state}\u0000${rec.state.kind}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) {
          const [state, kind] = key.split('\u0000');
          this.set({ state, kind }, n);
        }
      },
    });
    new Gauge({
      name: 'cutter_queue_length',
      help: 'Tasks waiting for a node',
      registers: [r],
      collect() {
        this.set(controller.tasks.queued().length);
      },
    });
    const placements = new Counter({
      name: 'cutter_placements_total',
      help: 'Attempts placed on a node',
      labelNames: ['kind'],
      registers: [r],
    });
    const rejections = new Counter({
      name: 'cutter_rejections_total',
      help: 'Nodes rejected for a task that no node fits, by reason class (counted when the answer changes, not at every retry)',
      labelNames: ['reason'],
      registers: [r],
    });
    const wait = new Histogram({
      name: 'cutter_task_wait_seconds',
      help: 'Submit to running, seconds (controller clock)',
      labelNames: ['kind'],
      buckets: DURATION_BUCKETS,
      registers: [r],
    });
    const run = new Histogram({
      name: 'cutter_task_run_seconds',
      help: 'Running to finished, seconds',
      labelNames: ['kind', 'state'],
      buckets: DURATION_BUCKETS,
      registers: [r],
    });
    this.off.push(
      controller.events.on('placed', (p) => placements.inc({ kind: p.kind })),
      controller.events.on('rejected', (p) => {
        for (const rej of p.rejections) rejections.inc({ reason: rejectionLabel(rej.code) });
      }),
      controller.events.on('task', (s) => this.onTask(s, wait, run)),
    );

    if (broker) {
      new Gauge({
        name: 'cutter_broker_clients',
        help: 'Clients connected to the embedded broker',
        registers: [r],
        collect() {
          this.set(broker.stats().clients);
        },
      });
      const counterFrom = (name: string, help: string, read: () => number) => {
        let last = 0;
        new Counter({
          name,
          help,
          registers: [r],
          collect() {
            const now = read();
            if (now > last) this.inc(now - last);
            last = now;
          },
        });
      };
      counterFrom(
        'cutter_broker_messages_received_total',
        'PUBLISH packets the embedded broker received from clients',
        () => broker.stats().messagesIn,
      );
      counterFrom(
        'cutter_broker_messages_sent_total',
        'PUBLISH packets the embedded broker delivered to subscribers',
        () => broker.stats().messagesOut,
      );
    }
  }

  private onTask(s: TaskState, wait: Histogram, run: Histogram): void {
    const key = `${s.taskId}/${s.attempt}`;
    const now = Date.now();
    if (s.state === 'running' && !this.runningSince.has(key)) {
      this.runningSince.set(key, now);
      wait.observe({ kind: s.kind }, Math.max(0, now - s.createdAt) / 1000);
      if (this.runningSince.size > 20_000) this.runningSince.delete(this.runningSince.keys().next().value!);
    } else if (isTerminal(s.state)) {
      const since = this.runningSince.get(key);
      if (since !== undefined) {
        run.observe({ kind: s.kind, state: s.state }, Math.max(0, now - since) / 1000);
        this.runningSince.delete(key);
      }
    }
  }

  async stop(): Promise<void> {
    for (const off of this.off) off();
    this.registry.clear();
  }
}
