/**
 * The example payloads of docs/protocol.md: fixed values, typed against each schema's input at
 * compile time and parsed again while rendering (scripts/protocol-doc/schema-doc.ts).
 */
import type { z } from 'zod';
import { backoffMs } from '../../controller/task-record.js';
import {
  type NodeStatusSchema,
  type Request,
  type RequestSchema,
  type RequirementsSchema,
  type TaskEvent,
  type TaskEventSchema,
  TaskOptionsSchema,
  type TaskSpecSchema,
  type TaskStateSchema,
} from '../../shared/schemas/index.js';
import { formatDuration } from '../../shared/units.js';

/** Fixed example values: the document must render the same bytes on every run. */
export const TS = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const GiB = 1024 ** 3;
export const TASK = '3f9a1c2b7d4e';
export const NODE = 'notebook';
const CLIENT = 'cutter-cli-a1b2c3d4e5';
export const VERSION = '0.1.0';

export const exampleRequirements = { memory: 4 * GiB, cpus: 2 } satisfies z.input<typeof RequirementsSchema>;
export const exampleDockerSpec = {
  kind: 'docker',
  image: 'python:3.12-slim',
  cmd: ['python', '-c', 'print(sum(range(10**8)))'],
  env: { PYTHONUNBUFFERED: '1' },
  memoryLimit: 4 * GiB,
  cpus: 2,
} satisfies z.input<typeof TaskSpecSchema>;
export const exampleExecSpec = { kind: 'exec', argv: ['make', '-j8'], cwd: '/home/me/src/project' } satisfies z.input<
  typeof TaskSpecSchema
>;
export const exampleOllamaSpec = {
  kind: 'ollama',
  op: 'chat',
  model: 'llama3:70b',
  request: { messages: [{ role: 'user', content: 'Why is the sky blue?' }], options: { temperature: 0.2 }, keep_alive: '10m' },
} satisfies z.input<typeof TaskSpecSchema>;

/** Options as a client sends them (the rest defaulted) and as TaskState carries them (all filled in). */
export const exampleOptionsIn = { restart: 'on-failure', maxAttempts: 5, priority: 10, timeoutMs: 3_600_000 } satisfies z.input<
  typeof TaskOptionsSchema
>;
const exampleOptions = TaskOptionsSchema.parse(exampleOptionsIn);

export const exampleOnline = {
  v: 1,
  node: NODE,
  state: 'online',
  version: VERSION,
  seq: 42,
  ts: TS,
  heartbeatMs: 2_000,
  hostname: 'notebook.lan',
  capacity: {
    cpu: { cores: 8, loadPercent: 12.5 },
    memory: { total: 32 * GiB, available: 24 * GiB },
    gpus: [
      {
        vendor: 'NVIDIA',
        model: 'GeForce RTX 4060 Laptop GPU',
        memoryTotal: 8 * GiB,
        memoryFree: 7 * GiB,
        uuid: 'GPU-8f6e2c1a-3b4d-4e5f-9a0b-1c2d3e4f5a6b',
        index: 0,
        pciBusId: '00000000:01:00.0',
        driverVersion: '550.54.14',
        memoryUsed: 1 * GiB,
        utilizationPercent: null,
        temperatureC: 45,
      },
    ],
    docker: { available: true, version: '27.3.1', apiVersion: '1.47' },
    nvidia: { state: 'ok' },
  },
  offer: { maxMemory: 20 * GiB, maxTasks: 4, executors: ['docker'], labels: { site: 'home' }, lostAfterMs: 600_000 },
  running: [{ taskId: TASK, attempt: 1, memory: 4 * GiB }],
  wake: { mac: '02:fc:00:00:00:01', broadcast: '192.168.1.255' },
} satisfies z.input<typeof NodeStatusSchema>;

export const exampleWill = {
  v: 1,
  node: NODE,
  state: 'offline',
  version: VERSION,
  seq: 0,
  ts: TS - 60_000,
  heartbeatMs: 2_000,
  running: [],
  reason: 'connection lost',
} satisfies z.input<typeof NodeStatusSchema>;

export const exampleTaskState = {
  v: 1,
  taskId: TASK,
  state: 'succeeded',
  kind: 'docker',
  summary: 'python:3.12-slim',
  node: NODE,
  attempt: 1,
  requirements: exampleRequirements,
  options: exampleOptions,
  placement: 'notebook: 16.0 GiB left for tasks after placement (most headroom of 2 feasible nodes, spread)',
  reason: null,
  createdAt: TS,
  updatedAt: TS + 9_650,
  assignedAt: TS,
  startedAt: TS + 1_200,
  finishedAt: TS + 9_650,
  exitCode: 0,
  oomKilled: false,
  error: null,
  submittedBy: CLIENT,
} satisfies z.input<typeof TaskStateSchema>;

