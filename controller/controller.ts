/**
 * The controller: keeps the node registry from retained heartbeats, places tasks with the pure
 * scheduler (queueing what does not fit), drives each task's lifecycle from its agent's events,
 * detects dead nodes, reschedules lost attempts by the task's restart policy, fences stale
 * attempts, stores everything in the StateStore before acting on it, publishes retained task
 * state and answers client requests. It is an ordinary MQTT client of its broker.
 *
 * Lifecycle: queued → assigned (lease) → running → succeeded | failed | cancelled;
 *            assigned/running → unknown (node disconnected, inside its lost-after window) → running;
 *            an attempt that is lost (node lost, lease expired, agent shut down) → queued again
 *            (attempt + 1, after a backoff) or `lost` when the restart policy says no.
 */
import type { PlacementRule } from '../shared/ollama.js';
import { randomBytes } from 'node:crypto';
import { clip, encode } from '../shared/codec.js';
import { CutterError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { MessageRouter, connectMqtt, type MqttClient } from '../shared/mqtt.js';
import {
  NodeStatusSchema,
  RequestSchema,
  TaskEventSchema,
  isTerminal,
  type Assignment,
  type Cancel,
  type ControllerStatus,
  type NodeStatus,
  type NodeView,
  type Reply,
  type Request,
  type TaskEvent,
  type TaskState,
} from '../shared/schemas/index.js';
import { topics, type Topics } from '../shared/topics.js';
import { formatDuration } from '../shared/units.js';
import { VERSION } from '../shared/version.js';
import type { IdentityStore } from '../broker/identities.js';
import { AuditLog } from '../shared/audit.js';
import { RateLimiter } from '../shared/rate-limit.js';
import { join } from 'node:path';
import { ControllerEvents } from './events.js';
import { NodeRegistry } from './registry.js';
import { place } from './scheduler/place.js';
import { STALE_AFTER_HEARTBEATS } from './scheduler/snapshot.js';
import { StateStore } from './state-store.js';
import { NODE_FAULT_CODES, backoffMs, wantsRetry, type AttemptEnd, type TaskRecord } from './task-record.js';
import { TaskStore } from './task-store.js';

export interface ControllerOptions {
  brokerUrl: string;
  /** Dial the embedded broker in process (no socket) instead of `brokerUrl`. */
  streamBuilder?: () => import('node:stream').Duplex;
  prefix: string;
  /** How long an agent has to accept an assignment, ms. */
  leaseMs: number;
  policy: 'spread' | 'binpack';
  /** Rules of the Ollama placement file (`--ollama-placement`); none = any node may serve any model. */
  modelRules?: readonly PlacementRule[];
  keepFinished: number;
  /** Directory of the state database. */
  dataDir: string;
  /** Log bytes kept per task. */
  maxLogBytes: number;
  /** After start, how long nodes have to report back before their tasks count as disconnected, ms. */
  startupGraceMs: number;
  username?: string;
  password?: string;
  log: Logger;
  /** Clock, ms epoch (tests may pass their own). */
  now?: () => number;
  /** The embedded broker's identities, for token requests; absent with an external broker. */
  identities?: IdentityStore;
  /** Who a client id is (the embedded broker knows); absent: the client id itself. */
  whoIs?: (clientId: string) => string | undefined;
  /** Where every submission, placement, cancel, drain and token change is recorded; default `<dataDir>/audit.jsonl`. */
  audit?: AuditLog;
  /** Submissions per identity per minute (bursts up to as many). Default 120. */
  submitsPerMinute?: number;
  /** Identities (or client ids) exempt from the submit rate limit: the server's own extensions. */
  exemptFromRateLimit?: (who: string) => boolean;
}

/** How often timers are checked (staleness, leases, lost-after windows, timeouts), ms. */
const SWEEP_MS = 200;
/** A stale attempt still reported by a node is told to stop at most this often, ms. */
const FENCE_REPEAT_MS = 5_000;
/** How long after its result a finished attempt may still be listed by its node without being fenced, ms. */
const FINISHING_GRACE_MS = 30_000;
/** Heartbeats that may miss a running attempt before it counts as lost. */
const MISSING_HEARTBEATS = 2;

export class Controller {
  readonly registry: NodeRegistry;
  readonly tasks: TaskStore;
  /** What extensions (Home Assistant, metrics, dashboard) observe; see controller/events.ts. */
  readonly events = new ControllerEvents();
  private readonly store: StateStore;
  private readonly t: Topics;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly fenced = new Map<string, number>();
  readonly audit: AuditLog;
  private readonly submits: RateLimiter;
  private client?: MqttClient;
  private sweepTimer?: NodeJS.Timeout;
  private schedulePending = false;
  private sweeping = false;
  /** Tail of the queue of controller work (see `serial`). */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ControllerOptions) {
    this.t = topics(opts.prefix);
    this.log = opts.log.child({ component: 'controller' });
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.store = new StateStore(opts.dataDir);
    this.store.onCommitError = (err) =>
      this.log.error({ err: errorMessage(err) }, 'state commit failed: the changes of this turn are rolled back and not announced');
    this.registry = new NodeRegistry(this.store.drainedNodes());
    this.tasks = new TaskStore(this.store, opts.keepFinished);
    this.audit = opts.audit ?? new AuditLog(join(opts.dataDir, 'audit.jsonl'));
    this.submits = new RateLimiter(opts.submitsPerMinute ?? 120);
  }

  /** The identity behind a client id, for the audit log and rate limits. */
  private who(clientId: string): string {
    return this.opts.whoIs?.(clientId) ?? clientId;
  }

  /** Connects (retrying until the broker answers), subscribes, republishes task state, announces itself. */
  async start(): Promise<void> {
    const offline: ControllerStatus = { v: 1, state: 'offline', version: VERSION, ts: this.now() };
    let router!: MessageRouter;
    const client = await connectMqtt({
      url: this.opts.brokerUrl,
      streamBuilder: this.opts.streamBuilder,
      clientId: `cutter-controller-${this.opts.prefix}`,
      clean: false,
      keepaliveSec: 10,
      username: this.opts.username,
      password: this.opts.password,
      will: { topic: this.t.controllerStatus(), payload: encode(offline), qos: 1, retain: true },
      log: this.log,
      onClient: (c) => {
        // Routes before the CONNACK: a persistent session's queued events arrive right after it.
        this.client = c;
        router = new MessageRouter(c, this.log);
        router.route(this.t.allNodeStatus(), NodeStatusSchema, (s, topic) => this.serial('node status', () => this.onNodeStatus(s, topic)));
        router.route(this.t.allTaskEvents(), TaskEventSchema, (e, topic) => this.serial('task event', () => this.onTaskEvent(e, topic)));
        router.route(this.t.allRequests(), RequestSchema, (r, topic) => this.serial('request', () => this.onRequest(r, topic)), {
          onEmpty: (topic) => this.log.warn({ topic }, 'dropped empty request'),
          onInvalid: (topic, payload, error) => this.serial('invalid request', () => this.rejectInvalidRequest(topic, payload, error)),
        });
      },
    });
    await router.subscribeAll();
    // The broker may have lost its retained messages (an embedded broker restarts with us).
    let live = 0;
    for (const r of this.tasks.all()) {
      if (!isTerminal(r.state.state)) live++;
      await this.publishState(r);
    }
    await this.publishStatus('online');
    client.on('connect', () => void this.publishStatus('online').catch(() => undefined));
    this.sweepTimer = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = true;
      void this.serial('sweep', () => this.sweep()).finally(() => (this.sweeping = false));
    }, SWEEP_MS);
    this.requestSchedule();
    this.log.info(
      { broker: this.opts.brokerUrl, prefix: this.opts.prefix, dataDir: this.opts.dataDir, recoveredTasks: live },
      'controller started',
    );
  }

  /** Whether an attempt of the task was ever placed on the node (for the broker's ACL); undefined for a task it does not know. */
  placedOn(taskId: string, node: string): boolean | undefined {
    const record = this.tasks.get(taskId);
    return record ? (record.nodes?.includes(node) ?? false) : undefined;
  }

  /** Announces `offline` (retained), disconnects and closes the store. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    if (this.client) {
      await this.publishStatus('offline').catch(() => undefined);
      await this.client.endAsync();
    }
    this.store.close();
    await this.audit.close();
  }

  /**
   * Publishes without waiting for the PUBACK: MQTT.js sends one client's messages in order and
   * keeps QoS 1 messages until acknowledged (resending after a reconnect), so handlers need not
   * wait, and they stay short enough to run one at a time (see `serial`).
   */
  private publish(topic: string, payload: string, opts: { qos: 1; retain?: boolean }): void {
    // Said only once the change it reports is committed (StateStore's group commit).
    this.store.afterCommit(() =>
      this.client!.publish(topic, payload, opts, (err) => {
        if (err) this.log.warn({ topic, err: errorMessage(err) }, 'publish failed');
      }),
    );
  }

  /**
   * Runs controller work one piece at a time, in arrival order: message handlers, timers and
   * placement passes never interleave, so no decision is taken on a picture another handler is
   * changing halfway.
   */
  private serial(what: string, fn: () => Promise<void> | void): Promise<void> {
    const run = this.chain
      .then(fn)
      .catch((err: unknown) => this.log.error({ err: errorMessage(err), stack: (err as Error)?.stack }, `${what} failed`));
    this.chain = run;
    return run;
  }

  private async publishStatus(state: 'online' | 'offline'): Promise<void> {
    const status: ControllerStatus = { v: 1, state, version: VERSION, ts: this.now() };
    await this.client!.publishAsync(this.t.controllerStatus(), encode(status), { qos: 1, retain: true });
  }

  private async publishState(record: TaskRecord): Promise<void> {
    this.publish(this.t.taskState(record.state.taskId), encode(record.state), { qos: 1, retain: true });
    this.events.emit('task', record.state);
  }

  /** Tells a node to stop an attempt the mesh no longer wants there (fencing). */
  private async fence(node: string, taskId: string, attempt: number, why: string): Promise<void> {
    const key = `${node}/${taskId}/${attempt}`;
    const now = this.now();
    if ((this.fenced.get(key) ?? 0) > now) return;
    this.fenced.set(key, now + FENCE_REPEAT_MS);
    if (this.fenced.size > 10_000) for (const [k, until] of this.fenced) if (until < now) this.fenced.delete(k);
    this.log.warn({ node, taskId, attempt, why }, 'fencing a stale attempt');
    const cancel: Cancel = { v: 1, taskId, attempt, graceMs: 3_000 };
    this.publish(this.t.nodeCancel(node), encode(cancel), { qos: 1 });
  }

  // ---- nodes -------------------------------------------------------------------------------------

  private async onNodeStatus(status: NodeStatus, topic: string): Promise<void> {
    if (this.t.idFrom(topic, 'nodes') !== status.node) {
      this.log.warn({ topic, node: status.node }, 'dropped node status: node id does not match its topic');
      return;
    }
    const now = this.now();
    const change = this.registry.update(status, now);
    this.events.emit('node', status.node);
    if (change.isNew || change.cameBack || change.wentDown)
      this.log.info({ node: status.node, state: status.state, cameBack: change.cameBack, reason: status.reason }, 'node state changed');
    if (status.state === 'offline') {
      await this.nodeDown(status.node, status.reason ?? 'offline');
      this.requestSchedule();
      return;
    }

    // Reconcile what the node runs with what the controller expects there.
    const listed = new Map(status.running.map((r) => [r.taskId, r.attempt]));
    for (const [taskId, attempt] of listed) {
      const record = this.tasks.get(taskId);
      // A current attempt whose result just came in may stay listed until the agent's result is
      // acknowledged; one that ended otherwise (cancelled, lost, timed out) is told to stop.
      const finishing =
        record &&
        (record.state.state === 'succeeded' || record.state.state === 'failed') &&
        record.state.exitCode !== null &&
        record.state.attempt === attempt &&
        record.state.node === status.node &&
        this.now() - (record.state.finishedAt ?? 0) < FINISHING_GRACE_MS;
      if (
        !finishing &&
        (!record || isTerminal(record.state.state) || record.state.attempt !== attempt || record.state.node !== status.node)
      ) {
        await this.fence(
          status.node,
          taskId,
          attempt,
          !record ? 'unknown task' : isTerminal(record.state.state) ? `task already ${record.state.state}` : 'not the current attempt',
        );
      }
    }
    for (const record of this.tasks.activeOn(status.node)) {
      const here = listed.get(record.state.taskId) === record.state.attempt;
      if (record.state.state === 'unknown') {
        // The node is back inside the window: carry on where it was, or find out it is gone.
        await this.updateAndPublish(
          record,
          { state: record.state.startedAt ? 'running' : 'assigned', reason: null },
          { lostAt: null, missing: here ? 0 : 1 },
        );
        if (here) this.log.info({ taskId: record.state.taskId, node: status.node }, 'node came back; task carries on');
        continue;
      }
      if (here) record.missing = 0;
      else if (record.accepted && ++record.missing >= MISSING_HEARTBEATS) {
        await this.attemptEnded(record, 'lost', {
          error: { code: 'NODE_LOST', message: `node ${status.node} no longer runs attempt ${record.state.attempt}` },
        });
      }
    }
    this.requestSchedule();
  }

  /** A node is gone: its live tasks become `unknown`, lost at once when their window is 0. */
  private async nodeDown(node: string, reason: string): Promise<void> {
    const now = this.now();
    const window = this.registry.lostAfterMs(node);
    for (const record of this.tasks.activeOn(node)) {
      if (record.state.state === 'unknown') continue;
      const lostAfter = record.state.options.lostAfterMs ?? window;
      const message = `node ${node} went offline (${reason}) while the task was ${record.state.state}`;
      if (lostAfter === 0) {
        await this.attemptEnded(record, 'lost', { error: { code: 'NODE_LOST', message } });
      } else {
        await this.updateAndPublish(
          record,
          { state: 'unknown', reason: clip(`${message}; lost unless it is back within ${formatDuration(lostAfter)}`, 4_000) },
          { lostAt: now + lostAfter },
        );
      }
    }
  }

  // ---- timers ------------------------------------------------------------------------------------

  private async sweep(): Promise<void> {
    const now = this.now();
    for (const { node, silentMs } of this.registry.silentNodes(now, (s) => s.heartbeatMs * STALE_AFTER_HEARTBEATS)) {
      if (this.registry.markDown(node, `no heartbeat for ${formatDuration(silentMs)}`, now)) {
        this.log.warn({ node, silentMs }, 'node missed its heartbeats: offline');
        this.events.emit('node', node);
        await this.nodeDown(node, `no heartbeat for ${formatDuration(silentMs)}`);
        this.requestSchedule();
      }
    }
    const graceOver = now - this.startedAt > this.opts.startupGraceMs;
    for (const record of [...this.tasks.all()]) {
      const s = record.state;
      if (isTerminal(s.state)) continue;
      if (s.state === 'unknown' && record.lostAt !== null && record.lostAt <= now) {
        await this.attemptEnded(record, 'lost', {
          error: { code: 'NODE_LOST', message: `node ${s.node} did not come back within the task's lost-after window` },
        });
        continue;
      }
      if (s.node && s.state !== 'queued' && s.state !== 'unknown' && graceOver && this.registry.get(s.node) === undefined) {
        // Placed before a restart on a node that has not reported since.
        await this.nodeDown(s.node, 'not heard from since the controller restarted');
        continue;
      }
      if (
        s.state === 'assigned' &&
        !record.accepted &&
        record.leaseExpiresAt !== null &&
        record.leaseExpiresAt <= now &&
        (graceOver || record.leaseExpiresAt > this.startedAt)
      ) {
        const node = s.node!;
        await this.attemptEnded(record, 'lost', {
          error: { code: 'LEASE_EXPIRED', message: `node ${node} did not accept attempt ${s.attempt} within ${this.opts.leaseMs} ms` },
        });
        await this.fence(node, s.taskId, s.attempt, 'lease expired');
        continue;
      }
      const deadline = s.options.timeoutMs === null ? null : s.createdAt + s.options.timeoutMs;
      if (deadline !== null && deadline <= now && !record.timedOut) {
        if (s.state === 'queued') {
          await this.finish(record, {
            state: 'failed',
            error: {
              code: 'TIMEOUT',
              message: `timed out after ${formatDuration(s.options.timeoutMs!)} waiting in the queue${s.reason ? `: ${s.reason}` : ''}`,
            },
          });
        } else {
          record.timedOut = true;
          this.tasks.save(record);
          await this.sendCancel(record, 3_000);
        }
      }
    }
    if (this.tasks.queued().length > 0) this.requestSchedule();
  }

  // ---- scheduling --------------------------------------------------------------------------------

  /** Runs a placement pass soon, once, however often it is asked for. */
  private requestSchedule(): void {
    if (this.schedulePending) return;
    this.schedulePending = true;
    setImmediate(
      () =>
        void this.serial('scheduling', () => {
          this.schedulePending = false;
          return this.schedule();
        }),
    );
  }

  /** Places queued tasks in order (priority, then age); a task that does not fit does not block smaller ones. */
  private async schedule(): Promise<void> {
    const now = this.now();
    for (const record of this.tasks.queued()) {
      if (record.notBefore > now) continue;
      await this.tryPlace(record);
    }
  }

  /** @returns the rejections when nothing fits now (the task stays queued), null when placed. */
  private async tryPlace(
    record: TaskRecord,
    publishWaiting = true,
  ): Promise<{ message: string; rejections: { node: string; reason: string }[] } | null> {
    const now = this.now();
    const s = record.state;
    if (s.state !== 'queued') return null;
    const spec = record.spec;
    const ollama = spec.kind === 'ollama' ? { op: spec.op, model: spec.model, pull: spec.pull } : undefined;
    const placement = place(
      { kind: s.kind, requirements: s.requirements, ollama },
      { ...this.registry.snapshot(now, this.opts.policy), modelRules: this.opts.modelRules },
    );
    if (!placement.ok) {
      // TaskState caps reason at 4,000 characters; a large mesh lists many rejected nodes.
      const reason = clip(
        `waiting: ${placement.message}${placement.rejections.length ? ` (${placement.rejections.map((r) => `${r.node}: ${r.reason}`).join('; ')})` : ''}`,
        4_000,
      );
      if (reason !== s.reason) {
        // Once per change of the answer, not once per placement pass (a queued task is retried often).
        this.events.emit('rejected', { taskId: s.taskId, kind: s.kind, rejections: placement.rejections });
        if (publishWaiting) await this.updateAndPublish(record, { reason });
        else this.tasks.update(record, { reason }, {}, now);
      }
      return placement;
    }
    const attempt = s.attempt + 1;
    const leaseExpiresAt = now + this.opts.leaseMs;
    this.registry.reserve(placement.node, s.taskId, s.requirements.memory);
    if (!record.nodes?.includes(placement.node)) record.nodes = [...(record.nodes ?? []), placement.node];
    this.tasks.update(
      record,
      {
        state: 'assigned',
        node: placement.node,
        attempt,
        placement: clip(placement.reason, 2_000),
        reason: null,
        assignedAt: now,
        startedAt: null,
        exitCode: null,
        oomKilled: false,
      },
      { accepted: false, leaseExpiresAt, lostAt: null, missing: 0 },
      now,
    );
    this.log.info({ taskId: s.taskId, attempt, node: placement.node, kind: s.kind, placement: placement.reason }, 'task placed');
    this.events.emit('placed', { taskId: s.taskId, node: placement.node, kind: s.kind, attempt });
    this.audit.record({
      who: 'controller',
      action: 'placement',
      outcome: 'ok',
      taskId: s.taskId,
      node: placement.node,
      detail: `attempt ${attempt}: ${placement.reason}`,
    });
    await this.publishState(record);
    const nodeRunId = this.registry.get(placement.node)?.runId ?? null;
    const assignment: Assignment = {
      v: 1,
      taskId: s.taskId,
      attempt,
      leaseExpiresAt,
      spec: record.spec,
      requirements: s.requirements,
      nodeRunId,
    };
    this.publish(this.t.nodeAssign(placement.node), encode(assignment), { qos: 1 });
    return null;
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  private async updateAndPublish(
    record: TaskRecord,
    patch: Partial<TaskState>,
    extra: Partial<Omit<TaskRecord, 'state'>> = {},
  ): Promise<void> {
    if (this.tasks.update(record, patch, extra, this.now())) await this.publishState(record);
  }

  /**
   * The current attempt ended. Cancel and timeout win; otherwise the restart policy decides
   * between another attempt (queued after a backoff) and the end of the task.
   */
  private async attemptEnded(record: TaskRecord, end: AttemptEnd, patch: Partial<TaskState>): Promise<void> {
    const s = record.state;
    if (s.node) this.registry.release(s.node, s.taskId);
    // A lost attempt may still run, or still wait in the node's session: tell the node to stop it.
    if (end === 'lost' && s.node) await this.fence(s.node, s.taskId, s.attempt, 'attempt lost');
    if (record.cancelRequested) {
      await this.finish(record, { ...patch, state: 'cancelled', error: null });
      return;
    }
    if (record.timedOut) {
      await this.finish(record, {
        ...patch,
        state: 'failed',
        error: { code: 'TIMEOUT', message: `timed out after ${formatDuration(s.options.timeoutMs ?? 0)}` },
      });
      return;
    }
    if (wantsRetry(s.options.restart, end) && s.attempt < s.options.maxAttempts) {
      const delay = backoffMs(s.attempt, end);
      const why = patch.error?.message ?? `attempt ${s.attempt} ${end}`;
      this.log.info({ taskId: s.taskId, attempt: s.attempt, end, delayMs: delay, why }, 'rescheduling');
      await this.updateAndPublish(
        record,
        {
          state: 'queued',
          node: null,
          reason: clip(
            `attempt ${s.attempt} ${end}: ${why}; attempt ${s.attempt + 1} of ${s.options.maxAttempts} in ${formatDuration(delay)}`,
            4_000,
          ),
          exitCode: patch.exitCode ?? null,
        },
        { notBefore: this.now() + delay, accepted: false, leaseExpiresAt: null, lostAt: null, missing: 0 },
      );
      setTimeout(() => this.requestSchedule(), delay + 5).unref();
      return;
    }
    const state = end === 'succeeded' ? 'succeeded' : end === 'lost' ? 'lost' : 'failed';
    await this.finish(record, { ...patch, state, ...(state === 'succeeded' ? { error: null } : {}) });
  }

  private async finish(record: TaskRecord, patch: Partial<TaskState>): Promise<void> {
    const now = this.now();
    if (record.state.node) this.registry.release(record.state.node, record.state.taskId);
    if (!this.tasks.update(record, { reason: null, ...patch, finishedAt: now }, { leaseExpiresAt: null, lostAt: null }, now)) return;
    this.log.info(
      {
        taskId: record.state.taskId,
        state: record.state.state,
        node: record.state.node,
        attempt: record.state.attempt,
        exitCode: record.state.exitCode,
        error: record.state.error?.message,
      },
      'task finished',
    );
    this.audit.record({
      who: 'controller',
      action: 'finish',
      outcome: record.state.state,
      taskId: record.state.taskId,
      ...(record.state.node ? { node: record.state.node } : {}),
      detail: record.state.error ? `${record.state.error.code}: ${record.state.error.message}` : `exit code ${record.state.exitCode}`,
    });
    await this.publishState(record);
    for (const id of this.tasks.evictFinished()) this.publish(this.t.taskState(id), '', { qos: 1, retain: true });
    this.requestSchedule();
  }

  // ---- task events -------------------------------------------------------------------------------

  private async onTaskEvent(event: TaskEvent, topic: string): Promise<void> {
    if (this.t.idFrom(topic, 'tasks') !== event.taskId) {
      this.log.warn({ topic, taskId: event.taskId }, 'dropped task event: task id does not match its topic');
      return;
    }
    const record = this.tasks.get(event.taskId);
    if (!record) {
      this.log.warn({ taskId: event.taskId, type: event.type }, 'dropped event for unknown task');
      return;
    }
    const s = record.state;
    if (event.attempt !== s.attempt || event.node !== s.node || isTerminal(s.state) || s.state === 'queued') {
      this.log.warn(
        { taskId: event.taskId, attempt: event.attempt, node: event.node, current: s.attempt, state: s.state, type: event.type },
        'ignored event from a stale attempt',
      );
      if (event.type !== 'result' && event.type !== 'failed')
        await this.fence(event.node, event.taskId, event.attempt, 'event from a stale attempt');
      return;
    }
    this.store.appendEvent(event, this.opts.maxLogBytes);
    this.events.emit('taskEvent', event);
    switch (event.type) {
      case 'accepted':
        record.accepted = true;
        this.tasks.save(record);
        return;
      case 'started':
        // A re-adopting agent reports `started` again: the first start time stands.
        await this.updateAndPublish(
          record,
          { state: 'running', startedAt: s.startedAt ?? event.ts, reason: null },
          { accepted: true, lostAt: null },
        );
        return;
      case 'result': {
        const end: AttemptEnd = event.exitCode === 0 && !event.oomKilled ? 'succeeded' : 'failed';
        const error =
          end === 'succeeded'
            ? null
            : event.oomKilled
              ? { code: 'OOM_KILLED', message: `killed for running out of memory (exit code ${event.exitCode})` }
              : { code: 'EXIT_CODE', message: `exited with code ${event.exitCode}` };
        const patch = { exitCode: event.exitCode, oomKilled: event.oomKilled, startedAt: s.startedAt ?? event.startedAt, error };
        if (event.cancelled && !record.cancelRequested && !record.timedOut) {
          // Stopped on the node without our asking (fenced, or its agent shut down): the attempt is lost.
          await this.attemptEnded(record, 'lost', {
            ...patch,
            error: { code: 'NODE_LOST', message: `attempt ${s.attempt} was stopped on node ${s.node} (exit code ${event.exitCode})` },
          });
        } else {
          await this.attemptEnded(record, end, patch);
        }
        return;
      }
      case 'failed': {
        // The node could not run it, or it was shut down under it: those are the node's doing.
        const nodeFault = NODE_FAULT_CODES.includes(event.code);
        await this.attemptEnded(record, nodeFault ? 'lost' : 'failed', { error: { code: event.code, message: event.message } });
        return;
      }
      default:
        return; // progress and log events are kept for followers
    }
  }

  // ---- requests ----------------------------------------------------------------------------------

  private async onRequest(req: Request, topic: string): Promise<void> {
    const clientId = this.t.idFrom(topic, 'requests');
    if (!clientId) {
      this.log.warn({ topic }, 'dropped request on a topic without a client id');
      return;
    }
    let reply: Reply;
    try {
      reply = { v: 1, id: req.id, ok: true, result: await this.handle(req, clientId) };
    } catch (err) {
      const e = err instanceof CutterError ? err : new CutterError('INTERNAL', errorMessage(err));
      if (!(err instanceof CutterError)) this.log.error({ err: errorMessage(err), op: req.op }, 'request failed');
      reply = {
        v: 1,
        id: req.id,
        ok: false,
        error: { code: e.code, message: e.message, ...(e.details ? { rejections: e.details as { node: string; reason: string }[] } : {}) },
      };
    }
    this.publish(this.t.replies(clientId), encode(reply), { qos: 1 });
  }

  /** Answers a request that failed validation with INVALID_REQUEST, when it has an id to answer to. */
  private async rejectInvalidRequest(topic: string, payload: Buffer, error: string): Promise<void> {
    const clientId = this.t.idFrom(topic, 'requests');
    let id: unknown;
    try {
      id = (JSON.parse(payload.toString('utf8')) as { id?: unknown } | null)?.id;
    } catch {
      return;
    }
    if (!clientId || typeof id !== 'string' || id.length < 1 || id.length > 64) return;
    const reply: Reply = { v: 1, id, ok: false, error: { code: 'INVALID_REQUEST', message: `invalid request: ${error}` } };
    this.publish(this.t.replies(clientId), encode(reply), { qos: 1 });
  }

  private getTask(taskId: string): TaskRecord {
    const record = this.tasks.get(taskId);
    if (!record) throw new CutterError('NOT_FOUND', `no task ${taskId}`);
    return record;
  }

  private async handle(req: Request, clientId: string): Promise<unknown> {
    switch (req.op) {
      case 'submit':
        return this.submit(req, clientId);
      case 'cancel':
        return this.cancel(req.taskId, req.graceMs, clientId);
      case 'task.get':
        return this.getTask(req.taskId).state;
      case 'task.list':
        return { tasks: this.tasks.list(req.states, req.limit) };
      case 'task.logs':
        this.getTask(req.taskId);
        return this.store.events(req.taskId, req.after);
      case 'node.list':
        return { nodes: this.registry.views(this.now()) };
      case 'token.create':
      case 'token.list':
      case 'token.revoke': {
        const ids = this.opts.identities;
        if (!ids) throw new CutterError('INVALID_REQUEST', 'tokens are managed by the external broker this server uses, not by cutter');
        if (req.op === 'token.list') return { tokens: ids.list() };
        if (req.op === 'token.revoke') {
          const revoked = ids.revoke(req.username);
          this.audit.record({ who: this.who(clientId), action: 'token.revoke', outcome: 'ok', detail: req.username });
          return { tokens: [revoked] };
        }
        const created = ids.create(req.role, req.name);
        this.audit.record({ who: this.who(clientId), action: 'token.create', outcome: 'ok', detail: created.username });
        this.log.info({ username: created.username, by: clientId }, 'token created');
        return created;
      }
      case 'node.forget':
        return { nodes: [this.forget(req.node, this.who(clientId))] };
      case 'node.drain':
        this.setDrained(req.node, req.drain, this.who(clientId));
        return { nodes: this.registry.views(this.now()).filter((n) => n.node === req.node) };
    }
  }

  /**
   * Drains (no new placements; running tasks finish) or resumes a node, kept across restarts.
   * Also what Home Assistant's drain switch calls (controller/extensions/ha). Runs in the controller's queue.
   * @param who identity for the audit log.
   * @throws CutterError NOT_FOUND for a node the controller has never heard of.
   */
  setDrained(node: string, drain: boolean, who: string): void {
    if (!this.registry.get(node)) throw new CutterError('NOT_FOUND', `no node ${node}`);
    this.store.setDrained(node, drain);
    this.registry.setDrained(node, drain);
    this.log.info({ node, drained: drain, by: who }, drain ? 'node drained' : 'node resumed');
    this.audit.record({ who, action: drain ? 'drain' : 'resume', outcome: 'ok', node });
    this.events.emit('node', node);
    this.requestSchedule();
  }

  /**
   * Forgets an offline node with no unfinished task (its registry entry, drain mark and retained
   * status; extensions drop it on `nodeRemoved`).
   * @returns the node's last view.
   * @throws CutterError NOT_FOUND for an unknown node, INVALID_REQUEST for one that is up or still has tasks.
   */
  private forget(node: string, who: string): NodeView {
    const view = this.registry.views(this.now()).find((n) => n.node === node);
    if (!view) throw new CutterError('NOT_FOUND', `no node ${node}`);
    if (view.state !== 'offline')
      throw new CutterError(
        'INVALID_REQUEST',
        `node ${node} is ${view.state}: stop its agent first (a running agent joins again at its next heartbeat)`,
      );
    const left = this.tasks.activeOn(node).length;
    if (left > 0)
      throw new CutterError(
        'INVALID_REQUEST',
        `node ${node} still has ${left} unfinished task${left === 1 ? '' : 's'}: cancel them or wait until they are lost`,
      );
    this.registry.remove(node);
    this.store.setDrained(node, false);
    this.publish(this.t.nodeStatus(node), '', { qos: 1, retain: true });
    this.log.info({ node, by: who }, 'node forgotten');
    this.audit.record({ who, action: 'forget', outcome: 'ok', node });
    this.events.emit('nodeRemoved', node);
    return view;
  }

  /** Runs `fn` in the controller's queue (after the work before it), for extensions that change state. */
  run(what: string, fn: () => Promise<void> | void): Promise<void> {
    return this.serial(what, fn);
  }

  private async submit(req: Extract<Request, { op: 'submit' }>, clientId: string): Promise<TaskState> {
    const taskId = req.taskId ?? randomBytes(6).toString('hex');
    const existing = this.tasks.get(taskId);
    if (existing) return existing.state; // a retried submit is idempotent
    const who = this.who(clientId);
    const wait = this.opts.exemptFromRateLimit?.(who) ? 0 : this.submits.take(who, this.now());
    if (wait > 0) {
      this.audit.record({
        who,
        action: 'rate.limited',
        outcome: 'denied',
        taskId,
        detail: `over ${this.submits.perMinute} submissions per minute`,
      });
      throw new CutterError(
        'RATE_LIMITED',
        `${who} is over ${this.submits.perMinute} submissions per minute: retry in ${formatDuration(wait)}`,
      );
    }
    try {
      const state = await this.admit(req, clientId, taskId);
      this.audit.record({
        who,
        action: 'submit',
        outcome: state.state === 'queued' ? 'queued' : 'ok',
        taskId,
        detail: `${state.kind} ${state.summary}`,
      });
      return state;
    } catch (err) {
      this.audit.record({ who, action: 'submit', outcome: 'denied', taskId, detail: errorMessage(err) });
      throw err;
    }
  }

  private async admit(req: Extract<Request, { op: 'submit' }>, clientId: string, taskId: string): Promise<TaskState> {
    const requirements = { ...req.requirements };
    if (!requirements.memory && req.spec.kind === 'docker' && req.spec.memoryLimit) requirements.memory = req.spec.memoryLimit;

    // Pinned to a node the controller has never heard of: a typo far more often than a node to come.
    if (requirements.node && !this.registry.get(requirements.node)) {
      const known = this.registry.views(this.now()).map((n) => n.node);
      throw new CutterError(
        'NO_FIT',
        `node "${requirements.node}" is not known to the controller${known.length ? ` (known: ${known.join(', ')})` : ' (no nodes have joined)'}`,
        [{ node: requirements.node, reason: 'unknown node' }],
      );
    }
    const record = this.tasks.create({
      taskId,
      spec: req.spec,
      requirements,
      options: req.options,
      submittedBy: clientId,
      now: this.now(),
    });
    const noFit = await this.tryPlace(record, false);
    if (noFit && !req.options.queue) {
      this.tasks.discard(taskId);
      this.log.info({ taskId, rejections: noFit.rejections }, 'no node fits; not queued');
      throw new CutterError('NO_FIT', noFit.message, noFit.rejections);
    }
    if (noFit) {
      this.log.info({ taskId, reason: record.state.reason }, 'task queued');
      await this.publishState(record);
    }
    return record.state;
  }

  private async sendCancel(record: TaskRecord, graceMs: number): Promise<void> {
    const cancel: Cancel = { v: 1, taskId: record.state.taskId, attempt: record.state.attempt, graceMs };
    this.publish(this.t.nodeCancel(record.state.node!), encode(cancel), { qos: 1 });
  }

  private async cancel(taskId: string, graceMs: number | undefined, clientId: string): Promise<TaskState> {
    const record = this.getTask(taskId);
    this.audit.record({
      who: this.who(clientId),
      action: 'cancel',
      outcome: isTerminal(record.state.state) ? 'failed' : 'ok',
      taskId,
      ...(record.state.node ? { node: record.state.node } : {}),
    });
    const s = record.state;
    if (isTerminal(s.state)) throw new CutterError('ALREADY_FINISHED', `task ${taskId} already ${s.state}`);
    record.cancelRequested = true;
    this.tasks.save(record);
    if (s.state === 'queued') {
      await this.finish(record, { state: 'cancelled', error: null });
      return record.state;
    }
    // Sent even to a node that is away: its persistent session delivers it when it is back.
    await this.sendCancel(record, graceMs ?? 3_000);
    if (s.state === 'unknown' || this.registry.isDown(s.node!)) {
      await this.finish(record, {
        state: 'cancelled',
        error: { code: 'CANCELLED', message: `cancelled while node ${s.node} was offline; it is told to stop when it is back` },
      });
    }
    this.log.info({ taskId, node: s.node }, 'cancel sent');
    return record.state;
  }
}
