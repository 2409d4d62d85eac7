/**
 * One attempt as the agent tracks it, and the events it streams back on
 * `cutter/v1/tasks/{task}/events` (shared/schemas: TaskEvent): the envelope (v, ids, node, seq,
 * ts) is added here, output is batched (agent/output-batcher.ts, agent/chunk-batcher.ts).
 *
 * Event `seq` numbers increase per attempt but are not dense: a fresh attempt counts from 0, a
 * re-adopted one continues from `Date.now()` at re-adoption, above anything the previous process
 * can have sent (it sends far fewer than 1,000 events a second; a wall clock set back by more
 * than the previous process's uptime would break this).
 */
import { encode } from '../shared/codec.js';
import type { MqttClient } from '../shared/mqtt.js';
import { logFields } from '../shared/log-data.js';
import { encodeLogFrame } from '../shared/log-frame.js';
import { keyOf } from './attempts.js';
import type { Ack, NodeStatus, TaskEvent, TaskKind } from '../shared/schemas/index.js';
import type { Topics } from '../shared/topics.js';
import { ChunkBatcher } from './chunk-batcher.js';
import type { ExecutorContext, TaskHandle } from './executors/executor.js';
import { OutputBatcher } from './output-batcher.js';
import { CreditGate, type ReleaseReason } from './output-credit.js';
import { OutputWindow } from './output-window.js';

/**
 * Bytes of a task's output in flight to the broker (published, not yet acknowledged) before the
 * executor stops reading the workload's output (agent/output-window.ts).
 */
export const OUTPUT_WINDOW_BYTES = 8 * 1024 * 1024;
import type { AgentService } from './service.js';

/** One attempt this agent runs (or is starting, or is stopping). */
export interface Attempt {
  taskId: string;
  attempt: number;
  /** Memory committed to the attempt by its placement, bytes. */
  memory: number;
  /** Its kind (absent for a re-adopted task). */
  kind?: TaskKind;
  handle?: TaskHandle;
  /** Sequence number of the next event. */
  seq: number;
  /** Re-adopted from a previous agent process. */
  recovered: boolean;
  /** A newer attempt of the task arrived: this one is being stopped and its events are dropped. */
  fenced: boolean;
  /** The agent's shutdown stopped it: reported `failed` AGENT_SHUTDOWN instead of its result. */
  shutdown: boolean;
  /** Its submitter credits what it read of the output (spec `credit`): the output is held to it (agent/output-credit.ts). */
  credit?: boolean;
  /** Its output goes out as binary frames (the assignment's `outputFrames`; shared/log-frame.ts), not base64 JSON. */
  frames?: boolean;
  /** The gate its output is held to, when `credit` (released when the attempt is stopped). */
  gate?: CreditGate;
  /** A stop (grace, ms) asked for before the workload started. */
  pendingStop?: number;
  /** UUIDs of the GPUs assigned to it (listed in the node status until it ends). */
  gpus?: string[];
  /** The container id or pid its executor started (`started` event), for suspending it (agent/lending). */
  ref?: string;
  /** Stopped because its node stopped lending (agent/lending): reported `failed` PREEMPTED with this reason. */
  preempted?: string;
  /** Resolves once the attempt has ended and left `running`. */
  ended: Promise<void>;
  markEnded: () => void;
}

/** An event without its envelope fields; `publish` adds v, ids, node, seq and ts. */
export type EventBody = TaskEvent extends infer E
  ? E extends TaskEvent
    ? Omit<E, 'v' | 'taskId' | 'attempt' | 'node' | 'seq' | 'ts'>
    : never
  : never;

/** What ends a task's output batching (log bytes and structured chunks) before its result is sent. */
export interface Batcher {
  end(): void;
}

/** A new attempt record; a re-adopted one numbers its events from now (see the file comment). */
export function newAttempt(taskId: string, attempt: number, memory: number, recovered: boolean): Attempt {
  let markEnded!: () => void;
  const ended = new Promise<void>((r) => (markEnded = r));
  return { taskId, attempt, memory, seq: recovered ? Date.now() : 0, recovered, fenced: false, shutdown: false, ended, markEnded };
}

