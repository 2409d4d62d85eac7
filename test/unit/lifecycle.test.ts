/**
 * The task lifecycle (controller/lifecycle.ts) driven event by event with an injected clock: no
 * broker, no sleeps. Each test follows one task and checks its next state and the effects the
 * controller is to carry out (store writes, messages to nodes, reservations, retries).
 */
import { describe, expect, it } from 'vitest';
import { preview, transition, type Effect, type LifecycleEvent } from '../../controller/lifecycle.js';
import type { TaskRecord } from '../../controller/task-record.js';
import { TaskEventSchema, TaskOptionsSchema, type TaskEvent, type TaskOptions } from '../../shared/schemas/index.js';

const T0 = 1_700_000_000_000;
const LEASE = 10_000;

function queued(options: Partial<TaskOptions> = {}): TaskRecord {
  return {
    spec: { kind: 'exec', argv: ['true'], env: {} } as unknown as TaskRecord['spec'],
    accepted: false,
    cancelRequested: false,
    timedOut: false,
    leaseExpiresAt: null,
    notBefore: 0,
    lostAt: null,
    missing: 0,
    state: {
      v: 1,
      taskId: 't1',
      state: 'queued',
      kind: 'exec',
      summary: 'true',
      node: null,
      attempt: 0,
      requirements: { memory: 1024, cpus: 0 },
      options: TaskOptionsSchema.parse(options),
      placement: null,
      reason: null,
      createdAt: T0,
      updatedAt: T0,
      assignedAt: null,
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      oomKilled: false,
      error: null,
      submittedBy: 'cli',
    },
  };
}

/** Applies one event at `now`: the step and the record after it. */
function drive(record: TaskRecord, event: LifecycleEvent, now: number) {
  const step = transition(record, event, now);
  return { step, next: preview(record, step, now), types: step.effects.map((e) => e.type) };
}

let seq = 0;
function agent(type: TaskEvent['type'], extra: Record<string, unknown> = {}, attempt = 1, node = 'n1'): LifecycleEvent {
  const event = TaskEventSchema.parse({ v: 1, taskId: 't1', attempt, node, seq: seq++, ts: T0 + 500, type, ...extra });
  return { type: 'agent', event };
}
const result = (exitCode: number, more: Record<string, unknown> = {}, attempt = 1) =>
  agent('result', { exitCode, oomKilled: false, cancelled: false, startedAt: T0 + 500, finishedAt: T0 + 900, ...more }, attempt);

/** A task placed on n1 at T0 + 100 (attempt 1), accepted and started. */
function running(options: Partial<TaskOptions> = {}): TaskRecord {
  let r = drive(queued(options), { type: 'placed', node: 'n1', placement: 'n1: room', leaseMs: LEASE }, T0 + 100).next;
  r = drive(r, agent('accepted'), T0 + 200).next;
  return drive(r, agent('started'), T0 + 300).next;
}

const effect = <K extends Effect['type']>(effects: Effect[], type: K) =>
  effects.find((e) => e.type === type) as Extract<Effect, { type: K }>;

describe('lifecycle: placement', () => {
  it('queued → assigned: reserves memory, publishes, sends the assignment with its lease', () => {
    const { step, next, types } = drive(queued(), { type: 'placed', node: 'n1', placement: 'n1: room', leaseMs: LEASE }, T0 + 100);
    expect(step.ok).toBe(true);
    expect(types).toEqual(['reserve', 'write', 'assign']);
    expect(effect(step.effects, 'reserve')).toEqual({ type: 'reserve', node: 'n1', memory: 1024 });
    expect(effect(step.effects, 'assign')).toEqual({ type: 'assign', node: 'n1', attempt: 1, leaseExpiresAt: T0 + 100 + LEASE });
    expect(next.state).toMatchObject({ state: 'assigned', node: 'n1', attempt: 1, assignedAt: T0 + 100, updatedAt: T0 + 100 });
    expect(next).toMatchObject({ accepted: false, leaseExpiresAt: T0 + 100 + LEASE, nodes: ['n1'] });
  });

  it('refuses to place a task that is not queued', () => {
    const { step } = drive(running(), { type: 'placed', node: 'n2', placement: '', leaseMs: LEASE }, T0 + 400);
    expect(step).toMatchObject({ ok: false, effects: [] });
  });

  it('a waiting reason is written once per change, published unless a submit answers with it', () => {
    const first = drive(queued(), { type: 'waiting', reason: 'waiting: no node', publish: true }, T0 + 1);
    expect(first.step.effects).toEqual([{ type: 'write', patch: { reason: 'waiting: no node' }, publish: true }]);
    expect(drive(first.next, { type: 'waiting', reason: 'waiting: no node', publish: true }, T0 + 2).step.ok).toBe(false);
    expect(drive(queued(), { type: 'waiting', reason: 'x', publish: false }, T0 + 1).step.effects).toEqual([
      { type: 'write', patch: { reason: 'x' }, publish: false },
    ]);
  });
});

