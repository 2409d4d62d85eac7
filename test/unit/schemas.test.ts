import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { decode, encode, MAX_PAYLOAD_BYTES } from '../../shared/codec.js';
import {
  AssignmentSchema,
  CancelSchema,
  ControllerStatusSchema,
  NodeStatusSchema,
  NodeViewSchema,
  ReplySchema,
  RequestSchema,
  RestartPolicySchema,
  TaskEventSchema,
  TaskLogsResultSchema,
  TaskOptionsSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TERMINAL_STATUSES,
  isTerminal,
} from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const TS = 1_700_000_000_000;

type Json = Record<string, unknown>;

/** A deep copy of `base` with `path` (dot separated) set to `value`, or deleted when value is DELETE. */
const DELETE = Symbol('delete');
function patch(base: Json, path: string, value: unknown): Json {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let o: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (value === DELETE) delete o[last];
  else o[last] = value;
  return copy;
}

const BAD_IDS = ['a/b', 'a+b', 'a#b', '#', '+', 'x'.repeat(65), '', '.hidden', '-dash', 'has space', 'ümlaut'];

function accepts(schema: z.ZodType, value: unknown): void {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`expected valid, got: ${JSON.stringify(r.error.issues)}`);
}

function rejects(schema: z.ZodType, value: unknown): void {
  expect(schema.safeParse(value).success, `expected invalid: ${JSON.stringify(value)?.slice(0, 300)}`).toBe(false);
}

const nodeStatus: Json = {
  v: 1,
  node: 'gpu-box_1.lan',
  state: 'online',
  version: '0.1.0',
  seq: 42,
  ts: TS,
  heartbeatMs: 2000,
  hostname: 'gpu-box',
  capacity: {
    cpu: { cores: 16, loadPercent: 37.5 },
    memory: { total: 64 * GiB, available: 40 * GiB },
    gpus: [
      { vendor: 'NVIDIA', model: 'RTX 4090', memoryTotal: 24 * GiB, memoryFree: 20 * GiB },
      { vendor: 'Intel', model: 'UHD', memoryTotal: null, memoryFree: null },
    ],
    docker: { available: true, version: '27.0.1', apiVersion: '1.46' },
  },
  offer: { maxMemory: 32 * GiB, maxTasks: 4, executors: ['docker', 'exec'], labels: { gpu: 'rtx4090' } },
  running: [{ taskId: 'task-1', attempt: 1, memory: 2 * GiB }],
};

const lastWill: Json = { v: 1, node: 'gpu-box', state: 'offline', version: '0.1.0', seq: 0, ts: TS, heartbeatMs: 2000 };

