/**
 * Requests from clients (`requests/{client}` → `replies/{client}`, shared/schemas/request.ts):
 * submit (rate-limited per identity, placed at once or queued), cancel, task and node listings,
 * task logs, tokens of the embedded broker, drain/resume, forget and wake (controller/wake.ts) a node. Every reply says
 * `ok`, or an error with a stable code (NO_FIT carries the per-node rejections, as data).
 */
import { randomBytes } from 'node:crypto';
import { encode } from '../shared/codec.js';
import { LIMITS, scanJson } from '../shared/limits.js';
import { CutterError, errorMessage } from '../shared/errors.js';
import { RateLimiter } from '../shared/rate-limit.js';
import { formatRejection } from '../shared/reasons.js';
import { isTerminal, outputCut, type NodeView, type Rejection, type Reply, type Request, type TaskState } from '../shared/schemas/index.js';
import { formatDuration } from '../shared/units.js';
import type { ControllerContext } from './context.js';
import { transition } from './lifecycle.js';
import type { Placement } from './placement.js';
import type { TaskRecord } from './task-record.js';
import type { Waker } from './wake.js';

type Submit = Extract<Request, { op: 'submit' }>;

/** Ops that write state (the data dir or the token file): refused STORAGE_UNAVAILABLE while storage is degraded. */
const WRITE_OPS: readonly Request['op'][] = ['submit', 'token.create', 'token.revoke', 'node.drain', 'node.forget'];
/** Ops that only read: their replies never wait behind writes that cannot be committed. */
const READ_OPS: readonly Request['op'][] = ['task.get', 'task.list', 'task.logs', 'node.list', 'token.list'];
/** A request's `"id"` among its first bytes, for answering one that is over a limit (and so not parsed). */
const ID_NEAR_START = /"id"\s*:\s*"([^"\\]{1,64})"/;

export class Requests {
  private readonly submits: RateLimiter;

  constructor(
    private readonly ctx: ControllerContext,
    private readonly placement: Placement,
    private readonly waker: Waker,
  ) {
    this.submits = new RateLimiter(ctx.opts.submitsPerMinute ?? 120);
  }

  /** Answers one request on its client's reply topic. */
  async onRequest(req: Request, topic: string): Promise<void> {
    const { ctx } = this;
    const clientId = ctx.t.idFrom(topic, 'requests');
    if (!clientId) {
      ctx.log.warn({ topic }, 'dropped request on a topic without a client id');
      return;
    }
    let reply: Reply;
    try {
      const refused = WRITE_OPS.includes(req.op) ? ctx.store.guard.refusal() : null;
      if (refused) {
        ctx.audit.record({ who: ctx.who(clientId), action: auditAction(req), outcome: 'denied', detail: refused.message });
        throw refused;
      }
      reply = { v: 1, id: req.id, ok: true, result: await this.handle(req, clientId) };
    } catch (err) {
      const e = err instanceof CutterError ? err : new CutterError('INTERNAL', errorMessage(err));
      if (!(err instanceof CutterError)) ctx.log.error({ err, op: req.op }, 'request failed');
      reply = {
        v: 1,
        id: req.id,
        ok: false,
        error: { code: e.code, message: e.message, ...(e.details ? { rejections: e.details as Rejection[] } : {}) },
      };
    }
    // While commits fail, what waits for them may wait long: a read or a refusal claims nothing stored.
    if (ctx.store.failing && (READ_OPS.includes(req.op) || !reply.ok)) ctx.publishNow(ctx.t.replies(clientId), encode(reply), { qos: 1 });
    else ctx.publish(ctx.t.replies(clientId), encode(reply), { qos: 1 });
  }