describe('lifecycle: an attempt runs', () => {
  it('accepted is kept and stored, not published; started → running with the agent’s start time', () => {
    let r = drive(queued(), { type: 'placed', node: 'n1', placement: '', leaseMs: LEASE }, T0 + 100).next;
    const acc = drive(r, agent('accepted'), T0 + 200);
    expect(acc.step.effects).toEqual([{ type: 'keep-event' }, { type: 'write', extra: { accepted: true }, publish: false }]);
    r = acc.next;
    const started = drive(r, agent('started'), T0 + 300);
    expect(started.next.state).toMatchObject({ state: 'running', startedAt: T0 + 500 });
    // A re-adopting agent reports started again: the first start time stands.
    const again = drive(started.next, agent('started', { ts: T0 + 9_000 }), T0 + 9_000);
    expect(again.next.state.startedAt).toBe(T0 + 500);
  });

  it('log and progress events are kept for followers and change nothing else', () => {
    const { step } = drive(running(), agent('log', { stream: 'stdout', data: 'hi\n' }), T0 + 400);
    expect(step.effects).toEqual([{ type: 'keep-event' }]);
  });

  it('exit code 0 → succeeded: the reservation is released and the task finished', () => {
    const { next, types } = drive(running(), result(0), T0 + 1_000);
    expect(types).toEqual(['keep-event', 'release', 'write', 'finished']);
    expect(next.state).toMatchObject({ state: 'succeeded', exitCode: 0, error: null, finishedAt: T0 + 1_000, reason: null });
  });

  it('a non-zero exit → failed with EXIT_CODE under on-lost; OOM → OOM_KILLED', () => {
    expect(drive(running(), result(3), T0 + 1_000).next.state).toMatchObject({ state: 'failed', error: { code: 'EXIT_CODE' } });
    const oom = drive(running(), result(137, { oomKilled: true }), T0 + 1_000).next.state;
    expect(oom).toMatchObject({ state: 'failed', oomKilled: true, error: { code: 'OOM_KILLED' } });
  });

  it('a command not found or not invokable fails the task with its exit code, never retried (even under always)', () => {
    for (const [code, exitCode] of [
      ['COMMAND_NOT_FOUND', 127],
      ['COMMAND_NOT_INVOKABLE', 126],
    ] as const) {
      const { next, types } = drive(
        running({ restart: 'always', maxAttempts: 5 }),
        agent('failed', { code, message: 'm', exitCode }),
        T0 + 1_000,
      );
      expect(types).not.toContain('retry');
      expect(next.state).toMatchObject({ state: 'failed', attempt: 1, exitCode, error: { code, message: 'm' } });
    }
    // Other start failures keep following the policy.
    const other = drive(running({ restart: 'on-failure' }), agent('failed', { code: 'START_FAILED', message: 'm' }), T0 + 1_000);
    expect(other.next.state).toMatchObject({ state: 'queued', exitCode: null });
  });

  it('a failure with retries left under on-failure → queued again after a backoff (1 s after attempt 1)', () => {
    const { step, next } = drive(running({ restart: 'on-failure', maxAttempts: 3 }), result(1), T0 + 1_000);
    expect(next.state).toMatchObject({ state: 'queued', node: null, attempt: 1, exitCode: 1 });
    expect(next.state.reason).toBe('attempt 1 failed: exited with code 1; attempt 2 of 3 in 1.0 s');
    expect(next).toMatchObject({ notBefore: T0 + 2_000, accepted: false, leaseExpiresAt: null });
    expect(effect(step.effects, 'retry')).toMatchObject({ delayMs: 1_000, end: 'failed' });
    // The next placement is attempt 2.
    const again = drive(next, { type: 'placed', node: 'n2', placement: '', leaseMs: LEASE }, T0 + 2_000).next;
    expect(again.state).toMatchObject({ state: 'assigned', attempt: 2, node: 'n2' });
    expect(again.nodes).toEqual(['n1', 'n2']);
  });

  it('a node-fault failure (AGENT_SHUTDOWN) counts as lost: requeued at once and fenced; another code fails the task', () => {
    const lost = drive(running(), agent('failed', { code: 'AGENT_SHUTDOWN', message: 'agent stopping' }), T0 + 1_000);
    expect(lost.next.state).toMatchObject({ state: 'queued' });
    expect(effect(lost.step.effects, 'fence')).toEqual({ type: 'fence', node: 'n1', attempt: 1, why: 'attempt lost' });
    expect(effect(lost.step.effects, 'retry').delayMs).toBe(0);
    const failed = drive(running(), agent('failed', { code: 'IMAGE_PULL', message: 'no such image' }), T0 + 1_000);
    expect(failed.next.state).toMatchObject({ state: 'failed', error: { code: 'IMAGE_PULL', message: 'no such image' } });
  });

  it('stopped on its node without our asking (cancelled result, no cancel asked) → the attempt is lost', () => {
    const { next } = drive(running({ maxAttempts: 1 }), result(137, { cancelled: true }), T0 + 1_000);
    expect(next.state).toMatchObject({ state: 'lost', error: { code: 'NODE_LOST' } });
  });
});