/** Final events (result, failed) kept until the controller acknowledges them; the oldest is given up past this. */
export const MAX_UNACKED = 1_000;
/**
 * How long an unacknowledged final event waits before it is sent again, ms (besides at every
 * reconnect). Long on purpose: QoS 1 already carries it within a session, and a busy controller
 * that acks late must not be handed the same results again and again (that only makes it busier).
 */
export const RESEND_AFTER_MS = 30_000;

/**
 * Publishes attempts' events and builds the context their executors stream into. Final events
 * (`result`, `failed`) are kept until the controller acknowledges them on `nodes/{node}/ack`
 * (it does once it has committed them): they are sent again on reconnect and after RESEND_AFTER_MS,
 * and listed in the node status (`finished`), so a result is never lost to a server that died or
 * could not write before storing it.
 */
export class TaskEvents {
  private client?: MqttClient;
  /** Unacknowledged final events by `taskId:attempt`, oldest first, with when they were last sent (ms epoch). */
  private readonly unacked = new Map<string, { event: TaskEvent; sentAt: number }>();
  private resendTimer?: NodeJS.Timeout;
  /** Told when the oldest unacknowledged final event is given up (past MAX_UNACKED). */
  onGiveUp: (taskId: string, attempt: number) => void = () => undefined;

  /**
   * @param node this node's id (every event's `node`)
   * @param services told when a task's ports are published (agent/service.ts)
   */
  constructor(
    private readonly node: string,
    private readonly t: Topics,
    private readonly services: AgentService[],
  ) {}

  /** Gives the client events go out on (before it connects). */
  attach(client: MqttClient): void {
    this.client = client;
  }

  /**
   * Publishes one event of the attempt (QoS 1); nothing for a fenced attempt (the controller has
   * moved on to a newer one and would drop it as stale).
   * @throws the client's error when the broker does not take it.
   */
  async publish(task: Attempt, body: EventBody): Promise<void> {
    if (task.fenced) return;
    const event = { ...this.envelope(task), ...body } as TaskEvent;
    if (event.type === 'result' || event.type === 'failed') this.keep(event);
    // A Buffer, not the JSON string: while in flight (until its PUBACK) MQTT.js keeps the packet, and a
    // string would sit on the JS heap (promoted, then collected late), a Buffer only off-heap.
    await this.client!.publishAsync(this.t.taskEvents(task.taskId), Buffer.from(encode(event)), { qos: 1 });
  }

  /**
   * Publishes one batch of the attempt's output as a binary frame (QoS 1); nothing for a fenced attempt.
   * @throws the client's error when the broker does not take it.
   */
  async publishFrame(task: Attempt, stream: 'stdout' | 'stderr', bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (task.fenced) return;
    const header = { ...this.envelope(task), type: 'log', stream } as const;
    await this.client!.publishAsync(this.t.taskEvents(task.taskId), encodeLogFrame(header, bytes), { qos: 1 });
  }

  /** The envelope of the attempt's next event: v, ids, node, the next seq (taken now) and ts. */
  private envelope(task: Attempt): { v: 1; taskId: string; attempt: number; node: string; seq: number; ts: number } {
    return { v: 1, taskId: task.taskId, attempt: task.attempt, node: this.node, seq: task.seq++, ts: Date.now() };
  }

  /** Keeps a final event until its ack (bounded: the oldest is given up past MAX_UNACKED). */
  private keep(event: TaskEvent): void {
    const key = keyOf(event.taskId, event.attempt);
    this.unacked.delete(key);
    this.unacked.set(key, { event, sentAt: Date.now() });
    if (this.unacked.size > MAX_UNACKED) {
      const [oldest, { event: e }] = this.unacked.entries().next().value!;
      this.unacked.delete(oldest);
      this.onGiveUp(e.taskId, e.attempt);
    }
  }

  /** The controller has committed these final events: they are not sent again. */
  onAck(ack: Ack): void {
    for (const a of ack.acks) this.unacked.delete(keyOf(a.taskId, a.attempt));
  }

