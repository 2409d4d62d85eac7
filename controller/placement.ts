/**
 * Placement: hands queued tasks to the pure scheduler (`place()`, scheduler/place.ts) with a
 * snapshot of the registry, then carries out its answer through the lifecycle — an assignment
 * (with a reservation on the node until its heartbeat lists the task) or a waiting reason, whose
 * per-node rejections stay data until shared/reasons.ts puts them into words.
 */
import { formatRejections } from '../shared/reasons.js';
import type { Rejection } from '../shared/schemas/index.js';
import type { ControllerContext } from './context.js';
import { transition } from './lifecycle.js';
import { admitOf } from './scheduler/node-fit.js';
import { place } from './scheduler/place.js';
import type { PlacementRequest } from './scheduler/snapshot.js';
import type { TaskRecord } from './task-record.js';

/** Why nothing fits a task now: a summary for the user and one rejection per node. */
export interface NoFit {
  message: string;
  rejections: Rejection[];
}

/**
 * Longest a queued task's stored and published waiting reason lags behind what the scheduler says
 * now, ms. The reason names every node's state (busy counts, offline, held GPUs), so under churn
 * it changes on nearly every placement pass: rewriting and republishing a thousand queued tasks'
 * states on every pass took the whole controller and broker thread, heartbeats went unread, live
 * nodes were declared offline and the churn fed itself (the flood test stalled for minutes). The
 * first reason of a queued attempt goes out at once; later changes at most this often.
 */
export const WAITING_REFRESH_MS = 5_000;

export class Placement {
  private pending = false;
  /** When each queued task's waiting reason was last written, and for which attempt count (a requeue starts afresh). */
  private readonly waitedAt = new WeakMap<TaskRecord, { at: number; attempt: number }>();

  constructor(private readonly ctx: ControllerContext) {
    ctx.requestSchedule = () => this.requestSchedule();
  }

  /** Runs a placement pass soon, once, however often it is asked for. */
  requestSchedule(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(
      () =>
        void this.ctx.serial('scheduling', () => {
          this.pending = false;
          return this.schedule();
        }),
    );
  }

  /**
   * Places queued tasks in order (priority, then age); a task that does not fit does not block smaller ones.
   *
   * Within one pass a placement only takes capacity away, so a request that found no node stays
   * without one until the pass ends: later tasks asking for exactly the same (kind, requirements,
   * model) get the same answer without asking the scheduler again. With a thousand identical tasks
   * queued behind full nodes, asking for each was most of the controller's CPU.
   */
  private schedule(): void {
    const now = this.ctx.now();
    const unplaceable = new Map<string, NoFit & { reason: string }>();
    for (const record of this.ctx.tasks.queued()) {
      if (record.notBefore > now) continue;
      const key = requestKey(record);
      const known = unplaceable.get(key);
      if (known) {
        this.wait(record, known, known.reason, true, now);
        continue;
      }
      const noFit = this.tryPlace(record);
      if (noFit) unplaceable.set(key, noFit);
    }
  }

