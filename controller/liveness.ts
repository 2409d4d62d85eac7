/**
 * Liveness: what the controller learns from node heartbeats and from the passing of time.
 * A node status updates the registry and is reconciled with the tasks placed there (attempts it
 * should not run are fenced; attempts it no longer lists are lost after MISSING_HEARTBEATS); a
 * node that says it is offline, or whose heartbeats stop (STALE_AFTER_HEARTBEATS intervals), takes
 * its tasks to `unknown` for their lost-after window. The sweep (every SWEEP_MS) ends windows,
 * leases and timeouts. Every change of a task goes through the lifecycle (lifecycle.ts).
 */
import { isTerminal, type NodeStatus } from '../shared/schemas/index.js';
import { formatDuration } from '../shared/units.js';
import type { ControllerContext } from './context.js';
import { transition, type LifecycleEvent } from './lifecycle.js';
import { STALE_AFTER_HEARTBEATS } from './scheduler/snapshot.js';
import { forgetNode } from './requests.js';
import type { TaskRecord } from './task-record.js';

/** How often timers are checked (staleness, leases, lost-after windows, timeouts), ms. */
export const SWEEP_MS = 200;
/** How long after its result a finished attempt may still be listed by its node without being fenced, ms. */
const FINISHING_GRACE_MS = 30_000;

/** Default `forgetAfterMs`: nodes offline a week are forgotten, ms. */
export const DEFAULT_FORGET_AFTER_MS = 7 * 24 * 3_600_000;
/** How often the sweep looks for nodes to forget, ms. */
const FORGET_CHECK_MS = 60_000;

export class Liveness {
  /** When the sweep last looked for nodes to forget, ms epoch. */
  private forgetCheckedAt = 0;

  constructor(private readonly ctx: ControllerContext) {}

  /** Runs one lifecycle event on a task. @returns whether it applied. */
  private run(record: TaskRecord, event: LifecycleEvent): boolean {
    const step = transition(record, event, this.ctx.now());
    this.ctx.apply(record, step);
    return step.ok;
  }

  /** A node's status (retained, on its status topic). */
  onNodeStatus(status: NodeStatus, topic: string): void {
    const { ctx } = this;
    if (ctx.t.idFrom(topic, 'nodes') !== status.node) {
      ctx.log.warn({ topic, node: status.node }, 'dropped node status: node id does not match its topic');
      return;
    }
    const now = ctx.now();
    const change = ctx.registry.update(status, now);
    ctx.events.emit('node', status.node);
    if (change.isNew || change.cameBack || change.wentDown)
      ctx.log.info({ node: status.node, state: status.state, cameBack: change.cameBack, reason: status.reason }, 'node state changed');
    if (status.state === 'offline') {
      this.nodeDown(status.node, status.reason ?? 'offline');
      ctx.requestSchedule();
      return;
    }

    // Attempts that ended there and wait for their result's ack count as present (the result is on its way again).
    for (const f of status.finished ?? []) {
      const record = ctx.tasks.get(f.taskId);
      // Nothing left to apply (unknown task, or an attempt the controller is past): acknowledged, so the node stops re-sending.
      const current = record && !isTerminal(record.state.state) && record.state.attempt === f.attempt && record.state.node === status.node;
      if (!current) ctx.ack(status.node, f.taskId, f.attempt);
    }
    const finished = new Map((status.finished ?? []).map((r) => [r.taskId, r.attempt]));
    // Reconcile what the node runs with what the controller expects there.
    const listed = new Map(status.running.map((r) => [r.taskId, r.attempt]));
    for (const [taskId, attempt] of listed) {
      const record = ctx.tasks.get(taskId);
      // A current attempt whose result just came in may stay listed until the agent's result is
      // acknowledged; one that ended otherwise (cancelled, lost, timed out) is told to stop.
      const finishing =
        record &&
        (record.state.state === 'succeeded' || record.state.state === 'failed') &&
        record.state.exitCode !== null &&
        record.state.attempt === attempt &&
        record.state.node === status.node &&
        now - (record.state.finishedAt ?? 0) < FINISHING_GRACE_MS;
      if (
        !finishing &&
        (!record || isTerminal(record.state.state) || record.state.attempt !== attempt || record.state.node !== status.node)
      ) {
        const why = !record
          ? 'unknown task'
          : isTerminal(record.state.state)
            ? `task already ${record.state.state}`
            : 'not the current attempt';
        ctx.fence(status.node, taskId, attempt, why, record ? 'stale-attempt' : 'unknown-task');
      }
    }
    for (const record of ctx.tasks.activeOn(status.node)) {
      const id = record.state.taskId;
      const here = listed.get(id) === record.state.attempt || finished.get(id) === record.state.attempt;
      const wasUnknown = record.state.state === 'unknown';
      if (this.run(record, { type: 'heartbeat', listed: here }) && wasUnknown && here)
        ctx.log.info({ taskId: record.state.taskId, node: status.node }, 'node came back; task carries on');
    }
    ctx.requestSchedule();
  }