describe('lifecycle: refused and ignored events', () => {
  it('an event of a stale attempt changes nothing and fences it; its result is not fenced', () => {
    const r = drive(running({ restart: 'on-failure' }), result(1), T0 + 1_000).next; // now queued for attempt 2
    const placed = drive(r, { type: 'placed', node: 'n1', placement: '', leaseMs: LEASE }, T0 + 2_000).next;
    const log = drive(placed, agent('log', { stream: 'stdout', data: 'x' }, 1), T0 + 2_100);
    expect(log.step).toEqual({
      ok: false,
      why: 'event from a stale attempt (not the current attempt)',
      effects: [{ type: 'fence', node: 'n1', attempt: 1, why: 'event from a stale attempt' }],
    });
    expect(drive(placed, result(0, {}, 1), T0 + 2_100).step).toMatchObject({ ok: false, effects: [] });
    // From another node with the current attempt number: stale too.
    expect(drive(placed, agent('started', {}, 2, 'n9'), T0 + 2_100).step).toMatchObject({
      ok: false,
      effects: [{ type: 'fence', node: 'n9' }],
    });
  });

  it('an event for a queued task is stale', () => {
    expect(drive(queued(), agent('started'), T0).step.ok).toBe(false);
  });

  it('a duplicate result after the end changes nothing', () => {
    const done = drive(running(), result(0), T0 + 1_000).next;
    expect(drive(done, result(0), T0 + 1_100).step).toEqual({
      ok: false,
      why: 'event from a stale attempt (task already succeeded)',
      effects: [],
    });
  });

  it('a log after the end is fenced; a result after a cancel that ended the task changes nothing', () => {
    const down = drive(running(), { type: 'node-down', node: 'n1', reason: 'connection lost', windowMs: 30_000 }, T0 + 1_000).next;
    const cancelled = drive(down, { type: 'cancel', graceMs: 0, nodeDown: true }, T0 + 1_100).next;
    expect(cancelled.state.state).toBe('cancelled');
    expect(drive(cancelled, result(0), T0 + 1_200).step).toMatchObject({ ok: false, effects: [] });
    expect(drive(cancelled, agent('log', { stream: 'stdout', data: 'x' }), T0 + 1_200).step.effects).toEqual([
      { type: 'fence', node: 'n1', attempt: 1, why: 'event from a stale attempt' },
    ]);
    expect(drive(cancelled, { type: 'cancel', graceMs: 0, nodeDown: false }, T0 + 1_300).step).toEqual({
      ok: false,
      why: 'task already cancelled',
      effects: [],
    });
  });
});

