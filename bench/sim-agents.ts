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
  /**
   * When set, an agent not started (connected, subscribed, first status acknowledged) within this
   * many ms, or failing, is closed and counted in `failed` instead of failing the start, and no
   * further batch is started. Unset: wait for every agent and throw on the first error.
   */
  startTimeoutMs?: number;
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
  /** Agents started; agents that did not start within `startTimeoutMs` or failed (closed). */
  started: number;
  failed: number;
  /**
   * Heartbeat statuses published (the first one included) and acknowledged by the broker, their
   * JSON payload bytes, and their whole MQTT 3.1.1 PUBLISH packets in bytes (publishPacketBytes).
   */
  statusMessages: number;
  statusAcked: number;
  statusPayloadBytes: number;
  statusPacketBytes: number;
  /**
   * Closes every connection (a clean disconnect after an `offline` status); `force` closes the
   * sockets at once without waiting for unacknowledged messages (for a broker that fell behind).
   */
  stop(force?: boolean): Promise<void>;
}

const GiB = 1024 ** 3;

/**
 * Bytes of an MQTT 3.1.1 QoS 1 PUBLISH on the wire: fixed header (1 byte + 1-4 bytes of remaining
 * length), topic (2-byte length + UTF-8), packet id (2 bytes) and payload; TCP/IP headers not included.
 */
export function publishPacketBytes(topic: string, payloadBytes: number): number {
  const rest = 2 + Buffer.byteLength(topic) + 2 + payloadBytes;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
}

/** Rejects after `ms` (never when `ms` is undefined); the timer does not keep the process alive. */
const timeout = (ms: number | undefined): Promise<never> =>
  new Promise((_, reject) => {
    if (ms !== undefined) setTimeout(() => reject(new Error(`not started within ${ms} ms`)), ms).unref();
  });

/** Connects `count` simulated agents and resolves once every one has published its first status. */
export async function startSimAgents(opts: SimOptions): Promise<SimAgents> {
  const t = topics();
  const prefix = opts.prefix ?? 'sim-';
  const clients: MqttClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  const sim: SimAgents = {
    assigned: 0,
    results: 0,
    invalid: 0,
    firstAssignedAt: 0,
    lastAssignedAt: 0,
    started: 0,
    failed: 0,
    statusMessages: 0,
    statusAcked: 0,
    statusPayloadBytes: 0,
    statusPacketBytes: 0,
    async stop(force = false) {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      await Promise.all(clients.map((c) => c.endAsync(force).catch(() => undefined)));
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
    const client = mqtt.connect(opts.broker, {
      clientId: `cutter-agent-${node}`,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 1000,
      will: { topic: t.nodeStatus(node), payload: Buffer.from(encode(will)), qos: 1, retain: true },
    });
    clients.push(client); // from the start, so that stop() also ends one still connecting
    // As mqtt.connectAsync: resolves at the CONNACK, rejects on an error; or gives up after startTimeoutMs.
    const connected = new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        client.off('connect', onConnect).off('error', done);
        if (err) reject(err);
        else resolve();
      };
      const onConnect = () => done();
      client.on('connect', onConnect).on('error', done);
    });
    await Promise.race([connected, timeout(opts.startTimeoutMs)]).catch((err: unknown) => {
      client.end(true);
      throw err;
    });
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    const statusTopic = t.nodeStatus(node);
    /** The next status, encoded, counted in the heartbeat figures. */
    const statusPayload = (): string => {
      const payload = encode(status());
      const bytes = Buffer.byteLength(payload);
      sim.statusMessages++;
      sim.statusPayloadBytes += bytes;
      sim.statusPacketBytes += publishPacketBytes(statusTopic, bytes);
      return payload;
    };
    const beat = () =>
      client.publish(statusTopic, statusPayload(), { qos: 1, retain: true }, (err) => {
        if (!err) sim.statusAcked++;
      });
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
    const handshake = (async () => {
      await client.subscribeAsync([t.nodeAssign(node), t.nodeCancel(node)], { qos: 1 });
      await client.publishAsync(statusTopic, statusPayload(), { qos: 1, retain: true });
      sim.statusAcked++;
    })();
    await Promise.race([handshake, timeout(opts.startTimeoutMs)]).catch((err: unknown) => {
      client.end(true);
      throw err;
    });
    if (stopped) return;
    sim.started++;
    // Heartbeats spread over the interval, as independent machines' would be.
    const first = setTimeout(() => {
      beat();
      timers.push(setInterval(beat, opts.heartbeatMs));
    }, Math.random() * opts.heartbeatMs);
    timers.push(first);
  };

  const batch = opts.connectBatch ?? 50;
  for (let i = 0; i < opts.count; i += batch) {
    const starts = Array.from({ length: Math.min(batch, opts.count - i) }, (_, k) => startOne(i + k));
    if (opts.startTimeoutMs === undefined) {
      await Promise.all(starts);
      continue;
    }
    const failed = (await Promise.allSettled(starts)).filter((s) => s.status === 'rejected').length;
    sim.failed += failed;
    if (failed > 0) break;
  }
  return sim;
}
