/**
 * The task lifecycle: every state and every transition in one place, as a pure function.
 *
 *   queued ──placed──▶ assigned (lease) ──started──▶ running ──result──▶ succeeded | failed | cancelled
 *   assigned/running ──node-down──▶ unknown ──heartbeat──▶ assigned/running (back inside its lost-after window)
 *   an attempt lost (node lost, lease expired, left out of heartbeats, stopped on its node, a node fault)
 *     ──▶ queued (attempt + 1, after a backoff) when the restart policy says so, else `lost`;
 *   a failed attempt likewise ──▶ queued or `failed`; cancel and timeout win over both.
 *   Events of a stale attempt (another attempt or node, a task already ended or queued) change
 *   nothing; the node is told to stop it (fenced) unless the event is its result.
 *
 * `transition(record, event, now)` takes the task as it is, one event and the time (ms epoch) and
 * returns a Step: whether the event applies, and the effects to carry out in order (store writes,
 * messages to nodes, reservations to release, a later placement pass). It reads the record and
 * changes nothing; controller/effects.ts carries the effects out. Tested in test/unit/lifecycle.test.ts.
 */
import { clip } from '../shared/codec.js';
import { isTerminal, type TaskEvent, type TaskState } from '../shared/schemas/index.js';
import { formatDuration } from '../shared/units.js';
import { FINAL_CODES, NODE_FAULT_CODES, backoffMs, wantsRetry, type AttemptEnd, type TaskRecord } from './task-record.js';

/** Heartbeats that may miss a running, accepted attempt before it counts as lost. */
export const MISSING_HEARTBEATS = 2;
/** A stale attempt still reported by a node is told to stop at most this often, ms. */
export const FENCE_REPEAT_MS = 5_000;
/** Grace given to a task told to stop for a timeout or a stale attempt, ms. */
export const STOP_GRACE_MS = 3_000;

/** What can happen to a task. Times are ms epoch on the controller's clock; durations ms. */
export type LifecycleEvent =
  /** The scheduler chose `node`; the agent has `leaseMs` to accept. `placement` says why (for the user). */
  | { type: 'placed'; node: string; placement: string; leaseMs: number; gpus?: string[] }
  /** Nothing fits now; `reason` is the waiting reason in words. `publish: false` only stores it (a submit answers with it). */
  | { type: 'waiting'; reason: string; publish: boolean }
  /** An event an agent published for the task (accepted, started, result, failed, log, progress). */
  | { type: 'agent'; event: TaskEvent }
  /** A client asked to cancel; `nodeDown`: the task's node is down now. */
  | { type: 'cancel'; graceMs: number; nodeDown: boolean }
  /** The task's node went offline (`reason`); `windowMs`: the node's lost-after window (the task's own option wins). */
  | { type: 'node-down'; node: string; reason: string; windowMs: number }
  /** A heartbeat of the task's node; `listed`: it lists the current attempt as running. */
  | { type: 'heartbeat'; listed: boolean }
  /** The sweep: an `unknown` task's lost-after window may be over. */
  | { type: 'lost-window-over' }
  /** The sweep: an assigned attempt's lease may have run out unaccepted. */
  | { type: 'lease-expired'; leaseMs: number }
  /** The sweep: the task's timeout (`options.timeoutMs` after `createdAt`) may have passed. */
  | { type: 'timeout' };

/** The bookkeeping fields of a TaskRecord (everything but its public state). */
export type Bookkeeping = Partial<Omit<TaskRecord, 'state'>>;

