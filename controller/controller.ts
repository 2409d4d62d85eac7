/**
 * The controller: keeps the node registry from retained heartbeats, places tasks with the pure
 * scheduler (queueing what does not fit), drives each task's lifecycle from its agent's events,
 * detects dead nodes, reschedules lost attempts by the task's restart policy, fences stale
 * attempts, stores everything in the StateStore before acting on it, publishes retained task
 * state and answers client requests. It is an ordinary MQTT client of its broker.
 *
 * Split by concern around one ControllerContext (context.ts):
 *   lifecycle.ts  every task state and transition, a pure function (the effects carried out by context.ts `apply`);
 *   requests.ts   client requests (submit, cancel, listings, tokens, drain, forget);
 *   liveness.ts   node heartbeats, the lost-after windows, leases, timeouts (the sweep);
 *   placement.ts  placement passes over the queue with the pure scheduler (scheduler/place.ts).
 * This file connects to the broker, routes messages to them and hands agents' task events to the lifecycle.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CutterError } from '../shared/errors.js';
import type { LendingPatch } from '../shared/lending.js';
import type { IdentityStore } from '../broker/identities.js';
import type { AssignmentView } from '../broker/acl.js';
import { AuditLog } from '../shared/audit.js';
import { encode } from '../shared/codec.js';
import type { Logger } from '../shared/logger.js';
import { MessageRouter, connectMqtt } from '../shared/mqtt.js';
import type { PlacementRule } from '../shared/ollama.js';
import type { Headroom } from '../shared/schemas/index.js';
import { decodeTaskEvent } from '../shared/log-frame.js';
import { NodeStatusSchema, RequestSchema, TaskEventSchema, type ControllerStatus, type TaskEvent } from '../shared/schemas/index.js';
import { topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';
import { ControllerContext } from './context.js';
import { ControllerEvents } from './events.js';
import { transition } from './lifecycle.js';
import { Liveness, SWEEP_MS } from './liveness.js';
import { Placement } from './placement.js';
import { NodeRegistry } from './registry.js';
import { Requests } from './requests.js';
import type { StateStoreContract } from './state-contract.js';
import { StateStore } from './state-store.js';
import { TaskStore } from './task-store.js';
import { type WakeOptions, Waker } from './wake.js';
import { within } from '../shared/within.js';

/**
 * Longest an attempt's end waits for its handling and commit before it is acknowledged anyway, ms:
 * the inbound stream waits with it (shared/mqtt.ts `ackWhenHandled`), and the keepalive (10 s)
 * must not lapse.
 */
const ACK_WAIT_MS = 3_000;

export interface ControllerOptions {
  brokerUrl: string;
  /** Dial the embedded broker in process (no socket) instead of `brokerUrl`. */
  streamBuilder?: () => import('node:stream').Duplex;
  prefix: string;
  /** How long an agent has to accept an assignment, ms. */
  leaseMs: number;
  policy: 'spread' | 'binpack';
  /** Prefer the submitting machine's node while it keeps this headroom (`--prefer-local`, `--local-headroom`); absent: off. */
  local?: { prefer: boolean; headroom: Headroom };
  /** Rules of the Ollama placement file (`--ollama-placement`); none = any node may serve any model. */
  modelRules?: readonly PlacementRule[];
  keepFinished: number;
  /** Directory of the state database (SQLite) and the audit log. */
  dataDir: string;
  /** The durable state to use instead of SQLite under `dataDir` (controller/pg-state-store.ts), already open. */
  store?: StateStoreContract;
  /**
   * Acknowledge an attempt's end (result, failed) to the broker only once it is committed (at most
   * ACK_WAIT_MS): the controller's persistent session outlives this process, so an end it received
   * but had not stored when it died (a SIGKILLed leader) is delivered again to the next controller,
   * instead of that attempt counting as lost and running twice. The inbound stream waits with it,
   * behind the controller's queue, so it is for stores whose commits are a round trip away
   * (PostgreSQL: the server sets it with `--state postgres://`); SQLite commits within the event
   * loop turn. Ignored with the embedded broker, which dies with the controller.
   */
  ackEndsAfterCommit?: boolean;
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
  /** Free space in the data dir below which new work is refused (STORAGE_UNAVAILABLE), bytes; default 64 MiB, 0 = no check. */
  minFreeBytes?: number;
  /** Nodes offline longer than this, with no unfinished task, are forgotten by the sweep, ms; default 7 days, 0 = never. */
  forgetAfterMs?: number;
  /** Wake-on-LAN (controller/wake.ts); default: no automatic wake, packets to the node's broadcast address, port 9. */
  wake?: WakeOptions;
}