describe('NodeStatusSchema', () => {
  it('accepts a full status', () => {
    const parsed = NodeStatusSchema.parse(nodeStatus);
    expect(parsed.capacity?.memory.total).toBe(64 * GiB);
    expect(parsed.running).toHaveLength(1);
  });

  it('accepts the minimal last-will form and fills running with []', () => {
    const parsed = NodeStatusSchema.parse(lastWill);
    expect(parsed.state).toBe('offline');
    expect(parsed.capacity).toBeUndefined();
    expect(parsed.offer).toBeUndefined();
    expect(parsed.running).toEqual([]);
  });

  it('defaults offer.labels to {}', () => {
    const parsed = NodeStatusSchema.parse(patch(nodeStatus, 'offer.labels', DELETE));
    expect(parsed.offer?.labels).toEqual({});
  });

  it('defaults offer.lostAfterMs to 0 (tasks lost at once) and keeps an explicit window', () => {
    expect(NodeStatusSchema.parse(nodeStatus).offer?.lostAfterMs).toBe(0);
    expect(NodeStatusSchema.parse(patch(nodeStatus, 'offer.lostAfterMs', 600_000)).offer?.lostAfterMs).toBe(600_000);
    expect(NodeStatusSchema.parse(patch(nodeStatus, 'offer.lostAfterMs', 0)).offer?.lostAfterMs).toBe(0);
  });

  it('accepts the draining state', () => {
    accepts(NodeStatusSchema, { ...nodeStatus, state: 'draining' });
  });

  it('accepts maxMemory null (offer all memory) and an offline reason', () => {
    accepts(NodeStatusSchema, patch(nodeStatus, 'offer.maxMemory', null));
    accepts(NodeStatusSchema, { ...lastWill, reason: 'keepalive timeout' });
  });

  it.each(BAD_IDS)('rejects node id %j', (id) => {
    rejects(NodeStatusSchema, { ...lastWill, node: id });
  });

  it('accepts a 64-character node id, the longest allowed', () => {
    accepts(NodeStatusSchema, { ...lastWill, node: 'x'.repeat(64) });
  });

  it.each([
    ['v: 2', 'v', 2],
    ['v as string', 'v', '1'],
    ['unknown state', 'state', 'sleeping'],
    ['the task state unknown', 'state', 'unknown'],
    ['missing version', 'version', DELETE],
    ['missing state', 'state', DELETE],
    ['missing heartbeatMs', 'heartbeatMs', DELETE],
    ['negative seq', 'seq', -1],
    ['fractional seq', 'seq', 1.5],
    ['seq as string', 'seq', '42'],
    ['negative ts', 'ts', -5],
    ['zero heartbeat', 'heartbeatMs', 0],
    ['negative memory total', 'capacity.memory.total', -1],
    ['memory available as text', 'capacity.memory.available', '40g'],
    ['fractional bytes', 'capacity.memory.available', 1.5],
    ['zero cores', 'capacity.cpu.cores', 0],
    ['load over 100%', 'capacity.cpu.loadPercent', 101],
    ['negative load', 'capacity.cpu.loadPercent', -1],
    ['negative GPU memory', 'capacity.gpus.0.memoryTotal', -1],
    ['docker.available missing', 'capacity.docker.available', DELETE],
    ['unknown executor', 'offer.executors', ['podman']],
    ['zero maxTasks', 'offer.maxTasks', 0],
    ['negative maxMemory', 'offer.maxMemory', -1],
    ['negative lostAfterMs', 'offer.lostAfterMs', -1],
    ['fractional lostAfterMs', 'offer.lostAfterMs', 1.5],
    ['lostAfterMs as text', 'offer.lostAfterMs', '10m'],
    ['lostAfterMs null', 'offer.lostAfterMs', null],
    ['running task with negative memory', 'running.0.memory', -1],
    ['running task with attempt 0', 'running.0.attempt', 0],
    ['running task id with /', 'running.0.taskId', 'a/b'],
    ['running as object', 'running', {}],
    ['hostname too long', 'hostname', 'h'.repeat(256)],
  ])('rejects %s', (_name, path, value) => {
    rejects(NodeStatusSchema, patch(nodeStatus, path, value));
  });

  it('rejects non-objects', () => {
    for (const v of [null, 42, 'status', [], undefined]) rejects(NodeStatusSchema, v);
  });
});

const dockerSpec: Json = {
  kind: 'docker',
  image: 'ollama/ollama:latest',
  cmd: ['serve'],
  env: { OLLAMA_HOST: '0.0.0.0', WEIRD: 'a=b' },
  memoryLimit: 8 * GiB,
  cpus: 2.5,
  workdir: '/app',
  user: '1000:1000',
  labels: { team: 'ml' },
};
const execSpec: Json = { kind: 'exec', argv: ['make', '-j8'], env: {}, cwd: '/src' };

const assignment: Json = {
  v: 1,
  taskId: 'task-1',
  attempt: 1,
  leaseExpiresAt: TS + 10_000,
  spec: dockerSpec,
  requirements: { node: 'gpu-box', memory: 8 * GiB, cpus: 2 },
};

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

const DEFAULT_OPTIONS = { restart: 'on-lost', maxAttempts: 3, queue: true, timeoutMs: null, lostAfterMs: null, priority: 0 };
const DAY = 24 * 3600 * 1000;

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

const eventBase = { v: 1, taskId: 'task-1', attempt: 1, node: 'gpu-box', seq: 0, ts: TS };
const events: Record<string, Json> = {
  accepted: { ...eventBase, type: 'accepted' },
  progress: {
    ...eventBase,
    type: 'progress',
    phase: 'pull',
    message: 'pulling ollama/ollama',
    current: 10 * 1024 ** 2,
    total: 900 * 1024 ** 2,
  },
  started: { ...eventBase, type: 'started', ref: 'container 3f2a' },
  log: { ...eventBase, type: 'log', stream: 'stderr', data: 'hello\n' },
  result: { ...eventBase, type: 'result', exitCode: 137, oomKilled: true, cancelled: false, startedAt: TS, finishedAt: TS + 5 },
  failed: { ...eventBase, type: 'failed', code: 'IMAGE_PULL_FAILED', message: 'manifest unknown' },
};