  /** Answers a request that failed validation with INVALID_REQUEST, when it has an id to answer to. */
  rejectInvalidRequest(topic: string, payload: Buffer, error: string): void {
    const clientId = this.ctx.t.idFrom(topic, 'requests');
    let id: unknown;
    if (scanJson(payload, LIMITS.requests).ok) {
      try {
        id = (JSON.parse(payload.toString('utf8')) as { id?: unknown } | null)?.id;
      } catch {
        return;
      }
    } else {
      // Over a limit: not parsed, but a well-formed id near the start still gets its answer.
      id = ID_NEAR_START.exec(payload.subarray(0, 4096).toString('latin1'))?.[1];
    }
    if (!clientId || typeof id !== 'string' || id.length < 1 || id.length > 64) return;
    const reply: Reply = { v: 1, id, ok: false, error: { code: 'INVALID_REQUEST', message: `invalid request: ${error}` } };
    this.ctx.publish(this.ctx.t.replies(clientId), encode(reply), { qos: 1 });
  }

  /** Runs a write outside the state store (the token file): a storage error becomes STORAGE_UNAVAILABLE. */
  private storing<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!this.ctx.store.guard.failed(err)) throw err;
      throw this.ctx.store.guard.refusal() ?? err;
    }
  }

  private getTask(taskId: string): TaskRecord {
    const record = this.ctx.tasks.get(taskId);
    if (!record) throw new CutterError('NOT_FOUND', `no task ${taskId}`);
    return record;
  }

  private async handle(req: Request, clientId: string): Promise<unknown> {
    const { ctx } = this;
    switch (req.op) {
      case 'submit':
        return this.submit(req, clientId);
      case 'cancel':
        return this.cancel(req.taskId, req.graceMs, clientId);
      case 'task.get':
        return this.getTask(req.taskId).state;
      case 'task.list':
        return { tasks: ctx.tasks.list(req.states, req.limit) };
      case 'task.logs': {
        this.getTask(req.taskId);
        const output = ctx.store.output(req.taskId, ctx.opts.maxLogBytes);
        const page = req.summaryOnly ? { events: [], more: false } : await ctx.store.events(req.taskId, req.after);
        return { events: page.events, more: page.more, truncated: outputCut(output), output };
      }
      case 'node.list':
        return { nodes: ctx.registry.views(ctx.now()) };
      case 'token.create':
      case 'token.list':
      case 'token.revoke': {
        const ids = ctx.opts.identities;
        if (!ids) throw new CutterError('INVALID_REQUEST', 'tokens are managed by the external broker this server uses, not by cutter');
        if (req.op === 'token.list') return { tokens: ids.list() };
        if (req.op === 'token.revoke') {
          const revoked = this.storing(() => ids.revoke(req.username));
          ctx.audit.record({ who: ctx.who(clientId), action: 'token.revoke', outcome: 'ok', detail: req.username });
          return { tokens: [revoked] };
        }
        const created = this.storing(() => ids.create(req.role, req.name));
        ctx.audit.record({ who: ctx.who(clientId), action: 'token.create', outcome: 'ok', detail: created.username });
        ctx.log.info({ username: created.username, by: clientId }, 'token created');
        return created;
      }
      case 'node.forget':
        return { nodes: [this.forget(req.node, ctx.who(clientId))] };
      case 'node.wake':
        return this.waker.wakeNode(req.node, { address: req.address, port: req.port }, ctx.who(clientId));
      case 'node.drain':
        this.setDrained(req.node, req.drain, ctx.who(clientId));
        return { nodes: ctx.registry.views(ctx.now()).filter((n) => n.node === req.node) };
    }
  }

  /**
   * Drains (no new placements; running tasks finish) or resumes a node, kept across restarts.
   * @param who identity for the audit log.
   * @throws CutterError NOT_FOUND for a node the controller has never heard of, STORAGE_UNAVAILABLE while the data dir takes no writes.
   */
  setDrained(node: string, drain: boolean, who: string): void {
    const { ctx } = this;
    if (!ctx.registry.get(node)) throw new CutterError('NOT_FOUND', `no node ${node}`);
    const refused = ctx.store.guard.refusal();
    if (refused) throw refused;
    ctx.store.setDrained(node, drain);
    ctx.registry.setDrained(node, drain);
    ctx.log.info({ node, drained: drain, by: who }, drain ? 'node drained' : 'node resumed');
    ctx.audit.record({ who, action: drain ? 'drain' : 'resume', outcome: 'ok', node });
    ctx.events.emit('node', node);
    ctx.requestSchedule();
  }

  /**
   * Forgets an offline node with no unfinished task (see `forgetNode`).
   * @throws CutterError NOT_FOUND for an unknown node, INVALID_REQUEST for one that is up or still has tasks.
   */
  private forget(node: string, who: string): NodeView {
    const { ctx } = this;
    const view = ctx.registry.views(ctx.now()).find((n) => n.node === node);
    if (!view) throw new CutterError('NOT_FOUND', `no node ${node}`);
    if (view.state !== 'offline')
      throw new CutterError(
        'INVALID_REQUEST',
        `node ${node} is ${view.state}: stop its agent first (a running agent joins again at its next heartbeat)`,
      );
    const left = ctx.tasks.activeOn(node).length;
    if (left > 0)
      throw new CutterError(
        'INVALID_REQUEST',
        `node ${node} still has ${left} unfinished task${left === 1 ? '' : 's'}: cancel them or wait until they are lost`,
      );
    forgetNode(ctx, node, who);
    return view;
  }

  private submit(req: Submit, clientId: string): TaskState {
    const { ctx } = this;
    const taskId = req.taskId ?? randomBytes(6).toString('hex');
    const existing = ctx.tasks.get(taskId);
    if (existing) return existing.state; // a retried submit is idempotent
    const who = ctx.who(clientId);
    const wait = ctx.opts.exemptFromRateLimit?.(who) ? 0 : this.submits.take(who, ctx.now());
    if (wait > 0) {
      const limit = `${this.submits.perMinute} submissions per minute`;
      ctx.audit.record({ who, action: 'rate.limited', outcome: 'denied', taskId, detail: `over ${limit}` });
      throw new CutterError('RATE_LIMITED', `${who} is over ${limit}: retry in ${formatDuration(wait)}`);
    }
    try {
      const state = this.admit(req, clientId, taskId);
      ctx.audit.record({
        who,
        action: 'submit',
        outcome: state.state === 'queued' ? 'queued' : 'ok',
        taskId,
        detail: `${state.kind} ${state.summary}`,
      });
      return state;
    } catch (err) {
      ctx.audit.record({ who, action: 'submit', outcome: 'denied', taskId, detail: errorMessage(err) });
      throw err;
    }
  }

  private admit(req: Submit, clientId: string, taskId: string): TaskState {
    const { ctx } = this;
    const requirements = { ...req.requirements };
    if (!requirements.memory && req.spec.kind === 'docker' && req.spec.memoryLimit) requirements.memory = req.spec.memoryLimit;

    // Pinned to a node the controller has never heard of: a typo far more often than a node to come.
    if (requirements.node && !ctx.registry.get(requirements.node)) {
      const known = ctx.registry.views(ctx.now()).map((n) => n.node);
      throw new CutterError(
        'NO_FIT',
        `node "${requirements.node}" is not known to the controller${known.length ? ` (known: ${known.join(', ')})` : ' (no nodes have joined)'}`,
        [{ node: requirements.node, code: 'unknown-node' } satisfies Rejection],
      );
    }
    let record: TaskRecord;
    try {
      record = ctx.tasks.create({
        taskId,
        spec: req.spec,
        requirements,
        options: req.options,
        submittedBy: clientId,
        submitter: ctx.who(clientId),
        now: ctx.now(),
      });
    } catch (err) {
      if (err instanceof CutterError) throw err;
      throw new CutterError('INVALID_REQUEST', `invalid request: spec cannot be stored (${errorMessage(err)})`);
    }
    let noFit: ReturnType<Placement['tryPlace']>;
    try {
      noFit = this.placement.tryPlace(record, false);
    } catch (err) {
      // All or nothing: a submit that fails while being placed leaves no task behind.
      ctx.tasks.discard(taskId);
      throw err;
    }
    const never = noFit && requirements.node ? pinnedNever(noFit.rejections) : null;
    if (never) {
      // The one node named refuses by its own unchanging word (policy, platform, labels): waiting would be forever.
      ctx.tasks.discard(taskId);
      throw never;
    }
    if (noFit && !req.options.queue) {
      ctx.tasks.discard(taskId);
      ctx.log.info({ taskId, rejections: noFit.rejections }, 'no node fits; not queued');
      throw new CutterError('NO_FIT', noFit.message, noFit.rejections);
    }
    if (noFit) {
      ctx.log.info({ taskId, reason: record.state.reason }, 'task queued');
      ctx.publishState(record);
    }
    return record.state;
  }

  private cancel(taskId: string, graceMs: number | undefined, clientId: string): TaskState {
    const { ctx } = this;
    const record = this.getTask(taskId);
    const s = record.state;
    ctx.audit.record({
      who: ctx.who(clientId),
      action: 'cancel',
      outcome: isTerminal(s.state) ? 'failed' : 'ok',
      taskId,
      ...(s.node ? { node: s.node } : {}),
    });
    if (isTerminal(s.state)) throw new CutterError('ALREADY_FINISHED', `task ${taskId} already ${s.state}`);
    const wasQueued = s.state === 'queued';
    const nodeDown = !wasQueued && ctx.registry.isDown(s.node!);
    ctx.apply(record, transition(record, { type: 'cancel', graceMs: graceMs ?? 3_000, nodeDown }, ctx.now()));
    if (!wasQueued) ctx.log.info({ taskId, node: s.node }, 'cancel sent');
    return record.state;
  }
}

