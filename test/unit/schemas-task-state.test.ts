/**
 * The schemas of what an agent reports about a task (events) and of the task's state as the
 * controller keeps it, with its logs.
 */
import { describe, expect, it } from 'vitest';
import {
  TaskEventSchema,
  TaskLogsResultSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TERMINAL_STATUSES,
  isTerminal,
} from '../../shared/schemas/index.js';
import { TS, DELETE, patch, accepts, rejects, DEFAULT_OPTIONS, eventBase, events, taskState } from './schemas-fixtures.js';

describe('TaskEventSchema', () => {
  it.each(Object.keys(events))('accepts a %s event', (type) => {
    const parsed = TaskEventSchema.parse(events[type]);
    expect(parsed.type).toBe(type);
  });

  it('a chunks event carries JSON objects as they came, and nothing else', () => {
    const chunk = { model: 'm', response: 'hi', done: false, context: [1, 2], nested: { deep: { x: null } } };
    const parsed = TaskEventSchema.parse({ ...eventBase, type: 'chunks', chunks: [chunk, {}] });
    expect(parsed).toMatchObject({ type: 'chunks', chunks: [chunk, {}] });
    for (const bad of [[1], 'text', null, 3]) {
      const r = TaskEventSchema.safeParse({ ...eventBase, type: 'chunks', chunks: [chunk, bad] });
      expect(r.success, JSON.stringify(bad)).toBe(false);
      expect(r.error!.issues[0]).toMatchObject({ path: ['chunks', 1], message: 'must be a JSON object' });
    }
    expect(TaskEventSchema.safeParse({ ...eventBase, type: 'chunks', chunks: [] }).success).toBe(false);
  });

  it('accepts a negative exit code (killed by signal on some platforms) and a progress event without byte counts', () => {
    accepts(TaskEventSchema, { ...events.result, exitCode: -1 });
    accepts(TaskEventSchema, { ...eventBase, type: 'progress', phase: 'create', message: 'creating' });
  });

  it.each([
    ['unknown type', { ...eventBase, type: 'exploded' }],
    ['missing type', eventBase],
    ['v: 2', { ...events.accepted, v: 2 }],
    ['node id with /', { ...events.accepted, node: 'a/b' }],
    ['task id with #', { ...events.accepted, taskId: 'x#' }],
    ['negative seq', { ...events.accepted, seq: -1 }],
    ['attempt 0', { ...events.accepted, attempt: 0 }],
    ['unknown progress phase', { ...events.progress, phase: 'download' }],
    ['negative progress bytes', { ...events.progress, current: -1 }],
    ['progress without message', patch(events.progress, 'message', DELETE)],
    ['log on stdin', { ...events.log, stream: 'stdin' }],
    ['log data over 1 MiB', { ...events.log, data: 'x'.repeat(1_048_577) }],
    ['log without data', patch(events.log, 'data', DELETE)],
    ['result without exitCode', patch(events.result, 'exitCode', DELETE)],
    ['fractional exit code', { ...events.result, exitCode: 1.5 }],
    ['oomKilled as string', { ...events.result, oomKilled: 'false' }],
    ['failed without code', patch(events.failed, 'code', DELETE)],
    ['failed message too long', { ...events.failed, message: 'm'.repeat(4_001) }],
  ])('rejects %s', (_name, value) => {
    rejects(TaskEventSchema, value);
  });
});

