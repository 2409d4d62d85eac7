/**
 * Shared fixtures of the schema tests (schemas-*.test.ts, codec-decode.test.ts): valid messages of each
 * kind, a `patch` that changes one field of a copy, and `accepts`/`rejects` assertions.
 */
import { expect } from 'vitest';
import type { z } from 'zod';

export const GiB = 1024 ** 3;
export const TS = 1_700_000_000_000;

export type Json = Record<string, unknown>;

/** The `value` that makes `patch` delete the field. */
export const DELETE = Symbol('delete');
/** A deep copy of `base` with `path` (dot separated) set to `value`, or deleted when value is DELETE. */
export function patch(base: Json, path: string, value: unknown): Json {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let o: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (value === DELETE) delete o[last];
  else o[last] = value;
  return copy;
}

export const BAD_IDS = ['a/b', 'a+b', 'a#b', '#', '+', 'x'.repeat(65), '', '.hidden', '-dash', 'has space', 'ümlaut'];

/** Fails the test, with zod's issues, unless `schema` accepts `value`. */
export function accepts(schema: z.ZodType, value: unknown): void {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`expected valid, got: ${JSON.stringify(r.error.issues)}`);
}

/** Fails the test unless `schema` rejects `value`. */
export function rejects(schema: z.ZodType, value: unknown): void {
  expect(schema.safeParse(value).success, `expected invalid: ${JSON.stringify(value)?.slice(0, 300)}`).toBe(false);
}

export const nodeStatus: Json = {
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

export const lastWill: Json = { v: 1, node: 'gpu-box', state: 'offline', version: '0.1.0', seq: 0, ts: TS, heartbeatMs: 2000 };

export const dockerSpec: Json = {
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
export const execSpec: Json = { kind: 'exec', argv: ['make', '-j8'], env: {}, cwd: '/src' };

export const assignment: Json = {
  v: 1,
  taskId: 'task-1',
  attempt: 1,
  leaseExpiresAt: TS + 10_000,
  spec: dockerSpec,
  requirements: { node: 'gpu-box', memory: 8 * GiB, cpus: 2 },
};

export const DEFAULT_OPTIONS = { restart: 'on-lost', maxAttempts: 3, queue: true, timeoutMs: null, lostAfterMs: null, priority: 0 };
export const DAY = 24 * 3600 * 1000;

export const eventBase = { v: 1, taskId: 'task-1', attempt: 1, node: 'gpu-box', seq: 0, ts: TS };
export const events: Record<string, Json> = {
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

export const taskState: Json = {
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

export const requests: Record<string, Json> = {
  submit: { v: 1, id: 'req-1', op: 'submit', taskId: 'task-1', spec: dockerSpec, requirements: { memory: GiB } },
  cancel: { v: 1, id: 'req-2', op: 'cancel', taskId: 'task-1', graceMs: 1000 },
  'task.get': { v: 1, id: 'req-3', op: 'task.get', taskId: 'task-1' },
  'task.list': { v: 1, id: 'req-4', op: 'task.list', states: ['running', 'queued'], limit: 10 },
  'node.list': { v: 1, id: 'req-5', op: 'node.list' },
  'node.drain': { v: 1, id: 'req-6', op: 'node.drain', node: 'gpu-box', drain: true },
  'task.logs': { v: 1, id: 'req-7', op: 'task.logs', taskId: 'task-1' },
};