describe('TaskEventSchema', () => {
  it.each(Object.keys(events))('accepts a %s event', (type) => {
    const parsed = TaskEventSchema.parse(events[type]);
    expect(parsed.type).toBe(type);
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

const taskState: Json = {
  v: 1,
  taskId: 'task-1',
  state: 'running',
  kind: 'docker',
  summary: 'ollama/ollama:latest',
  node: 'gpu-box',
  attempt: 1,
  requirements: { memory: 8 * GiB, cpus: 0 },
  options: DEFAULT_OPTIONS,
  placement: 'gpu-box: 24.0 GiB left',
  reason: null,
  createdAt: TS,
  updatedAt: TS + 3,
  assignedAt: TS + 1,
  startedAt: TS + 2,
  finishedAt: null,
  exitCode: null,
  oomKilled: false,
  error: null,
  submittedBy: 'cli-alice',
};

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

const requests: Record<string, Json> = {
  submit: { v: 1, id: 'req-1', op: 'submit', taskId: 'task-1', spec: dockerSpec, requirements: { memory: GiB } },
  cancel: { v: 1, id: 'req-2', op: 'cancel', taskId: 'task-1', graceMs: 1000 },
  'task.get': { v: 1, id: 'req-3', op: 'task.get', taskId: 'task-1' },
  'task.list': { v: 1, id: 'req-4', op: 'task.list', states: ['running', 'queued'], limit: 10 },
  'node.list': { v: 1, id: 'req-5', op: 'node.list' },
  'node.drain': { v: 1, id: 'req-6', op: 'node.drain', node: 'gpu-box', drain: true },
  'task.logs': { v: 1, id: 'req-7', op: 'task.logs', taskId: 'task-1' },
};

describe('RequestSchema', () => {
  it.each(Object.keys(requests))('accepts op %s', (op) => {
    expect(RequestSchema.parse(requests[op]).op).toBe(op);
  });

  it('defaults task.list limit to 100 and submit requirements to memory 0, cpus 0', () => {
    const list = RequestSchema.parse({ v: 1, id: 'r', op: 'task.list' });
    expect(list.op === 'task.list' && list.limit).toBe(100);
    const submit = RequestSchema.parse({ v: 1, id: 'r', op: 'submit', spec: execSpec, requirements: {} });
    expect(submit.op === 'submit' && submit.requirements).toEqual({ memory: 0, cpus: 0 });
  });

  it('defaults submit options when absent or partial, with a fresh object per request', () => {
    const a = RequestSchema.parse(requests.submit);
    const b = RequestSchema.parse(requests.submit);
    expect(a.op === 'submit' && a.options).toEqual(DEFAULT_OPTIONS);
    expect(a.op === 'submit' && b.op === 'submit' && a.options !== b.options).toBe(true);
    const partial = RequestSchema.parse({ ...requests.submit, options: { queue: false, priority: 3 } });
    expect(partial.op === 'submit' && partial.options).toEqual({ ...DEFAULT_OPTIONS, queue: false, priority: 3 });
  });

  it('accepts node.drain with drain false (resume)', () => {
    const parsed = RequestSchema.parse({ ...requests['node.drain'], drain: false });
    expect(parsed.op === 'node.drain' && parsed.drain).toBe(false);
  });

  it.each([
    ['unknown op', { v: 1, id: 'r', op: 'delete' }],
    ['missing op', { v: 1, id: 'r' }],
    ['v: 2', { ...requests['node.list'], v: 2 }],
    ['empty id', { ...requests['node.list'], id: '' }],
    ['id over 64 chars', { ...requests['node.list'], id: 'r'.repeat(65) }],
    ['id as number', { ...requests['node.list'], id: 5 }],
    ['submit without spec', patch(requests.submit, 'spec', DELETE)],
    ['submit without requirements', patch(requests.submit, 'requirements', DELETE)],
    ['submit with task id containing /', { ...requests.submit, taskId: 'a/b' }],
    ['submit with an exec spec without argv', { ...requests.submit, spec: { kind: 'exec' } }],
    ['cancel without taskId', patch(requests.cancel, 'taskId', DELETE)],
    ['cancel with graceMs over 10 minutes', { ...requests.cancel, graceMs: 600_001 }],
    ['task.get with task id containing +', { ...requests['task.get'], taskId: 'a+' }],
    ['task.list with limit 0', { ...requests['task.list'], limit: 0 }],
    ['task.list with limit over 10000', { ...requests['task.list'], limit: 10_001 }],
    ['task.list with an unknown state', { ...requests['task.list'], states: ['bogus'] }],
    ['submit with an unknown restart policy', { ...requests.submit, options: { restart: 'sometimes' } }],
    ['submit with maxAttempts 0', { ...requests.submit, options: { maxAttempts: 0 } }],
    ['submit with options null', { ...requests.submit, options: null }],
    ['node.drain without drain', patch(requests['node.drain'], 'drain', DELETE)],
    ['node.drain with drain as string', { ...requests['node.drain'], drain: 'true' }],
    ['node.drain without node', patch(requests['node.drain'], 'node', DELETE)],
    ['node.drain with node id containing /', { ...requests['node.drain'], node: 'a/b' }],
    ['task.logs without taskId', patch(requests['task.logs'], 'taskId', DELETE)],
    ['task.logs with task id containing #', { ...requests['task.logs'], taskId: 'a#' }],
  ])('rejects %s', (_name, value) => {
    rejects(RequestSchema, value);
  });
});

describe('ReplySchema', () => {
  it('accepts an ok reply with any result', () => {
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: true, result: { nodes: [] } });
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: true, result: null });
  });

  it('accepts an error reply, with and without rejections', () => {
    accepts(ReplySchema, { v: 1, id: 'req-1', ok: false, error: { code: 'NOT_FOUND', message: 'no task x' } });
    const parsed = ReplySchema.parse({
      v: 1,
      id: 'req-1',
      ok: false,
      error: { code: 'NO_FIT', message: 'no node can take it', rejections: [{ node: 'gpu-box', code: 'draining' }] },
    });
    expect(parsed.ok === false && parsed.error.rejections?.[0].node).toBe('gpu-box');
  });

  it.each([
    ['ok as string', { v: 1, id: 'r', ok: 'yes', result: 1 }],
    ['missing ok', { v: 1, id: 'r', result: 1 }],
    ['v: 2', { v: 2, id: 'r', ok: true, result: 1 }],
    ['error reply without error', { v: 1, id: 'r', ok: false }],
    ['error without code', { v: 1, id: 'r', ok: false, error: { message: 'x' } }],
    ['error without message', { v: 1, id: 'r', ok: false, error: { code: 'X' } }],
    [
      'rejection node with /',
      { v: 1, id: 'r', ok: false, error: { code: 'X', message: 'm', rejections: [{ node: 'a/b', code: 'offline' }] } },
    ],
    ['id over 64 chars', { v: 1, id: 'r'.repeat(65), ok: true, result: 1 }],
  ])('rejects %s', (_name, value) => {
    rejects(ReplySchema, value);
  });
});