  /** A node is gone: its live tasks become `unknown`, lost at once when their window is 0. */
  private nodeDown(node: string, reason: string): void {
    const windowMs = this.ctx.registry.lostAfterMs(node);
    for (const record of this.ctx.tasks.activeOn(node)) this.run(record, { type: 'node-down', node, reason, windowMs });
  }

  /** Marks silent nodes down and ends lost-after windows, leases and timeouts that ran out. */
  sweep(): void {
    const { ctx } = this;
    const now = ctx.now();
    for (const { node, silentMs } of ctx.registry.silentNodes(now, (s) => s.heartbeatMs * STALE_AFTER_HEARTBEATS)) {
      if (ctx.registry.markDown(node, `no heartbeat for ${formatDuration(silentMs)}`, now)) {
        ctx.log.warn({ node, silentMs }, 'node missed its heartbeats: offline');
        ctx.events.emit('node', node);
        this.nodeDown(node, `no heartbeat for ${formatDuration(silentMs)}`);
        ctx.requestSchedule();
      }
    }
    const graceOver = now - ctx.startedAt > ctx.opts.startupGraceMs;
    for (const record of ctx.tasks.liveTasks()) {
      const s = record.state;
      if (isTerminal(s.state)) continue;
      if (this.run(record, { type: 'lost-window-over' })) continue;
      if (s.node && s.state !== 'queued' && s.state !== 'unknown' && graceOver && ctx.registry.get(s.node) === undefined) {
        // Placed before a restart on a node that has not reported since.
        this.nodeDown(s.node, 'not heard from since the controller restarted');
        continue;
      }
      // A lease that ran out while the controller was down waits for the startup grace (the agent may yet report).
      if (
        (graceOver || (record.leaseExpiresAt ?? 0) > ctx.startedAt) &&
        this.run(record, { type: 'lease-expired', leaseMs: ctx.opts.leaseMs })
      )
        continue;
      this.run(record, { type: 'timeout' });
    }
    if (ctx.tasks.hasQueued()) ctx.requestSchedule();
    this.forgetGone(now);
  }

  /**
   * Forgets nodes offline longer than `forgetAfterMs` (default 7 days; 0 = never) that have no
   * unfinished task: like `cutter node forget`, so Home Assistant removes their devices too.
   * Checked at most once a minute; skipped while storage is degraded (it writes).
   */
  private forgetGone(now: number): void {
    const { ctx } = this;
    const after = ctx.opts.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS;
    if (after <= 0 || now - this.forgetCheckedAt < Math.min(FORGET_CHECK_MS, after) || !ctx.store.guard.ok) return;
    this.forgetCheckedAt = now;
    for (const view of ctx.registry.views(now)) {
      if (view.state !== 'offline' || view.lastSeenAgoMs < after || ctx.tasks.activeOn(view.node).length > 0) continue;
      ctx.log.info(
        { node: view.node, offlineForMs: view.lastSeenAgoMs },
        `forgetting node offline for ${formatDuration(view.lastSeenAgoMs)}`,
      );
      forgetNode(ctx, view.node, 'controller');
    }
  }
}