  /**
   * Places a queued task if a node fits now.
   * @param publishWaiting publish a changed waiting reason (a submit answers with it instead).
   * @returns why nothing fits (the task stays queued), or null when placed or not queued.
   */
  tryPlace(record: TaskRecord, publishWaiting = true): (NoFit & { reason: string }) | null {
    const { ctx } = this;
    const now = ctx.now();
    const s = record.state;
    if (s.state !== 'queued') return null;
    const spec = record.spec;
    const ollama = spec.kind === 'ollama' ? { op: spec.op, model: spec.model, pull: spec.pull } : undefined;
    const placement = place(
      {
        kind: s.kind,
        requirements: s.requirements,
        ollama,
        ...execLimitsOf(spec),
        admit: admitOf(spec),
        ...storageOf(spec),
        ...(spec.kind === 'exec' && spec.tty ? { execTty: true } : {}),
      },
      { ...ctx.registry.snapshot(now, ctx.opts.policy), modelRules: ctx.opts.modelRules, local: ctx.opts.local },
    );
    if (!placement.ok) {
      const reason = `waiting: ${placement.message}${placement.rejections.length ? ` (${formatRejections(placement.rejections)})` : ''}`;
      this.wait(record, placement, reason, publishWaiting, now);
      return { ...placement, reason };
    }
    const step = transition(
      record,
      { type: 'placed', node: placement.node, placement: placement.reason, leaseMs: ctx.opts.leaseMs, ...gpusOf(placement) },
      now,
    );
    const attempt = s.attempt + 1;
    ctx.log.info({ taskId: s.taskId, attempt, node: placement.node, kind: s.kind, placement: placement.reason }, 'task placed');
    ctx.events.emit('placed', { taskId: s.taskId, node: placement.node, kind: s.kind, attempt });
    ctx.audit.record({
      who: 'controller',
      action: 'placement',
      outcome: 'ok',
      taskId: s.taskId,
      node: placement.node,
      detail: `attempt ${attempt}: ${placement.reason}`,
    });
    ctx.apply(record, step);
    // In flight on the node from now until the attempt ends, with its model (registry.ts).
    if (ollama) ctx.registry.describe(placement.node, s.taskId, { model: ollama.model, pulls: ollama.op === 'pull' || ollama.pull });
    // Its GPUs are held until the attempt ends, so the next placement picks other devices.
    if (placement.gpus) ctx.registry.holdGpus(placement.node, s.taskId, placement.gpus);
    return null;
  }

  /** Records why a queued task waits (`reason`, the formatted `noFit`), when that changed. */
  private wait(record: TaskRecord, noFit: NoFit, reason: string, publish: boolean, now: number): void {
    const last = this.waitedAt.get(record);
    if (last && last.attempt === record.state.attempt && now - last.at < WAITING_REFRESH_MS) return;
    const step = transition(record, { type: 'waiting', reason, publish }, now);
    if (!step.ok) return;
    this.waitedAt.set(record, { at: now, attempt: record.state.attempt });
    // Once per change of the answer, not once per placement pass (a queued task is retried often).
    this.ctx.events.emit('rejected', { taskId: record.state.taskId, kind: record.state.kind, rejections: noFit.rejections });
    this.ctx.apply(record, step);
  }
}

/** What the scheduler is asked for a task: two tasks with the same key get the same answer from the same snapshot. */
function requestKey(record: TaskRecord): string {
  let key = keys.get(record);
  if (key === undefined) {
    const spec = record.spec;
    const model = spec.kind === 'ollama' ? [spec.op, spec.model, spec.pull] : null;
    key = JSON.stringify([
      record.state.kind,
      record.state.requirements,
      model,
      execLimitsOf(spec).execLimits ?? null,
      admitOf(spec) ?? null,
      storageOf(spec),
    ]);
    if (spec.kind === 'exec' && spec.tty) key += ' tty';
    keys.set(record, key);
  }
  return key;
}

/** The limits an exec task asks for, as the scheduler checks them (none: `{}`). */
function execLimitsOf(spec: TaskRecord['spec']): Pick<PlacementRequest, 'execLimits'> {
  if (spec.kind !== 'exec' || (!spec.memoryLimit && !spec.cpus)) return {};
  return { execLimits: { memory: Boolean(spec.memoryLimit), cpus: Boolean(spec.cpus) } };
}

/** The GPUs a placement chose, as the `placed` event carries them (none: `{}`). */
function gpusOf(p: { gpus?: string[] }): { gpus?: string[] } {
  return p.gpus ? { gpus: p.gpus } : {};
}

/** Request keys by task record (a task's kind, requirements and model never change after submit). */
const keys = new WeakMap<TaskRecord, string>();

/** The volumes and host paths a task mounts, as the scheduler checks them (none: `{}`). */
function storageOf(spec: TaskRecord['spec']): Pick<PlacementRequest, 'volumes' | 'hostPaths'> {
  const volumes =
    spec.kind === 'docker'
      ? (spec.mounts ?? []).filter((m) => m.type === 'volume').map((m) => m.source)
      : spec.kind === 'exec'
        ? (spec.volumes ?? []).map((v) => v.name)
        : [];
  const hostPaths = spec.kind === 'docker' ? (spec.mounts ?? []).filter((m) => m.type === 'bind').map((m) => m.source) : [];
  return { ...(volumes.length ? { volumes } : {}), ...(hostPaths.length ? { hostPaths } : {}) };
}
