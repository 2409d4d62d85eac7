/**
 * What every part of the controller shares (controller.ts builds it once): the store, the task
 * and node indexes, topics, logger, clock, audit log and event bus, plus the few actions they all
 * take — publish after commit, run work in the serial chain, publish a task's state, fence a
 * stale attempt — and `apply()`, which carries out the effects of a lifecycle step (lifecycle.ts).
 */
import type { AuditLog } from '../shared/audit.js';
import { encode } from '../shared/codec.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import type { Ack, Assignment, Cancel } from '../shared/schemas/index.js';
import type { Topics } from '../shared/topics.js';
import type { ControllerOptions } from './controller.js';
import type { ControllerEvents } from './events.js';
import { FENCE_REPEAT_MS, STOP_GRACE_MS, type Step } from './lifecycle.js';
import type { NodeRegistry } from './registry.js';
import type { StateStoreContract } from './state-contract.js';
import type { TaskRecord } from './task-record.js';
import type { TaskStore } from './task-store.js';
import { warnLimiter } from '../shared/warn-limiter.js';

/** Queue wait past which the controller warns that it is falling behind, ms. */
const BACKLOG_WARN_MS = 1_000;

export class ControllerContext {
  /** The MQTT client, once connected (start()). */
  client?: MqttClient;
  /** Asks for a placement pass soon (placement.ts sets it). */
  requestSchedule: () => void = () => undefined;
  /** Tail of the queue of controller work (see `serial`). */
  private chain: Promise<void> = Promise.resolve();
  /** `node/task/attempt` → until when a repeated fence is not sent again, ms epoch. */
  private readonly fenced = new Map<string, number>();

  constructor(
    readonly opts: ControllerOptions,
    readonly store: StateStoreContract,
    readonly tasks: TaskStore,
    readonly registry: NodeRegistry,
    readonly events: ControllerEvents,
    readonly audit: AuditLog,
    readonly t: Topics,
    readonly log: Logger,
    /** Clock, ms epoch. */
    readonly now: () => number,
    /** When the controller started, ms epoch. */
    readonly startedAt: number,
  ) {}

  /** The identity behind a client id, for the audit log and rate limits. */
  who(clientId: string): string {
    return this.opts.whoIs?.(clientId) ?? clientId;
  }

  /**
   * Publishes without waiting for the PUBACK: MQTT.js sends one client's messages in order and
   * keeps QoS 1 messages until acknowledged (resending after a reconnect), so handlers need not
   * wait, and they stay short enough to run one at a time (see `serial`). Said only once the
   * change it reports is committed (StateStore's group commit).
   */
  publish(topic: string, payload: string, opts: { qos: 1; retain?: boolean }): void {
    this.store.afterCommit(() =>
      this.client!.publish(topic, payload, opts, (err) => {
        if (err) this.log.warn({ topic, err }, 'publish failed');
      }),
    );
  }

  /**
   * Runs controller work one piece at a time, in arrival order: message handlers, timers and
   * placement passes never interleave, so no decision is taken on a picture another handler is
   * changing halfway. A failure is logged with its stack and does not stop the chain.
   */
  serial(what: string, fn: () => Promise<void> | void): Promise<void> {
    const queuedAt = Date.now();
    const run = this.chain
      .then(() => {
        const waitedMs = Date.now() - queuedAt;
        // A controller that falls behind says so (at most one line per 10 s, with a count).
        if (waitedMs > BACKLOG_WARN_MS)
          warnLimiter(this.log).warn('controller-backlog', { what, waitedMs }, 'controller work waited in its queue');
        return fn();
      })
      .catch((err: unknown) => this.log.error({ err }, `${what} failed`));
    this.chain = run;
    return run;
  }

  /** Publishes the task's state (retained) and tells observers. */
  publishState(record: TaskRecord): void {
    this.publish(this.t.taskState(record.state.taskId), encode(record.state), { qos: 1, retain: true });
    this.events.emit('task', record.state);
  }

  /**
   * Tells a node to stop an attempt the mesh no longer wants there (fencing), at most every FENCE_REPEAT_MS.
   * @param reason said in the Cancel: the task is unknown here, or the attempt is stale (default).
   */
  fence(node: string, taskId: string, attempt: number, why: string, reason: Cancel['reason'] = 'stale-attempt'): void {
    const key = `${node}/${taskId}/${attempt}`;
    const now = this.now();
    if ((this.fenced.get(key) ?? 0) > now) return;
    this.fenced.set(key, now + FENCE_REPEAT_MS);
    if (this.fenced.size > 10_000) for (const [k, until] of this.fenced) if (until < now) this.fenced.delete(k);
    this.log.warn({ node, taskId, attempt, why }, 'fencing a stale attempt');
    this.sendCancel(node, taskId, attempt, STOP_GRACE_MS, reason);
  }