/** One thing to carry out, in order. */
export type Effect =
  /** Keep the agent's event for followers (task logs) and tell observers. */
  | { type: 'keep-event' }
  /** Change and store the record: `patch` on its state (omitted: bookkeeping only, `updatedAt` kept); `publish` its retained state. */
  | { type: 'write'; patch?: Partial<TaskState>; extra?: Bookkeeping; publish: boolean }
  /** Change bookkeeping in memory only (heartbeat counters; stored with the next write). */
  | { type: 'note'; extra: Bookkeeping }
  /** Hold `memory` bytes on `node` until its heartbeat lists the task. */
  | { type: 'reserve'; node: string; memory: number }
  /** Drop the task's reservation on `node`. */
  | { type: 'release'; node: string }
  /** Send the assignment of `attempt` to `node`. */
  | { type: 'assign'; node: string; attempt: number; leaseExpiresAt: number }
  /** Ask `node` to stop `attempt` (a cancel or a timeout), with `graceMs` before it is killed. */
  | { type: 'cancel'; node: string; attempt: number; graceMs: number }
  /** Tell `node` to stop an attempt the mesh no longer wants there (repeats are damped by the controller). */
  | { type: 'fence'; node: string; attempt: number; why: string }
  /** Another attempt follows: run a placement pass after `delayMs`. */
  | { type: 'retry'; delayMs: number; end: AttemptEnd; why: string }
  /** The task reached a terminal state: log, audit, evict old tasks, place others. */
  | { type: 'finished' };

/** The answer to one event: `ok: false` when it changes nothing (`why`; `effects` may still fence). */
export interface Step {
  ok: boolean;
  why?: string;
  effects: Effect[];
}

const ignore = (why: string, effects: Effect[] = []): Step => ({ ok: false, why, effects });
const step = (...effects: Effect[]): Step => ({ ok: true, effects });

/**
 * The next step of a task.
 * @param record the task as it is (not changed).
 * @param now ms epoch, controller clock.
 */
