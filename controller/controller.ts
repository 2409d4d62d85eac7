/**
 * The controller: keeps the node registry from retained heartbeats, places tasks with the pure
 * scheduler, drives each task's lifecycle from its agent's events, publishes retained task state,
 * and answers CLI requests. It is an ordinary MQTT client, so it runs the same against the
 * embedded Aedes or an external broker.
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from '../shared/mqtt.js';
import { MessageRouter, connectMqtt } from '../shared/mqtt.js';
import { encode } from '../shared/codec.js';
import { CutterError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import {
  NodeStatusSchema,
  RequestSchema,
  TaskEventSchema,
  type Assignment,
  type Cancel,
  type ControllerStatus,
  type NodeStatus,
  type Reply,
  type Request,
  type TaskEvent,
  type TaskState,
} from '../shared/schemas/index.js';
import { topics, type Topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';
import { NodeRegistry } from './registry.js';
import { place } from './scheduler/place.js';
import { TaskStore, type TaskRecord } from './task-store.js';

export interface ControllerOptions {
  brokerUrl: string;
  prefix: string;
  /** How long an agent has to accept an assignment, ms. */
  leaseMs: number;
  policy: 'spread' | 'binpack';
  keepFinished: number;
  username?: string;
  password?: string;
  log: Logger;
  /** Clock, ms epoch (tests may pass their own). */
  now?: () => number;
}

export class Controller {
  readonly registry = new NodeRegistry();
  readonly tasks: TaskStore;
  private readonly t: Topics;
  private readonly log: Logger;
  private readonly now: () => number;
  private client?: MqttClient;
  private sweepTimer?: NodeJS.Timeout;

  constructor(private readonly opts: ControllerOptions) {
    this.t = topics(opts.prefix);
    this.log = opts.log.child({ component: 'controller' });
    this.now = opts.now ?? Date.now;
    this.tasks = new TaskStore(opts.keepFinished);
  }

  /** Connects (retrying until the broker answers), subscribes, and announces itself. */
  async start(): Promise<void> {
    const offline: ControllerStatus = { v: 1, state: 'offline', version: VERSION, ts: this.now() };
    const client = await connectMqtt({
      url: this.opts.brokerUrl,
      clientId: `cutter-controller-${this.opts.prefix}`,
      clean: false,
      keepaliveSec: 10,
      username: this.opts.username,
      password: this.opts.password,
      will: { topic: this.t.controllerStatus(), payload: encode(offline), qos: 1, retain: true },
      log: this.log,
    });
    this.client = client;
    const router = new MessageRouter(client, this.log);
    await router.on(this.t.allNodeStatus(), NodeStatusSchema, (s, topic) => this.onNodeStatus(s, topic));
    await router.on(this.t.allTaskEvents(), TaskEventSchema, (e, topic) => this.onTaskEvent(e, topic));
    await router.on(this.t.allRequests(), RequestSchema, (r, topic) => this.onRequest(r, topic), {
      onEmpty: (topic) => this.log.warn({ topic }, 'dropped empty request'),
      onInvalid: (topic, payload, error) => this.rejectInvalidRequest(topic, payload, error),
    });
    await this.publishStatus('online');
    client.on('connect', () => void this.publishStatus('online').catch(() => undefined));
    this.sweepTimer = setInterval(() => this.sweep(), 500);
    this.log.info({ broker: this.opts.brokerUrl, prefix: this.opts.prefix }, 'controller started');
  }

  /** Announces `offline` (retained) and disconnects. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    if (!this.client) return;
    await this.publishStatus('offline').catch(() => undefined);
    await this.client.endAsync();
  }

  private async publishStatus(state: 'online' | 'offline'): Promise<void> {
    const status: ControllerStatus = { v: 1, state, version: VERSION, ts: this.now() };
    await this.client!.publishAsync(this.t.controllerStatus(), encode(status), { qos: 1, retain: true });
  }

  private async publishState(record: TaskRecord): Promise<void> {
    await this.client!.publishAsync(this.t.taskState(record.state.taskId), encode(record.state), { qos: 1, retain: true });
  }

  // ---- nodes ---------------------------------------------------------------------------------

  private async onNodeStatus(status: NodeStatus, topic: string): Promise<void> {
    const fromTopic = this.t.idFrom(topic, 'nodes');
    if (fromTopic !== status.node) {
      this.log.warn({ topic, node: status.node }, 'dropped node status: node id does not match its topic');
      return;
    }
    const previous = this.registry.update(status, this.now());
    if (previous !== status.state) this.log.info({ node: status.node, from: previous, to: status.state }, 'node state changed');
    if (status.state === 'offline') {
      for (const record of this.tasks.activeOn(status.node)) {
        await this.finish(record, { state: 'lost', error: { code: 'NODE_LOST', message: `node ${status.node} went offline${status.reason ? ` (${status.reason})` : ''} while the task was ${record.state.state}` } });
      }
    }
  }

  // ---- task events ---------------------------------------------------------------------------

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
    if (event.attempt !== record.state.attempt || event.node !== record.state.node) {
      this.log.warn({ taskId: event.taskId, attempt: event.attempt, node: event.node, current: record.state.attempt }, 'ignored event from a stale attempt');
      return;
    }
    const now = this.now();
    switch (event.type) {
      case 'accepted':
        record.accepted = true;
        return;
      case 'started':
        record.accepted = true;
        if (this.tasks.transition(record, { state: 'running', startedAt: event.ts }, now)) await this.publishState(record);
        return;
      case 'result': {
        const state = record.cancelRequested || event.cancelled ? 'cancelled' : event.exitCode === 0 ? 'succeeded' : 'failed';
        const error =
          state !== 'failed' ? null
          : event.oomKilled ? { code: 'OOM_KILLED', message: `killed for running out of memory (exit code ${event.exitCode})` }
          : { code: 'EXIT_CODE', message: `exited with code ${event.exitCode}` };
        await this.finish(record, { state, exitCode: event.exitCode, oomKilled: event.oomKilled, startedAt: record.state.startedAt ?? event.startedAt, error });
        return;
      }
      case 'failed':
        await this.finish(record, { state: record.cancelRequested ? 'cancelled' : 'failed', error: { code: event.code, message: event.message } });
        return;
      default:
        return; // progress and log events are for followers
    }
  }

  private async finish(record: TaskRecord, patch: Partial<TaskState>): Promise<void> {
    const now = this.now();
    if (!this.tasks.transition(record, { ...patch, finishedAt: now }, now)) return;
    if (record.state.node) this.registry.release(record.state.node, record.state.taskId);
    this.log.info({ taskId: record.state.taskId, state: record.state.state, node: record.state.node, exitCode: record.state.exitCode, error: record.state.error?.message }, 'task finished');
    await this.publishState(record);
    for (const id of this.tasks.evictFinished()) {
      await this.client!.publishAsync(this.t.taskState(id), '', { qos: 1, retain: true });
    }
  }

  /** Fails assignments whose lease ran out unaccepted (requeueing them is the durable-tasks work). */
  private sweep(): void {
    const now = this.now();
    for (const record of this.tasks.expiredLeases(now)) {
      void this.finish(record, { state: 'failed', error: { code: 'LEASE_EXPIRED', message: `node ${record.state.node} did not accept the task within ${this.opts.leaseMs} ms` } }).catch((err) =>
        this.log.error({ err: errorMessage(err) }, 'lease sweep failed'),
      );
    }
  }