export class Controller {
  readonly registry: NodeRegistry;
  readonly tasks: TaskStore;
  /** What extensions (Home Assistant, metrics, dashboard) observe; see controller/events.ts. */
  readonly events = new ControllerEvents();
  readonly audit: AuditLog;
  private readonly ctx: ControllerContext;
  private readonly placement: Placement;
  private readonly liveness: Liveness;
  private readonly requests: Requests;
  private readonly waker: Waker;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping = false;

  constructor(private readonly opts: ControllerOptions) {
    const log = opts.log.child({ component: 'controller' });
    const now = opts.now ?? Date.now;
    const store = opts.store ?? new StateStore(opts.dataDir, { log, minFreeBytes: opts.minFreeBytes });
    this.registry = new NodeRegistry(store.drainedNodes());
    this.tasks = new TaskStore(store, opts.keepFinished);
    this.audit = opts.audit ?? new AuditLog(join(opts.dataDir, 'audit.jsonl'), (fields, msg) => log.warn(fields, msg));
    this.ctx = new ControllerContext(opts, store, this.tasks, this.registry, this.events, this.audit, topics(opts.prefix), log, now, now());
    this.placement = new Placement(this.ctx);
    this.liveness = new Liveness(this.ctx);
    this.waker = new Waker(this.ctx, opts.wake ?? { auto: false, cooldownMs: 60_000 });
    this.requests = new Requests(this.ctx, this.placement, this.waker);
  }