/**
 * A task pinned with `--node` to a node whose refusal is no matter of time (its policy, its
 * platform, its labels: they change only when its agent restarts with another config) is refused
 * at once, as the agent would have refused it: POLICY_DENIED with the rule, else NO_FIT.
 * @returns the error to throw, or null when the node may take the task later.
 */
function pinnedNever(rejections: Rejection[]): CutterError | null {
  const r = rejections[0];
  if (rejections.length !== 1 || !['policy', 'platform', 'constraint'].includes(r.code)) return null;
  const message = r.code === 'policy' ? `refused by node ${r.node}'s policy: ${r.detail}` : `node ${r.node}: ${formatRejection(r)}`;
  return new CutterError(r.code === 'policy' ? 'POLICY_DENIED' : 'NO_FIT', message, rejections);
}

/** The audit action of a refused write request. */
function auditAction(req: Request): 'submit' | 'token.create' | 'token.revoke' | 'drain' | 'resume' | 'forget' {
  switch (req.op) {
    case 'node.drain':
      return req.drain ? 'drain' : 'resume';
    case 'node.forget':
      return 'forget';
    case 'token.create':
    case 'token.revoke':
      return req.op;
    default:
      return 'submit';
  }
}

/**
 * Forgets a node (checked offline and idle by the caller): its registry entry, drain mark and
 * retained status; extensions drop it on `nodeRemoved` (Home Assistant removes its device).
 * @param who identity for the audit log (`controller` for the sweep's `forgetAfterMs`).
 */
export function forgetNode(ctx: ControllerContext, node: string, who: string): void {
  ctx.registry.remove(node);
  ctx.store.setDrained(node, false);
  ctx.publish(ctx.t.nodeStatus(node), '', { qos: 1, retain: true });
  ctx.log.info({ node, by: who }, 'node forgotten');
  ctx.audit.record({ who, action: 'forget', outcome: 'ok', node });
  ctx.events.emit('nodeRemoved', node);
}