describe('lifecycle: cancel', () => {
  it('a queued task is cancelled at once, with nothing sent to a node', () => {
    const { next, types } = drive(queued(), { type: 'cancel', graceMs: 3_000, nodeDown: false }, T0 + 50);
    expect(types).toEqual(['write', 'write', 'finished']);
    expect(next.state).toMatchObject({ state: 'cancelled', error: null, finishedAt: T0 + 50 });
  });

  it('a running task is told to stop; its result then ends it cancelled whatever the exit code', () => {
    const asked = drive(running(), { type: 'cancel', graceMs: 2_000, nodeDown: false }, T0 + 1_000);
    expect(effect(asked.step.effects, 'cancel')).toEqual({ type: 'cancel', node: 'n1', attempt: 1, graceMs: 2_000 });
    expect(asked.next.state.state).toBe('running');
    expect(asked.next.cancelRequested).toBe(true);
    const end = drive(asked.next, result(143, { cancelled: true }), T0 + 1_500).next;
    expect(end.state).toMatchObject({ state: 'cancelled', error: null, exitCode: 143 });
  });

  it('a task whose node is down ends cancelled at once (its node is told when back)', () => {
    const { step, next } = drive(running(), { type: 'cancel', graceMs: 0, nodeDown: true }, T0 + 1_000);
    expect(effect(step.effects, 'cancel')).toMatchObject({ node: 'n1' });
    expect(next.state).toMatchObject({ state: 'cancelled', error: { code: 'CANCELLED' } });
  });
});

