/**
 * The schemas of what the controller tells an agent (assignment, cancel) and of a task's
 * options (restart policy, retries, timeouts, priority).
 */
import { describe, expect, it } from 'vitest';
import { AssignmentSchema, CancelSchema, RestartPolicySchema, TaskOptionsSchema } from '../../shared/schemas/index.js';
import { type Json, DELETE, patch, BAD_IDS, accepts, rejects, assignment, DEFAULT_OPTIONS, DAY } from './schemas-fixtures.js';

describe('AssignmentSchema', () => {
  it('accepts a docker assignment', () => {
    const parsed = AssignmentSchema.parse(assignment);
    expect(parsed.spec.kind).toBe('docker');
  });

  it('accepts an exec assignment and fills defaults', () => {
    const parsed = AssignmentSchema.parse({ ...assignment, spec: { kind: 'exec', argv: ['true'] }, requirements: {} });
    expect(parsed.requirements).toEqual({ memory: 0, cpus: 0 });
    expect(parsed.spec).toEqual({ kind: 'exec', argv: ['true'], env: {} });
  });

  it('fills docker spec defaults (cmd, env, labels)', () => {
    const parsed = AssignmentSchema.parse({ ...assignment, spec: { kind: 'docker', image: 'alpine' } });
    expect(parsed.spec).toEqual({ kind: 'docker', image: 'alpine', cmd: [], env: {}, labels: {} });
  });

  it.each(BAD_IDS)('rejects task id %j', (id) => {
    rejects(AssignmentSchema, { ...assignment, taskId: id });
  });

  it.each([
    ['v: 2', 'v', 2],
    ['attempt 0', 'attempt', 0],
    ['missing leaseExpiresAt', 'leaseExpiresAt', DELETE],
    ['missing spec', 'spec', DELETE],
    ['missing requirements', 'requirements', DELETE],
    ['unknown spec kind', 'spec.kind', 'vm'],
    ['empty image', 'spec.image', ''],
    ['cmd as a string', 'spec.cmd', 'serve'],
    ['env name with =', 'spec.env', { 'A=B': 'x' }],
    ['env value not a string', 'spec.env', { A: 1 }],
    ['negative memoryLimit', 'spec.memoryLimit', -1],
    ['zero cpus limit', 'spec.cpus', 0],
    ['negative required memory', 'requirements.memory', -1],
    ['negative required cpus', 'requirements.cpus', -1],
    ['required node with /', 'requirements.node', 'a/b'],
    ['required node with #', 'requirements.node', 'node#1'],
  ])('rejects %s', (_name, path, value) => {
    rejects(AssignmentSchema, patch(assignment, path, value));
  });

  it('rejects an exec spec without argv or with an empty argv', () => {
    rejects(AssignmentSchema, { ...assignment, spec: { kind: 'exec' } });
    rejects(AssignmentSchema, { ...assignment, spec: { kind: 'exec', argv: [] } });
  });
});

describe('CancelSchema', () => {
  const cancel: Json = { v: 1, taskId: 'task-1', attempt: 2, graceMs: 5_000 };

  it('accepts a cancel and defaults graceMs to 3000', () => {
    expect(CancelSchema.parse(cancel).graceMs).toBe(5_000);
    expect(CancelSchema.parse(patch(cancel, 'graceMs', DELETE)).graceMs).toBe(3_000);
  });

  it.each([
    ['v: 2', 'v', 2],
    ['graceMs over 10 minutes', 'graceMs', 600_001],
    ['negative graceMs', 'graceMs', -1],
    ['missing attempt', 'attempt', DELETE],
    ['attempt as string', 'attempt', '2'],
    ['task id with +', 'taskId', 'a+b'],
    ['task id with /', 'taskId', 'a/b'],
    ['task id too long', 'taskId', 't'.repeat(65)],
  ])('rejects %s', (_name, path, value) => {
    rejects(CancelSchema, patch(cancel, path, value));
  });
});

describe('RestartPolicySchema', () => {
  it('is never, on-lost, on-failure or always', () => {
    expect(RestartPolicySchema.options).toEqual(['never', 'on-lost', 'on-failure', 'always']);
    for (const p of RestartPolicySchema.options) accepts(RestartPolicySchema, p);
  });

  it.each(['unless-stopped', 'ON-LOST', 'on_lost', 'onLost', '', null, 1])('rejects %j', (value) => {
    rejects(RestartPolicySchema, value);
  });
});

describe('TaskOptionsSchema', () => {
  it('fills every default from {}', () => {
    expect(TaskOptionsSchema.parse({})).toEqual(DEFAULT_OPTIONS);
  });

  it('keeps given values and defaults the rest', () => {
    expect(TaskOptionsSchema.parse({ restart: 'always', priority: -5, timeoutMs: 60_000 })).toEqual({
      ...DEFAULT_OPTIONS,
      restart: 'always',
      priority: -5,
      timeoutMs: 60_000,
    });
    expect(TaskOptionsSchema.parse({ queue: false, lostAfterMs: 0, maxAttempts: 1 })).toEqual({
      ...DEFAULT_OPTIONS,
      queue: false,
      lostAfterMs: 0,
      maxAttempts: 1,
    });
  });

  it.each([
    ['maxAttempts 1', { maxAttempts: 1 }],
    ['maxAttempts 100', { maxAttempts: 100 }],
    ['priority -1000', { priority: -1000 }],
    ['priority 1000', { priority: 1000 }],
    ['timeoutMs 1', { timeoutMs: 1 }],
    ['timeoutMs one year', { timeoutMs: 365 * DAY }],
    ['timeoutMs null', { timeoutMs: null }],
    ['lostAfterMs 0', { lostAfterMs: 0 }],
    ['lostAfterMs 30 days', { lostAfterMs: 30 * DAY }],
    ['lostAfterMs null', { lostAfterMs: null }],
  ])('accepts %s (a bound)', (_name, value) => {
    accepts(TaskOptionsSchema, value);
  });

  it.each([
    ['maxAttempts 0', { maxAttempts: 0 }],
    ['maxAttempts 101', { maxAttempts: 101 }],
    ['fractional maxAttempts', { maxAttempts: 1.5 }],
    ['maxAttempts as string', { maxAttempts: '3' }],
    ['priority -1001', { priority: -1001 }],
    ['priority 1001', { priority: 1001 }],
    ['fractional priority', { priority: 0.5 }],
    ['timeoutMs 0', { timeoutMs: 0 }],
    ['negative timeoutMs', { timeoutMs: -1 }],
    ['timeoutMs over a year', { timeoutMs: 365 * DAY + 1 }],
    ['timeoutMs as text', { timeoutMs: '10m' }],
    ['negative lostAfterMs', { lostAfterMs: -1 }],
    ['lostAfterMs over 30 days', { lostAfterMs: 30 * DAY + 1 }],
    ['fractional lostAfterMs', { lostAfterMs: 1.5 }],
    ['queue as string', { queue: 'false' }],
    ['queue null', { queue: null }],
    ['unknown restart policy', { restart: 'sometimes' }],
  ])('rejects %s', (_name, value) => {
    rejects(TaskOptionsSchema, value);
  });
});