describe('TaskStateSchema', () => {
  it('accepts a running task and a queued one with nulls', () => {
    accepts(TaskStateSchema, taskState);
    accepts(TaskStateSchema, {
      ...taskState,
      state: 'queued',
      node: null,
      attempt: 0,
      placement: null,
      assignedAt: null,
      startedAt: null,
      reason: 'waiting: no node can take this docker task now',
    });
    accepts(TaskStateSchema, {
      ...taskState,
      state: 'failed',
      error: { code: 'EXIT_CODE', message: 'exited with code 1' },
      exitCode: 1,
      finishedAt: TS + 9,
    });
    accepts(TaskStateSchema, {
      ...taskState,
      state: 'failed',
      error: { code: 'TIMEOUT', message: 'timed out after 1m 00s' },
      finishedAt: TS + 9,
    });
  });

  it('accepts the unknown state with its reason', () => {
    const parsed = TaskStateSchema.parse({
      ...taskState,
      state: 'unknown',
      reason: 'node gpu-box went offline (connection lost) while the task was running',
    });
    expect(parsed.state).toBe('unknown');
    expect(parsed.reason).toMatch(/went offline/);
  });

  it('accepts a retry waiting in the queue with non-default options', () => {
    const options = { ...DEFAULT_OPTIONS, restart: 'on-failure', maxAttempts: 5, timeoutMs: 60_000, lostAfterMs: 0, priority: 7 };
    const parsed = TaskStateSchema.parse({
      ...taskState,
      state: 'queued',
      node: null,
      options,
      reason: 'attempt 1 lost: …; attempt 2 of 5 in 1.0 s',
    });
    expect(parsed.options).toEqual(options);
  });

  it('has the task states in lifecycle order, unknown included', () => {
    expect(TaskStatusSchema.options).toEqual(['queued', 'assigned', 'running', 'unknown', 'succeeded', 'failed', 'cancelled', 'lost']);
  });

  it.each([
    ['unknown state', 'state', 'paused'],
    ['v: 2', 'v', 2],
    ['unknown kind', 'kind', 'vm'],
    ['empty node id', 'node', ''],
    ['node id with /', 'node', 'a/b'],
    ['missing submittedBy', 'submittedBy', DELETE],
    ['missing oomKilled', 'oomKilled', DELETE],
    ['error without message', 'error', { code: 'X' }],
    ['negative attempt', 'attempt', -1],
    ['startedAt undefined instead of null', 'startedAt', DELETE],
    ['summary too long', 'summary', 's'.repeat(513)],
    ['node state stale', 'state', 'stale'],
    ['missing options', 'options', DELETE],
    ['missing reason (null, not absent)', 'reason', DELETE],
    ['reason too long', 'reason', 'r'.repeat(4_001)],
    ['reason as number', 'reason', 1],
    ['options with an unknown restart policy', 'options.restart', 'sometimes'],
    ['options with maxAttempts 0', 'options.maxAttempts', 0],
    ['options with priority 1001', 'options.priority', 1_001],
  ])('rejects %s', (_name, path, value) => {
    rejects(TaskStateSchema, patch(taskState, path, value));
  });

  it('isTerminal is true exactly for succeeded, failed, cancelled and lost (not unknown)', () => {
    const terminal = TaskStatusSchema.options.filter(isTerminal);
    expect(terminal).toEqual(['succeeded', 'failed', 'cancelled', 'lost']);
    expect([...TERMINAL_STATUSES]).toEqual(terminal);
    expect(isTerminal('unknown')).toBe(false);
  });
});

describe('TaskLogsResultSchema', () => {
  it('accepts kept events of several attempts, and an empty result', () => {
    const parsed = TaskLogsResultSchema.parse({
      events: [events.accepted, events.started, events.log, { ...events.accepted, attempt: 2 }],
      truncated: true,
      more: false,
    });
    expect(parsed.events.map((e) => e.type)).toEqual(['accepted', 'started', 'log', 'accepted']);
    expect(parsed.truncated).toBe(true);
    accepts(TaskLogsResultSchema, { events: [], truncated: false, more: true });
  });

  it.each([
    ['missing truncated', { events: [] }],
    ['truncated as string', { events: [], truncated: 'no' }],
    ['missing events', { truncated: false, more: false }],
    ['missing more', { events: [], truncated: false }],
    ['events as object', { events: {}, truncated: false, more: false }],
    ['an invalid event', { events: [{ ...events.log, stream: 'stdin' }], truncated: false, more: false }],
  ])('rejects %s', (_name, value) => {
    rejects(TaskLogsResultSchema, value);
  });
});