describe('ControllerStatusSchema', () => {
  const status: Json = { v: 1, state: 'online', version: '0.1.0', ts: TS };

  it('accepts online and offline', () => {
    accepts(ControllerStatusSchema, status);
    accepts(ControllerStatusSchema, { ...status, state: 'offline' });
  });

  it.each([
    ['state draining', 'state', 'draining'],
    ['v: 2', 'v', 2],
    ['negative ts', 'ts', -1],
    ['missing version', 'version', DELETE],
    ['version too long', 'version', 'v'.repeat(51)],
  ])('rejects %s', (_name, path, value) => {
    rejects(ControllerStatusSchema, patch(status, path, value));
  });
});

describe('NodeViewSchema', () => {
  const view: Json = {
    node: 'gpu-box',
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 800,
    reservedMemory: 0,
    status: nodeStatus,
  };

  it('accepts online, drained and offline views wrapping a node status', () => {
    accepts(NodeViewSchema, view);
    const drained = NodeViewSchema.parse({ ...view, state: 'draining', drained: true });
    expect(drained.drained).toBe(true);
    // silent for too long: offline to the controller although its last status says online
    const silent = NodeViewSchema.parse({ ...view, state: 'offline', offlineReason: 'no heartbeat for 5.1 s', lastSeenAgoMs: 5_100 });
    expect(silent.offlineReason).toBe('no heartbeat for 5.1 s');
    expect(silent.status.state).toBe('online');
    accepts(NodeViewSchema, { ...view, state: 'offline', offlineReason: 'connection lost', status: lastWill });
  });

  it.each([
    ['negative reservation', 'reservedMemory', -1],
    ['unknown state', 'state', 'zombie'],
    ['the old stale state', 'state', 'stale'],
    ['missing drained', 'drained', DELETE],
    ['drained as string', 'drained', 'yes'],
    ['missing offlineReason (null, not absent)', 'offlineReason', DELETE],
    ['offlineReason too long', 'offlineReason', 'r'.repeat(501)],
    ['negative lastSeenAgoMs', 'lastSeenAgoMs', -1],
    ['invalid status', 'status.node', 'a/b'],
  ])('rejects %s', (_name, path, value) => {
    rejects(NodeViewSchema, patch(view, path, value));
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

describe('decode()', () => {
  afterEach(() => {
    // in case a test failed half-way and did pollute
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('decodes a valid payload from a Buffer and from a string', () => {
    const fromBuffer = decode(NodeStatusSchema, Buffer.from(encode(lastWill)));
    expect(fromBuffer).toEqual({ ok: true, value: { ...lastWill, running: [] } });
    const fromString = decode(ControllerStatusSchema, encode({ v: 1, state: 'online', version: '1', ts: 1 }));
    expect(fromString.ok).toBe(true);
  });

  it('reports non-JSON without throwing', () => {
    for (const payload of ['{not json', '', Buffer.from([0xff, 0xfe, 0x00])]) {
      const r = decode(NodeStatusSchema, payload);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.error).toMatch(/^not JSON: /);
    }
  });

  it(`refuses a payload over MAX_PAYLOAD_BYTES (${MAX_PAYLOAD_BYTES}) before parsing it`, () => {
    const big = JSON.stringify({ data: 'x'.repeat(MAX_PAYLOAD_BYTES) });
    const r = decode(z.object({ data: z.string() }), Buffer.from(big));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toBe(`payload of ${Buffer.byteLength(big)} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  });

  it('accepts a payload of exactly MAX_PAYLOAD_BYTES', () => {
    const exact = `"${'x'.repeat(MAX_PAYLOAD_BYTES - 2)}"`;
    expect(Buffer.byteLength(exact)).toBe(MAX_PAYLOAD_BYTES);
    expect(decode(z.string(), exact).ok).toBe(true);
  });

  it('measures a string payload in UTF-8 bytes, not characters', () => {
    // 3 bytes per character: fewer characters than the limit, more bytes
    const text = `"${'€'.repeat(Math.ceil(MAX_PAYLOAD_BYTES / 3))}"`;
    expect(text.length).toBeLessThan(MAX_PAYLOAD_BYTES);
    const r = decode(z.string(), text);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain('exceeds');
  });

  it('names the path of the bad field', () => {
    const r = decode(NodeStatusSchema, encode(patch(nodeStatus, 'capacity.memory.total', 'lots')));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^capacity\.memory\.total: /);
    const r2 = decode(NodeStatusSchema, encode(patch(nodeStatus, 'running.0.memory', -5)));
    expect(!r2.ok && r2.error).toMatch(/^running\.0\.memory: /);
    const r3 = decode(NodeStatusSchema, encode({ ...lastWill, node: 'a/b' }));
    expect(!r3.ok && r3.error).toMatch(/^node: must be 1-64 characters/);
  });

  it('says (root) when the payload itself has the wrong type', () => {
    const r = decode(NodeStatusSchema, '42');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^\(root\): /);
  });

  it('does not let __proto__ keys pollute Object.prototype', () => {
    const payload =
      '{"__proto__":{"polluted":"top"},"v":1,"node":"n1","state":"online","version":"1","seq":1,"ts":1,"heartbeatMs":1000,' +
      '"offer":{"maxMemory":null,"maxTasks":1,"executors":["docker"],"labels":{"__proto__":{"polluted":"labels"},"a":"b"}}}';
    const r = decode(NodeStatusSchema, payload);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    if (!r.ok) throw new Error(`expected the payload to decode: ${r.error}`);
    expect(Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    expect((r.value as Record<string, unknown>).polluted).toBeUndefined();
    const labels = r.value.offer!.labels;
    expect(Object.getPrototypeOf(labels)).toBe(Object.prototype);
    expect((labels as Record<string, unknown>).polluted).toBeUndefined();
    expect(labels.a).toBe('b');
  });

  it('does not let a __proto__ env name pollute Object.prototype either', () => {
    const r = decode(
      AssignmentSchema,
      JSON.stringify(assignment).replace('"OLLAMA_HOST"', '"__proto__"').replace('"0.0.0.0"', '{"polluted":"env"}'),
    );
    // whatever the verdict, nothing leaks into every object
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    if (r.ok && r.value.spec.kind === 'docker') expect(Object.getPrototypeOf(r.value.spec.env)).toBe(Object.prototype);
  });
});