  // ---- requests ------------------------------------------------------------------------------

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
      reply = { v: 1, id: req.id, ok: false, error: { code: e.code, message: e.message, ...(e.details ? { rejections: e.details as { node: string; reason: string }[] } : {}) } };
    }
    await this.client!.publishAsync(this.t.replies(clientId), encode(reply), { qos: 1 });
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
    await this.client!.publishAsync(this.t.replies(clientId), encode(reply), { qos: 1 });
  }

  private async handle(req: Request, clientId: string): Promise<unknown> {
    const now = this.now();
    switch (req.op) {
      case 'submit':
        return this.submit(req, clientId);
      case 'cancel':
        return this.cancel(req.taskId, req.graceMs);
      case 'task.get': {
        const record = this.tasks.get(req.taskId);
        if (!record) throw new CutterError('NOT_FOUND', `no task ${req.taskId}`);
        return record.state;
      }
      case 'task.list':
        return { tasks: this.tasks.list(req.states, req.limit) };
      case 'node.list':
        return { nodes: this.registry.views(now) };
    }
  }

  private async submit(req: Extract<Request, { op: 'submit' }>, clientId: string): Promise<TaskState> {
    const taskId = req.taskId ?? randomBytes(6).toString('hex');
    const existing = this.tasks.get(taskId);
    if (existing) return existing.state; // a retried submit is idempotent
    const requirements = { ...req.requirements };
    if (!requirements.memory && req.spec.kind === 'docker' && req.spec.memoryLimit) requirements.memory = req.spec.memoryLimit;

    const now = this.now();
    const placement = place({ kind: req.spec.kind, requirements }, this.registry.snapshot(now, this.opts.policy));
    if (!placement.ok) {
      this.log.info({ taskId, rejections: placement.rejections }, 'no node fits');
      throw new CutterError('NO_FIT', placement.message, placement.rejections);
    }
    const record = this.tasks.createAssigned({
      taskId,
      spec: req.spec,
      requirements,
      node: placement.node,
      placement: placement.reason,
      submittedBy: clientId,
      now,
      leaseMs: this.opts.leaseMs,
    });
    this.registry.reserve(placement.node, taskId, requirements.memory);
    this.log.info({ taskId, node: placement.node, kind: req.spec.kind, placement: placement.reason }, 'task placed');
    await this.publishState(record);
    const assignment: Assignment = { v: 1, taskId, attempt: 1, leaseExpiresAt: record.leaseExpiresAt, spec: req.spec, requirements };
    await this.client!.publishAsync(this.t.nodeAssign(placement.node), encode(assignment), { qos: 1 });
    return record.state;
  }

  private async cancel(taskId: string, graceMs?: number): Promise<TaskState> {
    const record = this.tasks.get(taskId);
    if (!record) throw new CutterError('NOT_FOUND', `no task ${taskId}`);
    if (record.state.state === 'succeeded' || record.state.state === 'failed' || record.state.state === 'cancelled' || record.state.state === 'lost') {
      throw new CutterError('ALREADY_FINISHED', `task ${taskId} already ${record.state.state}`);
    }
    record.cancelRequested = true;
    const node = record.state.node!;
    if (this.registry.get(node)?.state === 'offline') {
      await this.finish(record, { state: 'cancelled', error: { code: 'CANCELLED', message: `cancelled while node ${node} was offline` } });
      return record.state;
    }
    const cancel: Cancel = { v: 1, taskId, attempt: record.state.attempt, graceMs: graceMs ?? 3_000 };
    await this.client!.publishAsync(this.t.nodeCancel(node), encode(cancel), { qos: 1 });
    this.log.info({ taskId, node }, 'cancel sent');
    return record.state;
  }
}