export function transition(record: TaskRecord, event: LifecycleEvent, now: number): Step {
  const s = record.state;
  if (isTerminal(s.state)) {
    if (event.type === 'agent') return staleEvent(event.event, `task already ${s.state}`);
    return ignore(`task already ${s.state}`);
  }
  switch (event.type) {
    case 'placed': {
      if (s.state !== 'queued') return ignore(`task is ${s.state}, not queued`);
      const attempt = s.attempt + 1;
      const leaseExpiresAt = now + event.leaseMs;
      const nodes = record.nodes?.includes(event.node) ? record.nodes : [...(record.nodes ?? []), event.node];
      return step(
        { type: 'reserve', node: event.node, memory: s.requirements.memory },
        {
          type: 'write',
          patch: {
            state: 'assigned',
            node: event.node,
            attempt,
            placement: clip(event.placement, 2_000),
            reason: null,
            assignedAt: now,
            startedAt: null,
            exitCode: null,
            oomKilled: false,
          },
          extra: { accepted: false, leaseExpiresAt, lostAt: null, missing: 0, nodes, ...(event.gpus ? { gpus: event.gpus } : {}) },
          publish: true,
        },
        { type: 'assign', node: event.node, attempt, leaseExpiresAt },
      );
    }
    case 'waiting': {
      if (s.state !== 'queued') return ignore(`task is ${s.state}, not queued`);
      // TaskState caps reason at 4,000 characters; a large mesh lists many rejected nodes.
      const reason = clip(event.reason, 4_000);
      if (reason === s.reason) return ignore('the same waiting reason');
      return step({ type: 'write', patch: { reason }, publish: event.publish });
    }
    case 'agent':
      return agentEvent(record, event.event, now);
    case 'cancel': {
      const mark: Effect = { type: 'write', extra: { cancelRequested: true }, publish: false };
      if (s.state === 'queued') return step(mark, ...finish(record, { state: 'cancelled', error: null }, now));
      // Sent even to a node that is away: its persistent session delivers it when it is back.
      const cancel: Effect = { type: 'cancel', node: s.node!, attempt: s.attempt, graceMs: event.graceMs };
      if (s.state !== 'unknown' && !event.nodeDown) return step(mark, cancel);
      return step(
        mark,
        cancel,
        ...finish(
          record,
          {
            state: 'cancelled',
            error: { code: 'CANCELLED', message: `cancelled while node ${s.node} was offline; it is told to stop when it is back` },
          },
          now,
        ),
      );
    }
    case 'node-down': {
      if (s.state === 'queued' || s.node !== event.node) return ignore('not placed on that node');
      if (s.state === 'unknown') return ignore('already waiting for its node');
      const lostAfter = s.options.lostAfterMs ?? event.windowMs;
      const message = `node ${event.node} went offline (${event.reason}) while the task was ${s.state}`;
      if (lostAfter === 0) return step(...attemptEnded(record, 'lost', { error: { code: 'NODE_LOST', message } }, now));
      return step({
        type: 'write',
        patch: { state: 'unknown', reason: clip(`${message}; lost unless it is back within ${formatDuration(lostAfter)}`, 4_000) },
        extra: { lostAt: now + lostAfter },
        publish: true,
      });
    }
    case 'heartbeat': {
      if (s.state === 'queued') return ignore('not placed');
      if (s.state === 'unknown') {
        // The node is back inside the window: carry on where it was, or find out it is gone.
        return step({
          type: 'write',
          patch: { state: s.startedAt ? 'running' : 'assigned', reason: null },
          extra: { lostAt: null, missing: event.listed ? 0 : 1 },
          publish: true,
        });
      }
      if (event.listed) return record.missing === 0 ? ignore('listed, as expected') : step({ type: 'note', extra: { missing: 0 } });
      if (!record.accepted) return ignore('not accepted yet: the lease covers it');
      const missing = record.missing + 1;
      if (missing < MISSING_HEARTBEATS) return step({ type: 'note', extra: { missing } });
      return step(
        { type: 'note', extra: { missing } },
        ...attemptEnded(
          record,
          'lost',
          { error: { code: 'NODE_LOST', message: `node ${s.node} no longer runs attempt ${s.attempt}` } },
          now,
        ),
      );
    }
    case 'lost-window-over':
      if (s.state !== 'unknown' || record.lostAt === null || record.lostAt > now) return ignore('not past a lost-after window');
      return step(
        ...attemptEnded(
          record,
          'lost',
          { error: { code: 'NODE_LOST', message: `node ${s.node} did not come back within the task's lost-after window` } },
          now,
        ),
      );
    case 'lease-expired':
      if (s.state !== 'assigned' || record.accepted || record.leaseExpiresAt === null || record.leaseExpiresAt > now)
        return ignore('no lease ran out');
      return step(
        ...attemptEnded(
          record,
          'lost',
          { error: { code: 'LEASE_EXPIRED', message: `node ${s.node} did not accept attempt ${s.attempt} within ${event.leaseMs} ms` } },
          now,
        ),
      );
    case 'timeout': {
      const deadline = s.options.timeoutMs === null ? null : s.createdAt + s.options.timeoutMs;
      if (deadline === null || deadline > now) return ignore('not timed out');
      if (record.timedOut) return ignore('already told to stop for its timeout');
      if (s.state === 'queued') {
        const message = `timed out after ${formatDuration(s.options.timeoutMs!)} waiting in the queue${s.reason ? `: ${s.reason}` : ''}`;
        return step(...finish(record, { state: 'failed', error: { code: 'TIMEOUT', message } }, now));
      }
      return step(
        { type: 'write', extra: { timedOut: true }, publish: false },
        { type: 'cancel', node: s.node!, attempt: s.attempt, graceMs: STOP_GRACE_MS },
      );
    }
  }
}

/** An agent's event for an attempt that is not the current one: ignored, and its node told to stop it unless it ended. */
function staleEvent(event: TaskEvent, why: string): Step {
  const fence: Effect[] =
    event.type === 'result' || event.type === 'failed'
      ? []
      : [{ type: 'fence', node: event.node, attempt: event.attempt, why: 'event from a stale attempt' }];
  return ignore(`event from a stale attempt (${why})`, fence);
}