  private sendCancel(node: string, taskId: string, attempt: number, graceMs: number, reason?: Cancel['reason']): void {
    const cancel: Cancel = { v: 1, taskId, attempt, graceMs, ...(reason ? { reason } : {}) };
    this.publish(this.t.nodeCancel(node), encode(cancel), { qos: 1 });
  }

  /**
   * Acknowledges a node's final event (result/failed) of (task, attempt) once everything written
   * so far is committed (docs/protocol.md, Ack): until then the agent keeps and re-sends it.
   */
  ack(node: string, taskId: string, attempt: number): void {
    const ack: Ack = { v: 1, acks: [{ taskId, attempt }] };
    this.publish(this.t.nodeAck(node), encode(ack), { qos: 1 });
  }

  /** Publishes at once, not after pending writes (replies to reads and refusals while commits fail). */
  publishNow(topic: string, payload: string, opts: { qos: 1; retain?: boolean }): void {
    this.client?.publish(topic, payload, opts, (err) => {
      if (err) this.log.warn({ topic, err }, 'publish failed');
    });
  }

  /**
   * Carries out a lifecycle step's effects, in order (see lifecycle.ts `Effect`).
   * @param event the agent's event, for a step that keeps it.
   */
  apply(record: TaskRecord, step: Step, event?: import('../shared/schemas/index.js').TaskEvent): void {
    const taskId = record.state.taskId;
    for (const e of step.effects) {
      switch (e.type) {
        case 'keep-event':
          if (event) {
            this.store.appendEvent(event, this.opts.maxLogBytes);
            this.events.emit('taskEvent', event);
          }
          break;
        case 'write':
          if (e.patch) {
            if (this.tasks.update(record, e.patch, e.extra, this.now()) && e.publish) this.publishState(record);
          } else {
            Object.assign(record, e.extra);
            this.tasks.save(record);
          }
          break;
        case 'note':
          Object.assign(record, e.extra);
          break;
        case 'reserve':
          this.registry.reserve(e.node, taskId, e.memory);
          break;
        case 'release':
          this.registry.release(e.node, taskId);
          break;
        case 'assign': {
          const assignment: Assignment = {
            v: 1,
            taskId,
            attempt: e.attempt,
            leaseExpiresAt: e.leaseExpiresAt,
            spec: record.spec,
            requirements: record.state.requirements,
            nodeRunId: this.registry.get(e.node)?.runId ?? null,
            ...(record.gpus ? { gpus: record.gpus } : {}),
            outputFrames: true,
          };
          this.publish(this.t.nodeAssign(e.node), encode(assignment), { qos: 1 });
          break;
        }
        case 'cancel':
          this.sendCancel(e.node, taskId, e.attempt, e.graceMs);
          break;
        case 'fence':
          this.fence(e.node, taskId, e.attempt, e.why);
          break;
        case 'retry':
          this.log.info({ taskId, attempt: record.state.attempt, end: e.end, delayMs: e.delayMs, why: e.why }, 'rescheduling');
          setTimeout(() => this.requestSchedule(), e.delayMs + 5).unref();
          break;
        case 'finished':
          this.finished(record);
          break;
      }
    }
  }

  /** A task ended: logged, audited, old finished tasks evicted (their retained state cleared), others placed. */
  private finished(record: TaskRecord): void {
    const s = record.state;
    this.log.info(
      { taskId: s.taskId, state: s.state, node: s.node, attempt: s.attempt, exitCode: s.exitCode, error: s.error?.message },
      'task finished',
    );
    this.audit.record({
      who: 'controller',
      action: 'finish',
      outcome: s.state,
      taskId: s.taskId,
      ...(s.node ? { node: s.node } : {}),
      detail: s.error ? `${s.error.code}: ${s.error.message}` : `exit code ${s.exitCode}`,
    });
    for (const id of this.tasks.evictFinished()) this.publish(this.t.taskState(id), '', { qos: 1, retain: true });
    this.requestSchedule();
  }
}