  /** Attempts whose final event waits for its ack, as NodeStatus lists them (`finished`). */
  finished(): NonNullable<NodeStatus['finished']> {
    return [...this.unacked.values()].map(({ event }) => ({ taskId: event.taskId, attempt: event.attempt }));
  }

  /**
   * Sends the unacknowledged final events again (same seq: the controller applies each once).
   * @param olderThanMs only those last sent at least this long ago (0 = all, as after a reconnect).
   */
  resend(olderThanMs = 0, now = Date.now()): void {
    if (!this.client) return;
    for (const entry of this.unacked.values()) {
      if (now - entry.sentAt < olderThanMs) continue;
      entry.sentAt = now;
      this.client.publishAsync(this.t.taskEvents(entry.event.taskId), encode(entry.event), { qos: 1 }).catch(() => undefined); // kept: sent again at the next round
    }
  }

  /** Sends unacknowledged final events again every `ms` (with the heartbeat); `stopResending()` ends it. */
  startResending(ms: number): void {
    clearInterval(this.resendTimer);
    this.resendTimer = setInterval(() => this.resend(ms), ms);
    this.resendTimer.unref();
  }

  stopResending(): void {
    clearInterval(this.resendTimer);
  }

  /**
   * The credit gate of a credit-gated attempt (agent/output-credit.ts), handed to the services that
   * feed it; its release by a silent reader is logged through `onCreditRelease`.
   */
  private creditGate(task: Attempt): CreditGate {
    const gate = new CreditGate((why, outstanding) => this.onCreditRelease(task.taskId, task.attempt, why, outstanding));
    for (const s of this.services) s.taskCredit?.(task.taskId, task.attempt, gate);
    return gate;
  }

  /** Told when a credit-gated attempt's reader is gone and its output is no longer held (for the agent's log). */
  onCreditRelease: (taskId: string, attempt: number, why: ReleaseReason, outstanding: number) => void = () => undefined;

  /** The context a task's executor streams into, and the batcher behind its output. */
  prepare(task: Attempt): { ctx: ExecutorContext; batcher: Batcher } {
    const quiet = (p: Promise<void>) => void p.catch(() => undefined);
    const window = new OutputWindow(OUTPUT_WINDOW_BYTES);
    const gate = task.credit ? this.creditGate(task) : undefined;
    task.gate = gate;
    const output = new OutputBatcher((stream, parts, n) => {
      // Only the count outlives this call: the chunks are not kept until the PUBACK (the message is a copy).
      window.add(n);
      if (!task.fenced) gate?.add(task.seq, n);
      (task.frames
        ? this.publishFrame(task, stream, parts)
        : this.publish(task, { type: 'log', stream, ...logFields(Buffer.concat(parts, n)) })
      )
        .catch(() => undefined)
        .finally(() => window.settle(n));
    });
    const chunks = new ChunkBatcher((list) => this.publish(task, { type: 'chunks', chunks: list }).catch(() => undefined));
    const batcher: Batcher = {
      end: () => {
        chunks.end();
        output.end();
      },
    };
    const ctx: ExecutorContext = {
      taskId: task.taskId,
      attempt: task.attempt,
      node: this.node,
      memory: task.memory,
      output: (stream, chunk) => {
        output.write(stream, chunk);
        return window.open && (gate?.open ?? true);
      },
      drained: () => window.drained().then(() => gate?.drained()),
      chunk: (obj) => chunks.push(obj),
      progress: (p) => quiet(this.publish(task, { type: 'progress', ...p })),
      started: (ref) => {
        task.ref = ref;
        return quiet(this.publish(task, { type: 'started', ref, ...(gate ? { credit: true } : {}) }));
      },
      stdin: (stream, resize) => {
        for (const s of this.services) s.taskStdin?.(task.taskId, task.attempt, stream, resize);
      },
      published: (ports) => {
        for (const s of this.services) s.taskPublished?.(task.taskId, task.attempt, ports);
      },
    };
    return { ctx, batcher };
  }
}