function agentEvent(record: TaskRecord, event: TaskEvent, now: number): Step {
  const s = record.state;
  if (event.attempt !== s.attempt || event.node !== s.node) return staleEvent(event, 'not the current attempt');
  if (s.state === 'queued') return staleEvent(event, 'task is queued');
  const keep: Effect = { type: 'keep-event' };
  switch (event.type) {
    case 'accepted':
      return step(keep, { type: 'write', extra: { accepted: true }, publish: false });
    case 'started':
      // A re-adopting agent reports `started` again: the first start time stands.
      return step(keep, {
        type: 'write',
        patch: { state: 'running', startedAt: s.startedAt ?? event.ts, reason: null },
        extra: { accepted: true, lostAt: null },
        publish: true,
      });
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
        const message = `attempt ${s.attempt} was stopped on node ${s.node} (exit code ${event.exitCode})`;
        return step(keep, ...attemptEnded(record, 'lost', { ...patch, error: { code: 'NODE_LOST', message } }, now));
      }
      return step(keep, ...attemptEnded(record, end, patch, now));
    }
    case 'failed': {
      // The node could not run it, or it was shut down under it: those are the node's doing.
      const end: AttemptEnd = NODE_FAULT_CODES.includes(event.code) ? 'lost' : 'failed';
      // The exit code a shell would give (127: command not found …) is the task's, for `cutter run` to exit with.
      const patch = { error: { code: event.code, message: event.message }, exitCode: event.exitCode ?? null };
      return step(keep, ...attemptEnded(record, end, patch, now));
    }
    default:
      return step(keep); // progress and log events are kept for followers
  }
}

/**
 * The current attempt ended. Cancel and timeout win; otherwise the restart policy decides
 * between another attempt (queued after a backoff) and the end of the task.
 */
function attemptEnded(record: TaskRecord, end: AttemptEnd, patch: Partial<TaskState>, now: number): Effect[] {
  const s = record.state;
  const out: Effect[] = [];
  if (s.node) out.push({ type: 'release', node: s.node });
  // A lost attempt may still run, or still wait in the node's session: tell the node to stop it.
  if (end === 'lost' && s.node) out.push({ type: 'fence', node: s.node, attempt: s.attempt, why: 'attempt lost' });
  if (record.cancelRequested) return [...out, ...finish(record, { ...patch, state: 'cancelled', error: null }, now, true)];
  if (record.timedOut) {
    const error = { code: 'TIMEOUT', message: `timed out after ${formatDuration(s.options.timeoutMs ?? 0)}` };
    return [...out, ...finish(record, { ...patch, state: 'failed', error }, now, true)];
  }
  const final = patch.error ? FINAL_CODES.includes(patch.error.code) : false;
  if (!final && wantsRetry(s.options.restart, end) && s.attempt < s.options.maxAttempts) {
    const delayMs = backoffMs(s.attempt, end);
    const why = patch.error?.message ?? `attempt ${s.attempt} ${end}`;
    const reason = `attempt ${s.attempt} ${end}: ${why}; attempt ${s.attempt + 1} of ${s.options.maxAttempts} in ${formatDuration(delayMs)}`;
    return [
      ...out,
      {
        type: 'write',
        patch: { state: 'queued', node: null, reason: clip(reason, 4_000), exitCode: patch.exitCode ?? null },
        extra: { notBefore: now + delayMs, accepted: false, leaseExpiresAt: null, lostAt: null, missing: 0 },
        publish: true,
      },
      { type: 'retry', delayMs, end, why },
    ];
  }
  const state = end === 'succeeded' ? 'succeeded' : end === 'lost' ? 'lost' : 'failed';
  return [...out, ...finish(record, { ...patch, state, ...(state === 'succeeded' ? { error: null } : {}) }, now, true)];
}

/** The task ends with `patch` (a terminal state); `released`: its reservation is already dropped. */
function finish(record: TaskRecord, patch: Partial<TaskState>, now: number, released = false): Effect[] {
  const out: Effect[] = [];
  if (record.state.node && !released) out.push({ type: 'release', node: record.state.node });
  out.push(
    { type: 'write', patch: { reason: null, ...patch, finishedAt: now }, extra: { leaseExpiresAt: null, lostAt: null }, publish: true },
    { type: 'finished' },
  );
  return out;
}

/**
 * The record after a step's writes and notes (a copy; for tests and previews). Like
 * TaskStore.update, a write with a patch also sets `updatedAt` to `now`.
 */
export function preview(record: TaskRecord, s: Step, now: number): TaskRecord {
  const out: TaskRecord = structuredClone(record);
  for (const e of s.effects) {
    if (e.type === 'note') Object.assign(out, e.extra);
    if (e.type !== 'write') continue;
    if (e.patch) Object.assign(out.state, e.patch, { updatedAt: now });
    Object.assign(out, e.extra ?? {});
  }
  return out;
}
