/**
 * Many simulated agents in one process, for the load benchmarks: each is a real MQTT connection
 * speaking the real protocol (shared/topics.ts, shared/schemas) — a retained NodeStatus at every
 * heartbeat with a retained `offline` last will, a subscription to its own assignments, and for
 * each assignment (validated with AssignmentSchema, as the agent does) the events `accepted`,
 * `started` and a `result` with exit code 0 — but runs nothing: a no-op task costs the simulated
 * node no time, so what is measured is the broker and the controller.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { decode, encode } from '../shared/codec.js';
import { AssignmentSchema, type NodeStatus, type TaskEvent } from '../shared/schemas/index.js';
import { topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';

export interface SimOptions {
  broker: string;
  /** How many agents. */
  count: number;
  /** Node ids are `${prefix}${i}`. */
  prefix?: string;
  heartbeatMs: number;
  /** Concurrent tasks each node offers. */
  maxTasks: number;
  /** Connections opened at once while starting. */
  connectBatch?: number;
}

export interface SimAgents {
  /** Assignments received, all agents (the controller's placements). */
  assigned: number;
  /** Results published. */
  results: number;
  /** Invalid assignments received (should stay 0). */
  invalid: number;
  /** performance.now() of the first and last assignment received. */
  firstAssignedAt: number;
  lastAssignedAt: number;
  /** Closes every connection (a clean disconnect after an `offline` status). */
  stop(): Promise<void>;
}

const GiB = 1024 ** 3;

/** Connects `count` simulated agents and resolves once every one has published its first status. */
export async function startSimAgents(opts: SimOptions): Promise<SimAgents> {
  const t = topics();
  const prefix = opts.prefix ?? 'sim-';
  const clients: MqttClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  const sim: SimAgents = {
    assigned: 0,
    results: 0,
    invalid: 0,
    firstAssignedAt: 0,
    lastAssignedAt: 0,
    async stop() {
      for (const timer of timers) clearInterval(timer);
      await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
    },
  };

  const startOne = async (i: number) => {
    const node = `${prefix}${i}`;
    const runId = randomBytes(6).toString('hex');
    let seq = 0;
    let eventSeq = 0;
    const status = (): NodeStatus => ({
      v: 1,
      node,
      state: 'online',
      version: VERSION,
      seq: seq++,
      ts: Date.now(),
      heartbeatMs: opts.heartbeatMs,
      runId,
      capacity: {
        cpu: { cores: 8, loadPercent: 1 },
        memory: { total: 32 * GiB, available: 30 * GiB },
        gpus: [],
        docker: { available: false },
      },
      offer: { maxMemory: null, maxTasks: opts.maxTasks, executors: ['exec'], labels: {}, lostAfterMs: 0 },
      running: [],
    });
    const will = {
      v: 1,
      node,
      state: 'offline',
      version: VERSION,
      seq: 0,
      ts: Date.now(),
      heartbeatMs: opts.heartbeatMs,
      running: [],
      reason: 'connection lost',
    };
    const client = await mqtt.connectAsync(opts.broker, {
      clientId: `cutter-agent-${node}`,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 1000,
      will: { topic: t.nodeStatus(node), payload: Buffer.from(encode(will)), qos: 1, retain: true },
    });
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    clients.push(client);
    const publish = (topic: string, payload: unknown, retain = false) =>
      client.publish(topic, encode(payload), { qos: 1, retain }, () => undefined);
    client.on('message', (topic, payload) => {
      if (topic !== t.nodeAssign(node)) return; // cancels: nothing runs long enough to stop
      const decoded = decode(AssignmentSchema, payload);
      if (!decoded.ok) {
        sim.invalid++;
        return;
      }
      const a = decoded.value;
      const now = performance.now();
      if (sim.assigned++ === 0) sim.firstAssignedAt = now;
      sim.lastAssignedAt = now;
      const base = { v: 1 as const, taskId: a.taskId, attempt: a.attempt, node };
      const ts = Date.now();
      const events: TaskEvent[] = [
        { ...base, type: 'accepted', seq: eventSeq++, ts },
        { ...base, type: 'started', seq: eventSeq++, ts },
        { ...base, type: 'result', seq: eventSeq++, ts, exitCode: 0, oomKilled: false, cancelled: false, startedAt: ts, finishedAt: ts },
      ];
      for (const e of events) publish(t.taskEvents(a.taskId), e);
      sim.results++;
    });
    await client.subscribeAsync([t.nodeAssign(node), t.nodeCancel(node)], { qos: 1 });
    await client.publishAsync(t.nodeStatus(node), encode(status()), { qos: 1, retain: true });
    // Heartbeats spread over the interval, as independent machines' would be.
    const first = setTimeout(() => {
      publish(t.nodeStatus(node), status(), true);
      timers.push(setInterval(() => publish(t.nodeStatus(node), status(), true), opts.heartbeatMs));
    }, Math.random() * opts.heartbeatMs);
    timers.push(first);
  };

  const batch = opts.connectBatch ?? 50;
  for (let i = 0; i < opts.count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, opts.count - i) }, (_, k) => startOne(i + k)));
  }
  return sim;
}
