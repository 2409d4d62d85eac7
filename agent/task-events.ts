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
import type { TaskEvent, TaskKind } from '../shared/schemas/index.js';
import type { Topics } from '../shared/topics.js';
import { ChunkBatcher } from './chunk-batcher.js';
import type { ExecutorContext, TaskHandle } from './executors/executor.js';
import { OutputBatcher } from './output-batcher.js';
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
  /** A stop (grace, ms) asked for before the workload started. */
  pendingStop?: number;
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

/** What ends a task's output batching (log text and structured chunks) before its result is sent. */
export interface Batcher {
  end(): void;
}

/** A new attempt record; a re-adopted one numbers its events from now (see the file comment). */
export function newAttempt(taskId: string, attempt: number, memory: number, recovered: boolean): Attempt {
  let markEnded!: () => void;
  const ended = new Promise<void>((r) => (markEnded = r));
  return { taskId, attempt, memory, seq: recovered ? Date.now() : 0, recovered, fenced: false, shutdown: false, ended, markEnded };
}

/** Publishes attempts' events and builds the context their executors stream into. */
export class TaskEvents {
  private client?: MqttClient;

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
    const event = {
      v: 1,
      taskId: task.taskId,
      attempt: task.attempt,
      node: this.node,
      seq: task.seq++,
      ts: Date.now(),
      ...body,
    } as TaskEvent;
    await this.client!.publishAsync(this.t.taskEvents(task.taskId), encode(event), { qos: 1 });
  }

  /** The context a task's executor streams into, and the batcher behind its output. */
  prepare(task: Attempt): { ctx: ExecutorContext; batcher: Batcher } {
    const quiet = (p: Promise<void>) => void p.catch(() => undefined);
    const output = new OutputBatcher((stream, data) => quiet(this.publish(task, { type: 'log', stream, data })));
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
      output: (stream, chunk) => output.write(stream, chunk),
      chunk: (obj) => chunks.push(obj),
      progress: (p) => quiet(this.publish(task, { type: 'progress', ...p })),
      started: (ref) => quiet(this.publish(task, { type: 'started', ref })),
      published: (ports) => {
        for (const s of this.services) s.taskPublished?.(task.taskId, task.attempt, ports);
      },
    };
    return { ctx, batcher };
  }
}