export const exampleAssigned = {
  ...exampleTaskState,
  state: 'assigned',
  updatedAt: TS,
  startedAt: null,
  finishedAt: null,
  exitCode: null,
} satisfies z.input<typeof TaskStateSchema>;

export const exampleQueued = {
  ...exampleAssigned,
  state: 'queued',
  node: null,
  attempt: 0,
  placement: null,
  reason:
    'waiting: no node can take this docker task needing 4.0 GiB now (nas: needs 4.0 GiB memory, has 1.2 GiB free (offers 8.0 GiB, 3.1 GiB available, 1.9 GiB held by tasks); notebook: busy: 4 of at most 4 tasks running)',
  assignedAt: null,
} satisfies z.input<typeof TaskStateSchema>;

export const exampleUnknown = {
  ...exampleAssigned,
  state: 'unknown',
  updatedAt: TS + 30_000,
  startedAt: TS + 1_200,
  reason: 'node notebook went offline (no heartbeat for 5.1 s) while the task was running; lost unless it is back within 10m 00s',
} satisfies z.input<typeof TaskStateSchema>;

/** A retry as the controller publishes it: back in `queued`, the last attempt's number, placement, assignedAt and startedAt kept until the next placement. */
export const exampleRetry = {
  ...exampleAssigned,
  state: 'queued',
  node: null,
  updatedAt: TS + 10_000,
  reason: `attempt 1 lost: node notebook did not accept attempt 1 within 10000 ms; attempt 2 of 5 in ${formatDuration(backoffMs(1, 'lost'))}`,
} satisfies z.input<typeof TaskStateSchema>;

const event = { v: 1, taskId: TASK, attempt: 1, node: NODE } as const;

/** One example per event type; the Record makes a new event type a compile error until it has one. */
export const exampleEvents: Record<TaskEvent['type'], z.input<typeof TaskEventSchema>> = {
  accepted: { ...event, seq: 0, ts: TS + 40, type: 'accepted' },
  progress: {
    ...event,
    seq: 1,
    ts: TS + 60,
    type: 'progress',
    phase: 'pull',
    message: 'Downloading',
    current: 12_582_912,
    total: 29_360_128,
  },
  started: { ...event, seq: 2, ts: TS + 1_200, type: 'started', ref: '9c1e0a7b55d2' },
  log: {
    ...event,
    seq: 3,
    ts: TS + 9_600,
    type: 'log',
    stream: 'stdout',
    encoding: 'base64',
    data: Buffer.from('4999999950000000\n').toString('base64'),
  },
  chunks: {
    ...event,
    seq: 3,
    ts: TS + 1_450,
    type: 'chunks',
    chunks: [
      { model: 'llama3:70b', created_at: '2026-11-26T10:00:01.45Z', message: { role: 'assistant', content: 'The sky' }, done: false },
      { model: 'llama3:70b', created_at: '2026-11-26T10:00:01.47Z', message: { role: 'assistant', content: ' is blue' }, done: false },
    ],
  },
  result: {
    ...event,
    seq: 4,
    ts: TS + 9_640,
    type: 'result',
    exitCode: 0,
    oomKilled: false,
    cancelled: false,
    startedAt: TS + 1_200,
    finishedAt: TS + 9_630,
  },
  failed: {
    ...event,
    seq: 1,
    ts: TS + 900,
    type: 'failed',
    code: 'IMAGE_PULL_FAILED',
    message: 'pulling python:3.12-slim failed: no space left on device',
  },
};

/** One example per request op; the Record makes a new op a compile error until it has one. */
export const exampleRequests: Record<Request['op'], z.input<typeof RequestSchema>> = {
  submit: {
    v: 1,
    id: 'r1',
    op: 'submit',
    taskId: TASK,
    spec: exampleDockerSpec,
    requirements: exampleRequirements,
    options: exampleOptionsIn,
  },
  cancel: { v: 1, id: 'r2', op: 'cancel', taskId: TASK, graceMs: 5_000 },
  'task.get': { v: 1, id: 'r3', op: 'task.get', taskId: TASK },
  'task.list': { v: 1, id: 'r4', op: 'task.list', states: ['queued', 'assigned', 'running', 'unknown'], limit: 20 },
  'task.logs': { v: 1, id: 'r5', op: 'task.logs', taskId: TASK },
  'node.list': { v: 1, id: 'r6', op: 'node.list' },
  'node.drain': { v: 1, id: 'r7', op: 'node.drain', node: NODE, drain: true },
  'node.forget': { v: 1, id: 'r11', op: 'node.forget', node: NODE },
  'node.wake': { v: 1, id: 'r12', op: 'node.wake', node: NODE },
  'token.create': { v: 1, id: 'r8', op: 'token.create', role: 'agent', name: NODE },
  'token.list': { v: 1, id: 'r9', op: 'token.list' },
  'token.revoke': { v: 1, id: 'r10', op: 'token.revoke', username: `agent:${NODE}` },
};