describe('lifecycle: liveness', () => {
  it('node down → unknown for its lost-after window (the task’s own option wins); back in time → carries on', () => {
    const down = drive(running(), { type: 'node-down', node: 'n1', reason: 'connection lost', windowMs: 30_000 }, T0 + 1_000);
    expect(down.next.state).toMatchObject({ state: 'unknown' });
    expect(down.next.state.reason).toBe(
      'node n1 went offline (connection lost) while the task was running; lost unless it is back within 30.0 s',
    );
    expect(down.next.lostAt).toBe(T0 + 31_000);
    expect(drive(down.next, { type: 'node-down', node: 'n1', reason: 'again', windowMs: 30_000 }, T0 + 1_100).step.ok).toBe(false);
    const own = drive(running({ lostAfterMs: 5_000 }), { type: 'node-down', node: 'n1', reason: 'x', windowMs: 30_000 }, T0 + 1_000);
    expect(own.next.lostAt).toBe(T0 + 6_000);
    const back = drive(down.next, { type: 'heartbeat', listed: true }, T0 + 5_000);
    expect(back.next.state).toMatchObject({ state: 'running', reason: null });
    expect(back.next).toMatchObject({ lostAt: null, missing: 0 });
    // Back, but not listing it: running again, one missed heartbeat counted.
    expect(drive(down.next, { type: 'heartbeat', listed: false }, T0 + 5_000).next).toMatchObject({ missing: 1 });
  });

  it('the lost-after window runs out → lost: requeued when retries are left, `lost` when not', () => {
    const down = drive(running({ maxAttempts: 2 }), { type: 'node-down', node: 'n1', reason: 'x', windowMs: 30_000 }, T0 + 1_000).next;
    expect(drive(down, { type: 'lost-window-over' }, T0 + 30_999).step.ok).toBe(false);
    const over = drive(down, { type: 'lost-window-over' }, T0 + 31_000);
    expect(over.next.state).toMatchObject({ state: 'queued', attempt: 1 });
    expect(over.types).toEqual(['release', 'fence', 'write', 'retry']);
    const none = drive(running({ maxAttempts: 1 }), { type: 'node-down', node: 'n1', reason: 'x', windowMs: 30_000 }, T0 + 1_000).next;
    expect(drive(none, { type: 'lost-window-over' }, T0 + 31_000).next.state).toMatchObject({
      state: 'lost',
      error: { code: 'NODE_LOST', message: "node n1 did not come back within the task's lost-after window" },
    });
  });

  it('a window of 0 loses the attempt at once; restart never ends the task lost', () => {
    const { next } = drive(running({ restart: 'never' }), { type: 'node-down', node: 'n1', reason: 'x', windowMs: 0 }, T0 + 1_000);
    expect(next.state).toMatchObject({ state: 'lost', error: { code: 'NODE_LOST' } });
  });

  it('a node down does not touch a task placed elsewhere', () => {
    expect(drive(running(), { type: 'node-down', node: 'n2', reason: 'x', windowMs: 0 }, T0).step.ok).toBe(false);
  });

  it(`an accepted attempt left out of 2 heartbeats in a row is lost`, () => {
    const one = drive(running({ maxAttempts: 1 }), { type: 'heartbeat', listed: false }, T0 + 2_000);
    expect(one.step.effects).toEqual([{ type: 'note', extra: { missing: 1 } }]);
    const reset = drive(one.next, { type: 'heartbeat', listed: true }, T0 + 4_000);
    expect(reset.next.missing).toBe(0);
    const two = drive(
      drive(reset.next, { type: 'heartbeat', listed: false }, T0 + 6_000).next,
      { type: 'heartbeat', listed: false },
      T0 + 8_000,
    );
    expect(two.next.state).toMatchObject({ state: 'lost', error: { message: 'node n1 no longer runs attempt 1' } });
  });

  it('an unaccepted assignment is not lost by heartbeats (its lease covers it) but by its lease', () => {
    const assigned = drive(queued({ maxAttempts: 1 }), { type: 'placed', node: 'n1', placement: '', leaseMs: LEASE }, T0).next;
    expect(drive(assigned, { type: 'heartbeat', listed: false }, T0 + 2_000).step.ok).toBe(false);
    expect(drive(assigned, { type: 'lease-expired', leaseMs: LEASE }, T0 + LEASE - 1).step.ok).toBe(false);
    const expired = drive(assigned, { type: 'lease-expired', leaseMs: LEASE }, T0 + LEASE);
    expect(expired.next.state).toMatchObject({
      state: 'lost',
      error: { code: 'LEASE_EXPIRED', message: `node n1 did not accept attempt 1 within ${LEASE} ms` },
    });
    expect(effect(expired.step.effects, 'fence')).toMatchObject({ node: 'n1', attempt: 1 });
    const accepted = drive(assigned, agent('accepted'), T0 + 100).next;
    expect(drive(accepted, { type: 'lease-expired', leaseMs: LEASE }, T0 + LEASE).step.ok).toBe(false);
  });
});

describe('lifecycle: timeout', () => {
  it('a queued task past its timeout fails with TIMEOUT and its waiting reason', () => {
    const waiting = drive(queued({ timeoutMs: 60_000 }), { type: 'waiting', reason: 'waiting: no node fits', publish: true }, T0 + 1).next;
    expect(drive(waiting, { type: 'timeout' }, T0 + 59_999).step.ok).toBe(false);
    expect(drive(waiting, { type: 'timeout' }, T0 + 60_000).next.state).toMatchObject({
      state: 'failed',
      error: { code: 'TIMEOUT', message: 'timed out after 1m 00s waiting in the queue: waiting: no node fits' },
    });
  });

  it('a running task past its timeout is told to stop once, then ends failed with TIMEOUT', () => {
    const out = drive(running({ timeoutMs: 60_000, restart: 'always' }), { type: 'timeout' }, T0 + 60_000);
    expect(out.step.effects).toEqual([
      { type: 'write', extra: { timedOut: true }, publish: false },
      { type: 'cancel', node: 'n1', attempt: 1, graceMs: 3_000 },
    ]);
    expect(drive(out.next, { type: 'timeout' }, T0 + 61_000).step.ok).toBe(false);
    const end = drive(out.next, result(143, { cancelled: true }), T0 + 62_000).next;
    expect(end.state).toMatchObject({ state: 'failed', error: { code: 'TIMEOUT' } });
  });
});