  /** Connects (retrying until the broker answers), subscribes, republishes task state, announces itself. */
  async start(): Promise<void> {
    const { ctx } = this;
    const t = ctx.t;
    const offline: ControllerStatus = { v: 1, state: 'offline', version: VERSION, ts: ctx.now() };
    // Counted from disk before connecting: a persistent session's queued results may end some of
    // them before the count below would run (an external broker kept them while we were down).
    const recoveredTasks = this.tasks.liveTasks().length;
    let router!: MessageRouter;
    const ackEnds = this.opts.ackEndsAfterCommit === true && !this.opts.streamBuilder;
    const client = await connectMqtt({
      url: this.opts.brokerUrl,
      streamBuilder: this.opts.streamBuilder,
      clientId: `cutter-controller-${this.opts.prefix}`,
      clean: false,
      keepaliveSec: 10,
      username: this.opts.username,
      password: this.opts.password,
      will: { topic: t.controllerStatus(), payload: encode(offline), qos: 1, retain: true },
      log: ctx.log,
      onClient: (c) => {
        // Routes before the CONNACK: a persistent session's queued events arrive right after it.
        ctx.client = c;
        router = new MessageRouter(c, ctx.log);
        // On the embedded broker (an in-process link that cannot drop a message) statuses come at
        // QoS 0: each is a whole snapshot, and at QoS 1 the broker kept an in-flight copy of every
        // heartbeat in this persistent session's store until its PUBACK (bench/profile.md, "Node
        // statuses at QoS 0"). Over a network to an external broker they stay QoS 1: the broker
        // replays what came while this client was away, so a short break does not add up to a
        // heartbeat interval to every node's silence (liveness.ts).
        router.route(
          t.allNodeStatus(),
          NodeStatusSchema,
          (s, topic) => {
            // Heard now, applied in turn: a backlog in the queue does not count as the node's silence.
            if (s.state !== 'offline' && t.idFrom(topic, 'nodes') === s.node) ctx.registry.heard(s.node, ctx.now());
            return ctx.serial('node status', () => this.liveness.onNodeStatus(s, topic));
          },
          { qos: this.opts.streamBuilder ? 0 : 1 },
        );
        router.route(
          t.allTaskEvents(),
          TaskEventSchema,
          (e, topic) => {
            // Any word from a node is a sign of life: a node streaming output fast has its heartbeat
            // queued behind that output on its one connection, and must not be taken for dead (and
            // its task run again) because of it. The broker's ACL lets an agent publish events only
            // for its own node's current attempts (others go to quarantine, below).
            ctx.registry.heard(e.node, ctx.now());
            const handled = ctx.serial('task event', () => this.onTaskEvent(e, topic));
            // An attempt's end is acknowledged to an external broker only once stored (see ackEnds).
            if (ackEnds && (e.type === 'result' || e.type === 'failed'))
              return within(
                handled.then(() => new Promise<void>((committed) => ctx.store.afterCommit(committed))),
                ACK_WAIT_MS,
              ).then(() => undefined);
          },
          { ackWhenHandled: ackEnds, decoder: decodeTaskEvent },
        );
        // The broker re-routes an agent's event for a task that is not its node's current attempt
        // (broker/acl.ts quarantineOf): handled as before — ignored, the stale attempt fenced.
        router.route(
          t.allQuarantine('events'),
          TaskEventSchema,
          (e, topic) => {
            const q = t.parse(topic);
            if (q?.kind === 'quarantine' && q.node === e.node && q.task === e.taskId)
              void ctx.serial('quarantined task event', () => this.onTaskEvent(e, t.taskEvents(q.task)));
          },
          { decoder: decodeTaskEvent },
        );
        router.route(t.allRequests(), RequestSchema, (r, topic) => ctx.serial('request', () => this.requests.onRequest(r, topic)), {
          onEmpty: (topic) => ctx.log.warn({ topic }, 'dropped empty request'),
          onInvalid: (topic, payload, error) =>
            ctx.serial('invalid request', () => this.requests.rejectInvalidRequest(topic, payload, error)),
        });
      },
    });
    await router.subscribeAll();
    ctx.store.guard.start();
    // The broker may have lost its retained messages (an embedded broker restarts with us).
    for (const r of this.tasks.all()) ctx.publishState(r);
    await this.publishStatus('online');
    client.on('connect', () => void this.publishStatus('online').catch(() => undefined));
    this.sweepTimer = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = true;
      void ctx.serial('sweep', () => this.liveness.sweep()).finally(() => (this.sweeping = false));
    }, SWEEP_MS);
    ctx.requestSchedule();
    this.waker.start();
    ctx.log.info(
      { broker: this.opts.brokerUrl, prefix: this.opts.prefix, dataDir: this.opts.dataDir, recoveredTasks },
      'controller started',
    );
  }

  /**
   * The task's current (or last) attempt, for the broker's ACL and the port proxy: its node (null
   * when never placed), attempt number, state and declared ports (`spec.ports` of a docker task,
   * else empty). Undefined for a task the controller does not know. Synchronous and read-only.
   */
  assignmentOf(taskId: string): AssignmentView | undefined {
    const record = this.tasks.get(taskId);
    if (!record) return undefined;
    const s = record.state;
    return {
      node: s.node,
      attempt: s.attempt,
      state: s.state,
      ports: record.spec.kind === 'docker' ? (record.spec.ports ?? []) : [],
      ...(record.submitter !== undefined ? { submitter: record.submitter } : {}),
    };
  }

  /**
   * Says nothing more, at once: the sweep stops and the MQTT connection is cut without a goodbye
   * (another server leads now and owns the controller's retained status). `stop()` still closes the rest.
   */
  silence(): void {
    this.silenced = true;
    clearInterval(this.sweepTimer);
    this.ctx.client?.end(true);
  }

  private silenced = false;

  /** Announces `offline` (retained), disconnects and closes the store. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.waker.stop();
    if (this.ctx.client && !this.silenced) {
      await this.publishStatus('offline').catch(() => undefined);
      await this.ctx.client.endAsync();
    }
    await this.ctx.store.close();
    await this.audit.close();
  }

  /**
   * Drains (no new placements; running tasks finish) or resumes a node, kept across restarts.
   * Also what Home Assistant's drain switch calls (controller/extensions/ha). Runs in the controller's queue.
   * @param who identity for the audit log.
   * @throws CutterError NOT_FOUND for a node the controller has never heard of.
   */
  setDrained(node: string, drain: boolean, who: string): void {
    this.requests.setDrained(node, drain, who);
  }

  /**
   * Sends node `node`'s agent a change of its lending policy (issue 17: LendingSet on
   * `nodes/{node}/lending/set`, QoS 1), e.g. from Home Assistant's lending switch; audited.
   * @param who identity for the audit log.
   * @throws CutterError NOT_FOUND for a node the controller has never heard of, NO_CONTROLLER while not connected.
   */
  async setLending(node: string, patch: LendingPatch, who: string): Promise<void> {
    if (!this.registry.get(node)) throw new CutterError('NOT_FOUND', `no node ${node}`);
    const client = this.ctx.client;
    if (!client) throw new CutterError('NO_CONTROLLER', 'the controller is not connected to its broker yet');
    const set = { v: 1, id: randomBytes(8).toString('hex'), patch };
    await client.publishAsync(this.ctx.t.nodeLendingSet(node), encode(set), { qos: 1 });
    this.opts.log.info({ node, patch, by: who }, 'lending policy change sent');
    this.audit.record({ who, action: 'lending.set', outcome: 'ok', node, detail: JSON.stringify(patch).slice(0, 500) });
  }

  /** Runs `fn` in the controller's queue (after the work before it), for extensions that change state. */
  run(what: string, fn: () => Promise<void> | void): Promise<void> {
    return this.ctx.serial(what, fn);
  }

  private async publishStatus(state: 'online' | 'offline'): Promise<void> {
    const status: ControllerStatus = { v: 1, state, version: VERSION, ts: this.ctx.now() };
    await this.ctx.client!.publishAsync(this.ctx.t.controllerStatus(), encode(status), { qos: 1, retain: true });
  }

  /** An agent's event for one of its attempts: kept and applied by the lifecycle, or ignored (and fenced) when stale. */
  private onTaskEvent(event: TaskEvent, topic: string): void {
    const { ctx } = this;
    if (ctx.t.idFrom(topic, 'tasks') !== event.taskId) {
      ctx.log.warn({ topic, taskId: event.taskId }, 'dropped task event: task id does not match its topic');
      return;
    }
    const record = this.tasks.get(event.taskId);
    // A final event is acknowledged once what it changed is committed (or at once, after what is pending, when it changed nothing).
    const final = event.type === 'result' || event.type === 'failed';
    if (!record) {
      // Unknown is not forbidden: the node stops that work (fence, damped) and carries on; a result is acknowledged.
      ctx.log.debug({ taskId: event.taskId, attempt: event.attempt, node: event.node, type: event.type }, 'dropped event for unknown task');
      if (final) ctx.ack(event.node, event.taskId, event.attempt);
      else ctx.fence(event.node, event.taskId, event.attempt, 'event for a task the controller does not know', 'unknown-task');
      return;
    }
    const s = record.state;
    const step = transition(record, { type: 'agent', event }, ctx.now());
    if (!step.ok)
      ctx.log.warn(
        { taskId: event.taskId, attempt: event.attempt, node: event.node, current: s.attempt, state: s.state, type: event.type },
        'ignored event from a stale attempt',
      );
    ctx.apply(record, step, event);
    if (final) ctx.ack(event.node, event.taskId, event.attempt);
  }
}
