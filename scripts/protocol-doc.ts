/**
 * Builds docs/protocol.md from the code, so the document cannot drift from the protocol:
 * topics come from the real builders in shared/topics.ts, JSON Schemas from the zod schemas in
 * shared/schemas (`z.toJSONSchema`, input side), and every example payload is parsed with its
 * schema while rendering (an example that no longer parses throws). Timings the flows state
 * (staleness, backoff, config defaults) are read from the code that applies them.
 * `npm run docs:protocol` writes the file; test/unit/protocol-doc.test.ts fails when it is out of date.
 */
import { z } from 'zod';
import { NODE_FAULT_CODES, backoffMs, wantsRetry, type AttemptEnd } from '../controller/task-record.js';
import { STALE_AFTER_HEARTBEATS } from '../controller/scheduler/snapshot.js';
import { MAX_PAYLOAD_BYTES } from '../shared/codec.js';
import { AgentConfigSchema, ServerConfigSchema } from '../shared/config.js';
import type { ErrorCode } from '../shared/errors.js';
import {
  AssignmentSchema,
  CancelSchema,
  ControllerStatusSchema,
  NodeListResultSchema,
  NodeStatusSchema,
  NodeViewSchema,
  ReplySchema,
  RequestSchema,
  RequirementsSchema,
  RestartPolicySchema,
  TaskEventSchema,
  TaskListResultSchema,
  TaskLogsResultSchema,
  TaskOptionsSchema,
  TaskSpecSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TERMINAL_STATUSES,
  type Request,
  type RestartPolicy,
  type TaskEvent,
  type TaskStatus,
} from '../shared/schemas/index.js';
import { ID_RE, haTopics, topics, type Topics } from '../shared/topics.js';
import { haDeviceConfig, haNodeId, haNodeState } from '../controller/extensions/ha/discovery.js';
import { HaDeviceConfigSchema, HaNodeStateSchema } from '../shared/schemas/ha.js';
import { formatBytes, formatDuration } from '../shared/units.js';
import { PROTOCOL_VERSION } from '../shared/version.js';

/** Names of the topic builders: every function of `Topics` that returns a topic string. */
export type TopicBuilderName = {
  [K in keyof Topics]: Topics[K] extends (...args: never[]) => string ? K : never;
}[keyof Topics];

/** The builders a topic table must cover: every function property of `topics()` except the parsers `idFrom` and `parse`. */
export function topicBuilderNames(): string[] {
  const t = topics();
  return Object.keys(t)
    .filter((k) => typeof t[k as keyof Topics] === 'function' && k !== 'idFrom' && k !== 'parse')
    .sort();
}

// ---- timings the flows state ----------------------------------------------------------------------

/**
 * Constants private to controller/controller.ts (not exported; importing the controller would pull
 * in MQTT and SQLite). Keep in step with MISSING_HEARTBEATS and FENCE_REPEAT_MS there.
 */
const MISSING_HEARTBEATS = 2;
const FENCE_REPEAT_MS = 5_000;

const serverDefault = <K extends keyof typeof ServerConfigSchema.shape>(key: K) =>
  ServerConfigSchema.shape[key].parse(undefined) as z.output<(typeof ServerConfigSchema.shape)[K]>;
const agentDefault = <K extends keyof typeof AgentConfigSchema.shape>(key: K) =>
  AgentConfigSchema.shape[key].parse(undefined) as z.output<(typeof AgentConfigSchema.shape)[K]>;

/** Whole seconds as `N s`; the backoff and the config defaults are whole seconds. */
function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** A delay as the flows write it: `at once` for 0, else whole seconds. */
function delay(ms: number): string {
  return ms === 0 ? 'at once' : seconds(ms);
}

/** The backoff after attempt 1, 2, 3 … ending this way until it reaches its cap, e.g. `1 s, 2 s, 4 s … 60 s`. */
function backoffSequence(end: AttemptEnd): string {
  const seq: number[] = [];
  for (let attempt = 1; attempt <= 100; attempt++) {
    const d = backoffMs(attempt, end);
    if (seq.length > 1 && d === seq[seq.length - 1]) break;
    seq.push(d);
  }
  return `${seq.slice(0, 3).map(delay).join(', ')} … ${delay(seq[seq.length - 1])}`;
}

/** The backoff rule as one sentence, by how the last attempt ended. */
function backoffSentence(): string {
  return `The delay doubles with each attempt up to a cap: after attempt 1, 2, 3 … it is ${backoffSequence('failed')} when the attempt failed (or succeeded, with \`always\`), and ${backoffSequence('lost')} when it was lost.`;
}

// ---- examples -----------------------------------------------------------------------------------

/** Fixed example values: the document must render the same bytes on every run. */
const TS = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const GiB = 1024 ** 3;
const TASK = '3f9a1c2b7d4e';
const NODE = 'notebook';
const CLIENT = 'cutter-cli-a1b2c3d4e5';
const VERSION = '0.1.0';

const exampleRequirements = { memory: 4 * GiB, cpus: 2 } satisfies z.input<typeof RequirementsSchema>;
const exampleDockerSpec = {
  kind: 'docker',
  image: 'python:3.12-slim',
  cmd: ['python', '-c', 'print(sum(range(10**8)))'],
  env: { PYTHONUNBUFFERED: '1' },
  memoryLimit: 4 * GiB,
  cpus: 2,
} satisfies z.input<typeof TaskSpecSchema>;
const exampleExecSpec = { kind: 'exec', argv: ['make', '-j8'], cwd: '/home/me/src/project' } satisfies z.input<typeof TaskSpecSchema>;
const exampleOllamaSpec = {
  kind: 'ollama',
  op: 'chat',
  model: 'llama3:70b',
  request: { messages: [{ role: 'user', content: 'Why is the sky blue?' }], options: { temperature: 0.2 }, keep_alive: '10m' },
} satisfies z.input<typeof TaskSpecSchema>;

/** Options as a client sends them (the rest defaulted) and as TaskState carries them (all filled in). */
const exampleOptionsIn = { restart: 'on-failure', maxAttempts: 5, priority: 10, timeoutMs: 3_600_000 } satisfies z.input<
  typeof TaskOptionsSchema
>;
const exampleOptions = TaskOptionsSchema.parse(exampleOptionsIn);

const exampleOnline = {
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
    gpus: [{ vendor: 'NVIDIA', model: 'GeForce RTX 4060 Laptop GPU', memoryTotal: 8 * GiB, memoryFree: 7 * GiB }],
    docker: { available: true, version: '27.3.1', apiVersion: '1.47' },
  },
  offer: { maxMemory: 20 * GiB, maxTasks: 4, executors: ['docker'], labels: { site: 'home' }, lostAfterMs: 600_000 },
  running: [{ taskId: TASK, attempt: 1, memory: 4 * GiB }],
} satisfies z.input<typeof NodeStatusSchema>;

const exampleWill = {
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

const exampleTaskState = {
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

const exampleAssigned = {
  ...exampleTaskState,
  state: 'assigned',
  updatedAt: TS,
  startedAt: null,
  finishedAt: null,
  exitCode: null,
} satisfies z.input<typeof TaskStateSchema>;

const exampleQueued = {
  ...exampleAssigned,
  state: 'queued',
  node: null,
  attempt: 0,
  placement: null,
  reason:
    'waiting: no node can take this docker task needing 4.0 GiB now (nas: needs 4.0 GiB memory, has 1.2 GiB free (offers 8.0 GiB, 3.1 GiB available, 1.9 GiB held by tasks); notebook: busy: 4 of at most 4 tasks running)',
  assignedAt: null,
} satisfies z.input<typeof TaskStateSchema>;

const exampleUnknown = {
  ...exampleAssigned,
  state: 'unknown',
  updatedAt: TS + 30_000,
  startedAt: TS + 1_200,
  reason: 'node notebook went offline (no heartbeat for 5.1 s) while the task was running; lost unless it is back within 10m 00s',
} satisfies z.input<typeof TaskStateSchema>;

/** A retry as the controller publishes it: back in `queued`, the last attempt's number, placement, assignedAt and startedAt kept until the next placement. */
const exampleRetry = {
  ...exampleAssigned,
  state: 'queued',
  node: null,
  updatedAt: TS + 10_000,
  reason: `attempt 1 lost: node notebook did not accept attempt 1 within 10000 ms; attempt 2 of 5 in ${formatDuration(backoffMs(1, 'lost'))}`,
} satisfies z.input<typeof TaskStateSchema>;

const event = { v: 1, taskId: TASK, attempt: 1, node: NODE } as const;

/** One example per event type; the Record makes a new event type a compile error until it has one. */
const exampleEvents: Record<TaskEvent['type'], z.input<typeof TaskEventSchema>> = {
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
  log: { ...event, seq: 3, ts: TS + 9_600, type: 'log', stream: 'stdout', data: '4999999950000000\n' },
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
const exampleRequests: Record<Request['op'], z.input<typeof RequestSchema>> = {
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
  'token.create': { v: 1, id: 'r8', op: 'token.create', role: 'agent', name: NODE },
  'token.list': { v: 1, id: 'r9', op: 'token.list' },
  'token.revoke': { v: 1, id: 'r10', op: 'token.revoke', username: `agent:${NODE}` },
};

/** What each op's successful reply carries in `result`. */
const resultOf: Record<Request['op'], string> = {
  submit:
    '[TaskState](#taskstate) of the new task: `assigned` when a node takes it now, else `queued` with a `reason` saying what it waits for (with `options.queue: false` the reply is a `NO_FIT` error instead and the task is not kept). When the `taskId` already exists, its current state (a retried submit is idempotent)',
  cancel:
    '[TaskState](#taskstate) as it is once the cancel is handled: already `cancelled` when the task was queued, is `unknown` or its node is offline, otherwise the terminal state follows on the state topic',
  'task.get': '[TaskState](#taskstate)',
  'task.list': '[TaskListResult](#tasklistresult), newest first',
  'task.logs':
    '[TaskLogsResult](#tasklogsresult): a page of the events the controller kept for the task, every attempt, oldest first (after `after` when given)',
  'node.list': '[NodeListResult](#nodelistresult), sorted by node id',
  'node.drain':
    '[NodeListResult](#nodelistresult) with that one node, as it is after the change (`NOT_FOUND` for a node the controller has never heard from)',
  'node.forget':
    '[NodeListResult](#nodelistresult) with the node as it was (`NOT_FOUND` for an unknown node, `INVALID_REQUEST` for one that is online or draining, or still has unfinished tasks); its retained status is cleared',
  'token.create':
    '`{"username", "password"}`: MQTT credentials for any client (`ROLE:NAME` and a random secret, shown once; the server keeps only its scrypt hash). `INVALID_REQUEST` when the server uses an external broker',
  'token.list': '`{"tokens": [{"username", "role", "name", "createdAt", "revokedAt"}]}` (never a secret)',
  'token.revoke':
    '`{"tokens": [the revoked token]}`; the username is refused from its next connection on (`NOT_FOUND` when it has no live token)',
};

/** Every task state; the Record makes a new state a compile error until it is described. */
const stateMeaning: Record<TaskStatus, string> = {
  queued:
    'waiting for a node: a new task that fits nowhere yet, or a retry waiting out its backoff. `reason` says what it waits for; `node` is null',
  assigned: 'placed on `node`, the [Assignment](#assignment) is sent; the agent must accept it before its lease expires',
  running: 'the node reported `started`',
  unknown:
    'its node went offline; the task may still run there. Back to `running` (`assigned` if it had not started) when the node returns within its lost-after window, else the attempt is lost. `reason` names the node and the window',
  succeeded: 'final: the run exited with code 0',
  failed:
    "final: the run exited non-zero, was OOM-killed or could not be started and the restart policy asks for no other attempt, or the task's timeout ran out (`error` says which)",
  cancelled: 'final: cancelled by a `cancel` request',
  lost: 'final: its last attempt was lost (node lost, lease expired, agent shut down or stopped it, node busy or without the executor) and the restart policy asks for no other attempt',
};

/** Every restart policy; the Record makes a new policy a compile error until it is described. */
const policyMeaning: Record<RestartPolicy, string> = {
  never: 'one attempt only',
  'on-lost': "default: retry only when the node lost the attempt, never after the task's own failure",
  'on-failure': 'also retry after a non-zero exit code, an OOM kill or a start failure',
  always: 'also run again after success, until `maxAttempts`',
};

/** Every error code with where it shows up; the Record makes a new ErrorCode a compile error until it is described. */
const errorCodes: Record<ErrorCode, string> = {
  INVALID_SIZE: 'local (CLI): a size argument such as `-m 24g` does not parse',
  INVALID_CONFIG: 'local: a config file, environment variable or flag is invalid',
  INVALID_ARGUMENT: 'local (CLI): an argument is not accepted (e.g. an unsupported `docker run` flag)',
  INVALID_REQUEST:
    'reply: the request did not validate (the message names the first bad field); a request without a usable `id` is dropped and logged',
  NO_FIT:
    'reply to `submit` with `options.queue: false`: no node can take the task now; `error.rejections` gives the reason per node. The task is not kept',
  NOT_FOUND:
    'reply to `task.get`, `task.logs`, `cancel`: the controller does not know the task; to `node.drain`: it has never heard from the node',
  ALREADY_FINISHED: 'reply to `cancel`: the task is already in a terminal state',
  NO_CONTROLLER: 'local (client): no reply within the timeout, so no controller is answering',
  BROKER_UNREACHABLE: 'local: the broker refused the connection or did not answer in time',
  EXECUTOR_UNAVAILABLE:
    "`failed` event: the node has no working executor of the task's kind (e.g. Docker engine not reachable); the attempt counts as lost",
  EXECUTOR_DISABLED:
    '`failed` event: the node does not run `exec` tasks (agent started without `--allow-exec`); the attempt counts as lost',
  IMAGE_PULL_FAILED: '`failed` event: the image is not on the node and could not be pulled; the attempt failed',
  START_FAILED: '`failed` event: the container or process could not be created or started; the attempt failed',
  LEASE_EXPIRED:
    'TaskState.error: the node did not accept the assignment before `leaseExpiresAt`; the attempt is lost (retried per the restart policy, else state `lost`)',
  NODE_LOST:
    'TaskState.error: the attempt was lost on its node: the node went offline and did not come back within its lost-after window (at once when that is 0), stopped listing the accepted attempt in its heartbeats, or stopped the run without being asked (state `lost` when not retried)',
  AGENT_SHUTDOWN: '`failed` event: the agent was shutting down; the attempt counts as lost',
  CANCELLED:
    '`failed` event: the run was cancelled before it started; TaskState.error: the task was cancelled while its node was offline (state `cancelled`)',
  EXIT_CODE: 'TaskState.error: the run exited with a non-zero code (state `failed` when not retried)',
  OOM_KILLED: 'TaskState.error: the run was killed for running out of memory (state `failed` when not retried)',
  NODE_BUSY: '`failed` event: the node already runs as many tasks as it offers; the attempt counts as lost',
  TIMEOUT:
    "TaskState.error: the task's `options.timeoutMs` ran out, while it waited in the queue or while it ran (state `failed`; a running task is cancelled on its node)",
  NODE_RESTARTED:
    '`failed` event: the assignment was placed on an earlier run of the agent (a persistent session redelivered it after the agent restarted); the attempt counts as lost and is placed again',
  RATE_LIMITED:
    'reply to `submit`: the identity is over its submissions per minute (server setting, default 120); the message says when to retry. The task is not kept',
  POLICY_DENIED:
    "`failed` event: the node's execution policy refuses the task (image allowlist, memory cap, exec command allowlist); the message names the rule. The task fails (not retried elsewhere)",
  MODEL_NOT_FOUND:
    '`failed` event of an ollama task: the node\'s Ollama has no such model (its HTTP 404); the server\'s Ollama API answers 404 `{"error"}` as Ollama does',
  OLLAMA_ERROR: "`failed` event of an ollama task: the node's Ollama answered with an error, kept in the message",
  INTERNAL: 'reply: an unexpected controller error; locally, a reply that does not validate',
};

// ---- schema sections ----------------------------------------------------------------------------

interface Example {
  title: string;
  value: unknown;
}

interface SchemaDoc {
  name: string;
  schema: z.ZodType;
  /** Markdown paragraphs shown above the JSON Schema. */
  about: string[];
  examples: Example[];
}

/** Types each example against its schema's input at compile time; render() parses them again. */
function schemaDoc<S extends z.ZodType>(d: {
  name: string;
  schema: S;
  about: string[];
  examples: { title: string; value: z.input<S> }[];
}): SchemaDoc {
  return d;
}

function code(s: string): string {
  return `\`${s}\``;
}

function anchor(name: string): string {
  return `#${name.toLowerCase()}`;
}

function link(name: string): string {
  return `[${name}](${anchor(name)})`;
}

function quoteList(values: readonly string[]): string {
  return values.map(code).join(', ');
}

function bullets(entries: [string, string][]): string {
  return entries.map(([k, what]) => `- ${code(k)}: ${what}`).join('\n');
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Which attempt ends each restart policy retries after, read from the controller's own rule. */
function restartTable(): string {
  const ends: AttemptEnd[] = ['lost', 'failed', 'succeeded'];
  return table(
    ['restart', ...ends.map((e) => `after ${e === 'lost' ? 'a lost' : e === 'failed' ? 'a failed' : 'a succeeded'} attempt`), 'meaning'],
    RestartPolicySchema.options.map((p) => [code(p), ...ends.map((e) => (wantsRetry(p, e) ? 'retry' : 'end')), policyMeaning[p]]),
  );
}

function buildSchemaDocs(t: Topics): { payloads: SchemaDoc[]; shared: SchemaDoc[]; results: SchemaDoc[] } {
  const staleAfter = `${STALE_AFTER_HEARTBEATS} × \`heartbeatMs\``;
  const payloads = [
    schemaDoc({
      name: 'NodeStatus',
      schema: NodeStatusSchema,
      about: [
        `On ${code(t.nodeStatus('{node}'))}, retained. An agent publishes it on every change and every \`heartbeatMs\`; \`seq\` increases with every status during one agent run. Memory figures are bytes, times ms since the Unix epoch on the agent's clock (the controller judges freshness by its own receive time, so clock skew does not matter): a node silent for more than ${staleAfter} is offline to the controller.`,
        `\`running\` lists the attempts (\`taskId\`, \`attempt\`) the node runs or starts now; the controller reconciles it with what it expects there on every heartbeat (see [Fencing](#fencing)). \`offer.lostAfterMs\` is how long the node may be disconnected before its tasks are lost and rescheduled (agent setting \`lostAfterMs\`, default ${agentDefault('lostAfterMs')}: at once); a task's own \`options.lostAfterMs\` overrides it. \`state: "draining"\`: the agent takes no new tasks (it is shutting down and waits for its running ones).`,
        `The last will is a retained NodeStatus with \`state: "offline"\`, fixed at connect time: it has no \`capacity\`, \`offer\` or \`running\` tasks, and its \`seq\`/\`ts\` are older than the agent's last heartbeat.`,
      ],
      examples: [
        { title: 'online heartbeat', value: exampleOnline },
        { title: 'retained last will', value: exampleWill },
      ],
    }),
    schemaDoc({
      name: 'Assignment',
      schema: AssignmentSchema,
      about: [
        `On ${code(t.nodeAssign('{node}'))}, not retained. The agent's session is persistent (\`clean: false\`), so an agent that reconnects receives what was sent while it was away. The agent de-duplicates by (\`taskId\`, \`attempt\`) and must accept (an \`accepted\` event) before \`leaseExpiresAt\` (controller clock; see [Leases](#leases)). \`attempt\` counts from 1 and grows with every placement of the task; only the current attempt counts (see [Fencing](#fencing)).`,
      ],
      examples: [
        {
          title: 'docker task',
          value: {
            v: 1,
            taskId: TASK,
            attempt: 1,
            leaseExpiresAt: TS + 10_000,
            spec: exampleDockerSpec,
            requirements: exampleRequirements,
          },
        },
      ],
    }),
    schemaDoc({
      name: 'Cancel',
      schema: CancelSchema,
      about: [
        `On ${code(t.nodeCancel('{node}'))}, not retained. The agent stops the run of (\`taskId\`, \`attempt\`): SIGTERM, then SIGKILL after \`graceMs\`. A cancel that arrives before its assignment makes the agent refuse that assignment with \`CANCELLED\`. The controller sends it for a \`cancel\` request, when a task's timeout runs out, and to fence an attempt it no longer expects on that node (see [Fencing](#fencing)).`,
      ],
      examples: [{ title: 'cancel with the default grace', value: { v: 1, taskId: TASK, attempt: 1 } }],
    }),
    schemaDoc({
      name: 'TaskEvent',
      schema: TaskEventSchema,
      about: [
        `On ${code(t.taskEvents('{task}'))}, not retained: the agent's stream for one run, read by the controller and by any follower (the CLI). Discriminated by \`type\`: ${quoteList(Object.keys(exampleEvents))}. \`seq\` counts from 0 per attempt so followers can order and de-duplicate.`,
        "The controller keeps the events of the current attempt (served by `task.logs`, see [Task logs](#task-logs)); events of another `attempt` or `node` than the task's current one, or of a task that is queued or finished, are ignored and the sending node is told to stop that attempt (see [Fencing](#fencing)).",
        '`log.data` is a batch of UTF-8 output, not necessarily whole lines. `result` ends a run that executed (whatever the exit code; `cancelled: true` when cutter stopped it); `failed` ends one that could not run, with a stable `code` (see [Error codes](#error-codes)).',
      ],
      examples: Object.entries(exampleEvents).map(([type, value]) => ({ title: type, value })),
    }),
    schemaDoc({
      name: 'TaskState',
      schema: TaskStateSchema,
      about: [
        `On ${code(t.taskState('{task}'))}, retained, published by the controller on every transition. Terminal states (${quoteList(TERMINAL_STATUSES)}) are final. When the controller evicts a finished task it clears the topic with an empty retained payload, which receivers treat as "no state", not as an invalid message.`,
        '`state` is one of:',
        bullets(TaskStatusSchema.options.map((s) => [s, stateMeaning[s]])),
        "`attempt` is 0 until the first placement and then the number of the current (or last) attempt; `node` is where it is placed (null while queued). `reason` says why the task is in its state now: what a queued task waits for, why a retry is queued (the last attempt's end and when the next one is due), why it is `unknown`; null otherwise. `options` are the task's [TaskOptions](#taskoptions) with every default filled in. `error` is the code and message of what ended the task, when it did not succeed (see [Error codes](#error-codes)); null while it is live and after success. While a retry waits in the queue, `placement`, `assignedAt` and `startedAt` still describe the last attempt.",
      ],
      examples: [
        { title: 'queued: no node fits now', value: exampleQueued },
        { title: 'assigned', value: exampleAssigned },
        { title: 'unknown: its node went silent', value: exampleUnknown },
        { title: 'queued again: attempt 1 was lost, attempt 2 waits out its backoff', value: exampleRetry },
        { title: 'succeeded', value: exampleTaskState },
      ],
    }),
    schemaDoc({
      name: 'Request',
      schema: RequestSchema,
      about: [
        `On ${code(t.requests('{client}'))}, not retained. Discriminated by \`op\`: ${quoteList(Object.keys(exampleRequests))}. \`id\` is chosen by the client and comes back in the [Reply](#reply) on ${code(t.replies('{client}'))}; the controller takes \`{client}\` from the topic.`,
        "`submit` carries the task's [TaskOptions](#taskoptions) in `options` (optional; every field defaulted). `node.drain` with `drain: true` stops placing new tasks on a node (its running tasks finish), `drain: false` resumes it; the controller keeps it across restarts.",
        'Results by op (`result` of a successful reply):',
        bullets(Object.entries(resultOf)),
      ],
      examples: Object.entries(exampleRequests).map(([op, value]) => ({ title: op, value })),
    }),
    schemaDoc({
      name: 'Reply',
      schema: ReplySchema,
      about: [
        `On ${code(t.replies('{client}'))}, not retained. Discriminated by \`ok\`: \`result\` on success (its shape depends on the op, see [Request](#request)), \`error\` otherwise, with a stable \`code\` (see [Error codes](#error-codes)) and a message meant for a person.`,
      ],
      examples: [
        { title: 'ok', value: { v: 1, id: 'r3', ok: true, result: exampleTaskState } },
        {
          title: 'error: submit with options.queue false that fits nowhere',
          value: {
            v: 1,
            id: 'r1',
            ok: false,
            error: {
              code: 'NO_FIT',
              message: 'no node can take this docker task needing 4.0 GiB now',
              rejections: [
                {
                  node: 'nas',
                  code: 'memory',
                  needed: 4 * 1024 ** 3,
                  free: 1288490189,
                  offered: 8 * 1024 ** 3,
                  available: 3328599654,
                  held: 2040109466,
                },
                { node: NODE, code: 'offline', detail: 'connection lost' },
              ],
            },
          },
        },
      ],
    }),
    schemaDoc({
      name: 'ControllerStatus',
      schema: ControllerStatusSchema,
      about: [
        `On ${code(t.controllerStatus())}, retained. The controller publishes \`online\` once it has subscribed and republished its tasks' state; its last will (and a clean stop) publishes \`offline\`. Clients use it to tell "no controller" from "slow controller".`,
      ],
      examples: [{ title: 'online', value: { v: 1, state: 'online', version: VERSION, ts: TS } }],
    }),
  ];

  const shared = [
    schemaDoc({
      name: 'TaskSpec',
      schema: TaskSpecSchema,
      about: [
        'What to run, in [Assignment](#assignment) and `submit` requests. Discriminated by `kind`: `docker` (a container; mirrors the `docker run` flags cutter accepts) or `exec` (a command run without a shell, only on agents started with `--allow-exec`).',
      ],
      examples: [
        { title: 'docker', value: exampleDockerSpec },
        { title: 'exec', value: exampleExecSpec },
        { title: 'ollama', value: exampleOllamaSpec },
      ],
    }),
    schemaDoc({
      name: 'Requirements',
      schema: RequirementsSchema,
      about: ['What the scheduler needs: an explicit `node` (wins), `memory` to reserve in bytes, `cpus` in cores.'],
      examples: [{ title: 'memory and CPU', value: exampleRequirements }],
    }),
    schemaDoc({
      name: 'TaskOptions',
      schema: TaskOptionsSchema,
      about: [
        'How the controller schedules and retries one task: `options` of a `submit` request (optional, every field defaulted) and of [TaskState](#taskstate) (every field filled in). Durations in ms.',
        bullets([
          ['restart', `the [RestartPolicy](#restartpolicy): whether an attempt that ended without success is followed by another`],
          ['maxAttempts', 'attempts in all, the first included'],
          [
            'queue',
            'wait in the queue when no node fits now; `false`: the `submit` fails at once with `NO_FIT` and the reason per node, and the task is not kept',
          ],
          [
            'timeoutMs',
            'bounds queueing and running together, counted from submission; when it runs out the task ends `failed` with `TIMEOUT` (a running attempt is cancelled on its node first). null: no limit',
          ],
          [
            'lostAfterMs',
            "how long the task's node may be disconnected before the attempt is lost; null: the node's own `offer.lostAfterMs`",
          ],
          ['priority', 'queued tasks are placed by priority (higher first), then age (older first)'],
        ]),
      ],
      examples: [
        { title: 'what a client sends', value: exampleOptionsIn },
        { title: 'all defaults', value: {} },
      ],
    }),
    schemaDoc({
      name: 'RestartPolicy',
      schema: RestartPolicySchema,
      about: [
        `The \`restart\` of [TaskOptions](#taskoptions). A retry is a new attempt (\`attempt\` + 1) that goes back to \`queued\` with a \`reason\` and is placed again, on any node that fits, after a backoff, while \`attempt < maxAttempts\`. ${backoffSentence()} A lost attempt is one the node lost (node offline past its window, lease expired, agent shut down or stopped the run, node busy or without the executor); a failed one ended by the task itself (non-zero exit, OOM kill, image pull or start failure). A cancel or a timeout is never retried.`,
        restartTable(),
      ],
      examples: [{ title: 'the default', value: 'on-lost' }],
    }),
  ];

  const nodeView = {
    node: NODE,
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 850,
    reservedMemory: 0,
    status: exampleOnline,
  } satisfies z.input<typeof NodeViewSchema>;
  const results = [
    schemaDoc({
      name: 'NodeView',
      schema: NodeViewSchema,
      about: [
        "A node as the controller sees it: its last [NodeStatus](#nodestatus) plus freshness on the controller's clock.",
        bullets([
          [
            'state',
            `\`online\`; \`draining\` (by its own word, or drained with \`node.drain\`): takes no new tasks; \`offline\`: it said so, its last will fired, or it has been silent for more than ${staleAfter} (then \`status.state\` may still say online)`,
          ],
          ['drained', 'drained with a `node.drain` request (kept by the controller across restarts)'],
          ['offlineReason', 'why the controller considers it offline (its `reason`, or how long it has been silent); null while it is not'],
          ['reservedMemory', 'bytes held for tasks placed there that its heartbeat does not list yet'],
        ]),
      ],
      examples: [
        { title: 'online node', value: nodeView },
        { title: 'drained node', value: { ...nodeView, state: 'draining', drained: true } },
        { title: 'silent node', value: { ...nodeView, state: 'offline', offlineReason: 'no heartbeat for 5.1 s', lastSeenAgoMs: 5_100 } },
      ],
    }),
    schemaDoc({
      name: 'TaskListResult',
      schema: TaskListResultSchema,
      about: ['`result` of `task.list`.'],
      examples: [{ title: 'one task', value: { tasks: [exampleTaskState] } }],
    }),
    schemaDoc({
      name: 'TaskLogsResult',
      schema: TaskLogsResultSchema,
      about: [
        `\`result\` of \`task.logs\`: the [TaskEvent](#taskevent)s the controller kept for the task, ordered by attempt then \`seq\`. \`truncated\`: log output beyond the per-task limit (server setting \`maxLogBytes\`, default ${formatBytes(serverDefault('maxLogBytes'))}) was not kept. \`more\`: the page is full (a reply stays under 1 MiB); ask again with \`after\` set to the last event's attempt and seq.`,
      ],
      examples: [
        {
          title: 'one attempt',
          value: {
            events: (['accepted', 'progress', 'started', 'log', 'result'] as const).map((type) => exampleEvents[type]),
            truncated: false,
            more: false,
          },
        },
      ],
    }),
    schemaDoc({
      name: 'NodeListResult',
      schema: NodeListResultSchema,
      about: ['`result` of `node.list` (every node) and of `node.drain` (the one node).'],
      examples: [{ title: 'one node', value: { nodes: [nodeView] } }],
    }),
  ];
  return { payloads, shared, results };
}

/** Parses every example with its schema; throws naming the schema, example and first bad field. */
function checkExamples(docs: SchemaDoc[]): void {
  for (const d of docs) {
    if (d.examples.length === 0) throw new Error(`protocol doc: ${d.name} has no example`);
    for (const ex of d.examples) {
      const parsed = d.schema.safeParse(ex.value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new Error(
          `protocol doc: example "${ex.title}" of ${d.name} does not parse: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
      }
    }
  }
}

/**
 * JSON Schemas of every documented schema, input side (what a receiver accepts: fields with a
 * `default` may be omitted). Converted as one registry so a schema used inside another (TaskSpec
 * in Assignment, NodeStatus in NodeView…) becomes a `$ref` to its own section.
 */
function jsonSchemas(docs: SchemaDoc[]): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const d of docs) registry.add(d.schema, { id: d.name });
  const { schemas } = z.toJSONSchema(registry, { io: 'input', uri: (id) => `${id}.json` });
  return schemas;
}

function jsonBlock(value: unknown, indent?: number): string {
  return `\`\`\`json\n${JSON.stringify(value, null, indent)}\n\`\`\``;
}

/** Examples on one line when short, as they travel; pretty printed when long. */
function exampleBlock(value: unknown): string {
  const compact = JSON.stringify(value);
  return jsonBlock(value, compact.length <= 120 ? undefined : 2);
}

function renderSchemaSection(d: SchemaDoc, json: unknown): string {
  if (json === undefined) throw new Error(`protocol doc: no JSON Schema generated for ${d.name}`);
  const parts = [`### ${d.name}`, ...d.about, jsonBlock(json, 2)];
  for (const ex of d.examples) parts.push(`Example (${ex.title}):`, exampleBlock(ex.value));
  return parts.join('\n\n');
}

// ---- topics ---------------------------------------------------------------------------------------

interface TopicRow {
  topic: string;
  builder: string;
  fromTo: string;
  retained: string;
  qos: 0 | 1;
  payload: string;
  notes: string;
}

interface FilterRow {
  filter: string;
  builder: string;
  who: string;
}

function topicRows(t: Topics): { rows: TopicRow[]; filters: FilterRow[]; used: Set<TopicBuilderName> } {
  const used = new Set<TopicBuilderName>();
  const b = (name: TopicBuilderName, arg?: string): { topic: string; builder: string } => {
    used.add(name);
    const fn = t[name] as (a?: string) => string;
    return { topic: arg === undefined ? fn() : fn(`{${arg}}`), builder: `${name}(${arg ?? ''})` };
  };
  const rows: TopicRow[] = [
    {
      ...b('nodeStatus', 'node'),
      fromTo: 'agent → all',
      retained: 'yes',
      qos: 1,
      payload: link('NodeStatus'),
      notes: 'Last will: retained `offline` NodeStatus. Published on change and every heartbeat.',
    },
    {
      ...b('nodeAssign', 'node'),
      fromTo: 'controller → agent',
      retained: 'no',
      qos: 1,
      payload: link('Assignment'),
      notes: 'Agent session is persistent (`clean: false`): assignments sent while it was away are delivered on reconnect.',
    },
    {
      ...b('nodeCancel', 'node'),
      fromTo: 'controller → agent',
      retained: 'no',
      qos: 1,
      payload: link('Cancel'),
      notes: 'Same persistent agent session. Also fences attempts the controller no longer expects on the node.',
    },
    {
      ...b('taskEvents', 'task'),
      fromTo: 'agent → controller, followers',
      retained: 'no',
      qos: 1,
      payload: link('TaskEvent'),
      notes: 'Subscribe before submitting to miss nothing; the controller keeps them for `task.logs`.',
    },
    {
      ...b('taskState', 'task'),
      fromTo: 'controller → all',
      retained: 'yes',
      qos: 1,
      payload: link('TaskState'),
      notes:
        'Republished for every kept task when the controller starts. Cleared with an empty retained payload when the controller evicts the finished task or refuses a submit.',
    },
    {
      ...b('requests', 'client'),
      fromTo: 'client → controller',
      retained: 'no',
      qos: 1,
      payload: link('Request'),
      notes: 'The controller answers on the matching replies topic.',
    },
    {
      ...b('replies', 'client'),
      fromTo: 'controller → client',
      retained: 'no',
      qos: 1,
      payload: link('Reply'),
      notes: 'Matched to its request by `id`.',
    },
    {
      ...b('controllerStatus'),
      fromTo: 'controller → all',
      retained: 'yes',
      qos: 1,
      payload: link('ControllerStatus'),
      notes: 'Last will: retained `offline` ControllerStatus.',
    },
    ...fileRows(t, used),
    {
      topic: (used.add('nodePorts'), t.nodePorts('{node}', '{task}')),
      builder: 'nodePorts(node, task)',
      fromTo: 'agent → server',
      retained: 'yes',
      qos: 1,
      payload: '`PortAnnouncement` (shared/schemas/ports.ts)',
      notes:
        "A docker task's container ports published on the node (`cutter run -p`), with the address the server dials (`--advertise-address`, null behind NAT). Cleared when the attempt ends.",
    },
    {
      ...b('forwardState', 'task'),
      fromTo: 'server → all',
      retained: 'yes',
      qos: 1,
      payload: '`ForwardState` (shared/schemas/ports.ts)',
      notes: '`open` (the server proxies its port to the node) or `refused` with the reason; cleared when the forwards close (task ended).',
    },
  ];
  const filters: FilterRow[] = [
    { ...b('allNodeStatus'), who: 'controller (node registry)' },
    { ...b('allTaskEvents'), who: 'controller (task lifecycle, kept events)' },
    { ...b('allTaskState'), who: 'observers of every task' },
    { ...b('allRequests'), who: 'controller' },
    { ...b('allNodePorts'), who: 'server (port proxy)' },
    { ...b('allForwardState'), who: '`cutter ports`' },
  ].map(({ topic, builder, who }) => ({ filter: topic, builder, who }));
  return { rows, filters, used };
}

/** The file transfer topics (two ids each: node and client); protocol in shared/schemas/files.ts. */
function fileRows(t: Topics, used: Set<TopicBuilderName>): TopicRow[] {
  const row = (
    name: 'filesIn' | 'filesInData' | 'filesOut' | 'filesOutData',
    fromTo: string,
    qos: 0 | 1,
    payload: string,
    notes: string,
  ): TopicRow => {
    used.add(name);
    return { topic: t[name]('{node}', '{client}'), builder: `${name}(node, client)`, fromTo, retained: 'no', qos, payload, notes };
  };
  const see = 'see shared/schemas/files.ts';
  return [
    row(
      'filesIn',
      'client → agent',
      1,
      '`FileIn` (put, get, ack, done, abort, image.inspect, image.put)',
      `File transfer and image sync control, straight to the agent (${see}); \`client\` is the sender's own client id.`,
    ),
    row(
      'filesInData',
      'client → agent',
      0,
      'binary chunk frame',
      `1 byte version, 16 bytes transfer id, 8 bytes offset (big-endian), then at most 1 MiB of data (${see}).`,
    ),
    row(
      'filesOut',
      'agent → client',
      1,
      '`FileOut` (ready, meta, ack, done, image, error)',
      `Agent replies; the controller reads this and \`filesIn\` (not the chunks) to audit transfers.`,
    ),
    row('filesOutData', 'agent → client', 0, 'binary chunk frame', "Chunks of a `get`, windowed by the client's acks."),
  ];
}

// ---- flows ----------------------------------------------------------------------------------------

function flows(t: Topics): string[] {
  const ev = (type: TaskEvent['type']) => code(type);
  const leaseMs = serverDefault('leaseMs');
  const graceMs = serverDefault('startupGraceMs');
  const staleAfter = `${STALE_AFTER_HEARTBEATS} heartbeat intervals (${STALE_AFTER_HEARTBEATS} × its \`heartbeatMs\`, on the controller's clock)`;
  return [
    '## Flows',
    '### Submit and queueing',
    [
      `1. The client subscribes to ${code(t.replies('{client}'))}, then to ${code(t.taskEvents('{task}'))} and ${code(t.taskState('{task}'))} for a task id it chooses itself, so it misses nothing.`,
      `2. It publishes a ${code('submit')} [Request](#request) with that ${code('taskId')} and its [TaskOptions](#taskoptions) on ${code(t.requests('{client}'))}. A retry with the same ${code('taskId')} is idempotent: the reply is the task's current state.`,
      `3. The controller stores the task, then tries to place it at once with the scheduler (explicit node first, then feasibility and ranking).`,
      `4. Placed: the controller reserves the memory on the node, publishes the retained [TaskState](#taskstate) ${code('assigned')} on ${code(t.taskState('{task}'))}, then the [Assignment](#assignment) on ${code(t.nodeAssign('{node}'))}, and replies with the TaskState.`,
      `5. No node fits now: with ${code('options.queue: false')} the controller replies ${code('NO_FIT')} with the reason per node, clears the task's state topic and forgets the task. Otherwise the task is **queued**: it publishes and replies the TaskState ${code('queued')}, whose ${code('reason')} says what it waits for (the scheduler's message and the reason per node).`,
      `6. The controller tries the queue again whenever the mesh changes (a node status, an attempt that ends, a drain or resume) and regularly while tasks wait. Queued tasks are tried in order of ${code('options.priority')} (higher first), then age (older first); a task that does not fit is passed over, so it does not block smaller tasks behind it (a large task can wait while smaller ones are placed). A queued task's ${code('reason')} is updated when what it waits for changes.`,
      `7. ${code('options.timeoutMs')} counts from submission: a task still queued when it runs out ends ${code('failed')} with ${code('TIMEOUT')}; a placed one is cancelled on its node and then ends ${code('failed')} with ${code('TIMEOUT')}.`,
    ].join('\n'),
    '### Running an attempt',
    [
      `1. The agent publishes [TaskEvent](#taskevent)s for the attempt on ${code(t.taskEvents('{task}'))}: ${ev('accepted')} (before the lease expires), ${ev('progress')} (e.g. image pull), ${ev('started')}, ${ev('log')}…, then ${ev('result')} or ${ev('failed')}. On ${ev('started')} the controller publishes state ${code('running')}.`,
      `2. A ${ev('result')} with exit code 0 and no OOM kill ends the attempt **succeeded**; any other ${ev('result')} ends it **failed** (${code('EXIT_CODE')} or ${code('OOM_KILLED')}). A ${ev('failed')} event ends it **failed** with the event's code, except ${quoteList(NODE_FAULT_CODES)}, which are the node's doing: the attempt is **lost**. A ${ev('result')} with ${code('"cancelled": true')} that nobody asked for (the agent shut down, or the run was fenced) is **lost** too (${code('NODE_LOST')}).`,
      `3. The controller releases the node's reservation, then decides by the task's [RestartPolicy](#restartpolicy): a requested cancel ends the task ${code('cancelled')}, a timeout ${code('failed')}; otherwise, when the policy asks for another attempt and ${code('attempt < maxAttempts')}, the task goes back to ${code('queued')} (its ${code('reason')} names the ended attempt, the next one and its backoff delay, see [RestartPolicy](#restartpolicy)) and is placed again as ${code('attempt')} + 1 once the delay is over; else it publishes the terminal TaskState: ${code('succeeded')}, ${code('failed')} or ${code('lost')}.`,
      `4. Finished tasks beyond the ${code('keepFinished')} newest are evicted: the controller forgets them and clears their state topic with an empty retained payload.`,
    ].join('\n'),
    '### Leases',
    [
      `- Every [Assignment](#assignment) carries ${code('leaseExpiresAt')}: the controller's clock at placement plus the lease (server setting ${code('leaseMs')}, default ${seconds(leaseMs)}). Until the agent's ${ev('accepted')} arrives, the node holds the task only on that lease.`,
      `- When the lease runs out before ${ev('accepted')}, the attempt is lost with ${code('LEASE_EXPIRED')}: the controller releases the reservation, fences the attempt (a [Cancel](#cancel) to the node, which makes a late agent refuse or stop it) and the restart policy decides (by default a new attempt, possibly elsewhere).`,
      `- After a controller restart, leases that ran out while it was down are judged only once nodes have had the startup grace (server setting ${code('startupGraceMs')}, default ${seconds(graceMs)}) to report back.`,
    ].join('\n'),
    '### Node failure',
    [
      `1. A node goes **offline** when its retained last will arrives (connection lost), when it publishes ${code('offline')} itself (clean stop), or when the controller has heard nothing from it for ${staleAfter}. It is then ${code('offline')} in [NodeView](#nodeview), with ${code('offlineReason')}, and takes no tasks.`,
      `2. Its live tasks (${code('assigned')}, ${code('running')}) become ${code('unknown')}: the node may still be running them. Each has a lost-after window: the task's ${code('options.lostAfterMs')}, else the node's ${code('offer.lostAfterMs')} (default 0). With a window of 0 the attempt is lost at once instead.`,
      `3. The node reports back (any status other than ${code('offline')}) within the window: its tasks return to ${code('running')} (${code('assigned')} if they had not started) and its heartbeat is reconciled as usual (see [Fencing](#fencing)).`,
      `4. The window passes: the attempt is lost with ${code('NODE_LOST')}, and the restart policy decides between a new attempt (${code('queued')} with a ${code('reason')}, then placed on any node that fits) and the end of the task as ${code('lost')}. If the node comes back later, the old attempt is fenced.`,
      `5. A ${code('cancel')} of an ${code('unknown')} task ends it ${code('cancelled')} at once (${code('CANCELLED')}); the [Cancel](#cancel) waits in the node's persistent session for when it is back.`,
    ].join('\n'),
    '### Fencing',
    `Only the task's current attempt, on the node it was placed on, counts. Everything else is a stale attempt (an old attempt on a node that was thought lost, a run the controller gave up on) and is stopped:`,
    [
      `- An event whose (${code('attempt')}, ${code('node')}) is not the task's current one, or that arrives while the task is ${code('queued')} or finished, is ignored (not kept, no state change), and the node that sent it gets a [Cancel](#cancel) for that attempt (not for ${ev('result')} or ${ev('failed')}, which end the run anyway). Repeated cancels for the same attempt are sent at most every ${seconds(FENCE_REPEAT_MS)}.`,
      `- Every heartbeat is reconciled: an entry of ${code('running')} the controller does not expect on that node (unknown task, finished task, other attempt, other node) gets a Cancel.`,
      `- An accepted attempt missing from ${MISSING_HEARTBEATS} consecutive heartbeats of its node is lost (${code('NODE_LOST')}).`,
      `- An attempt whose lease expired is fenced with a Cancel as well.`,
    ].join('\n'),
    '### Cancel',
    [
      `1. The client publishes a ${code('cancel')} [Request](#request) (optional ${code('graceMs')}) on ${code(t.requests('{client}'))}.`,
      `2. The controller replies ${code('NOT_FOUND')} or ${code('ALREADY_FINISHED')} when it cannot cancel. A ${code('queued')} task ends ${code('cancelled')} at once. Otherwise it publishes a [Cancel](#cancel) for the current attempt on ${code(t.nodeCancel('{node}'))}; if the task is ${code('unknown')} or its node is offline, it also publishes the terminal state ${code('cancelled')} (error ${code('CANCELLED')}) at once, and the node gets the Cancel when it is back. It replies with the TaskState as it is then.`,
      `3. The agent stops the run (SIGTERM, SIGKILL after ${code('graceMs')}) and publishes ${ev('result')} with ${code('"cancelled": true')}, or ${ev('failed')} with ${code('CANCELLED')} if it had not started; the controller then publishes the terminal state ${code('cancelled')}. A cancelled task is never retried.`,
    ].join('\n'),
    '### Draining',
    [
      `- A ${code('node.drain')} request with ${code('drain: true')} stops the controller placing new tasks on the node; tasks already there run to their end. ${code('drain: false')} resumes it. The controller keeps the drained set across restarts; [NodeView](#nodeview) shows ${code('drained: true')} and state ${code('draining')}.`,
      `- An agent that is shutting down announces ${code('state: "draining"')} itself: no new tasks, its running ones finish (or are stopped at its drain timeout, and then count as lost).`,
    ].join('\n'),
    '### Task logs',
    [
      `- The controller keeps each task's events as they arrive, in its state store (only the current attempt's: events of stale attempts are ignored, see [Fencing](#fencing)). Every event except ${ev('log')} is kept; ${ev('log')} events are kept until their ${code('data')} reaches the per-task limit (server setting ${code('maxLogBytes')}, default ${formatBytes(serverDefault('maxLogBytes'))}), after which further log events are dropped and the task is marked truncated.`,
      `- A ${code('task.logs')} request returns them in pages of at most 1 MiB, every attempt, ordered by attempt then ${code('seq')} ([TaskLogsResult](#tasklogsresult)), so a client can show the output of a task it did not follow live. They are forgotten with the task when it is evicted.`,
    ].join('\n'),
    '### Controller restart',
    [
      `- The controller's state is durable: tasks (with the current attempt's lease, acceptance and retry bookkeeping), their kept events and the drained nodes live in SQLite in its data directory (server setting ${code('dataDir')}), and every change is written before it is published or acted on.`,
      `- On start it subscribes to node statuses, task events and requests, republishes the retained [TaskState](#taskstate) of every task it keeps (the broker may have lost its retained messages: an embedded broker restarts with the controller), then announces ${code('online')} on ${code(t.controllerStatus())}. The embedded broker opens its public listener only after the controller has subscribed, so no event an agent re-sends on reconnect reaches a broker with nobody listening.`,
      `- Nodes report back with their retained status and heartbeats, and their ${code('running')} lists are reconciled as usual. A task placed on a node that has not reported within the startup grace (${code('startupGraceMs')}, default ${seconds(graceMs)}) is handled as if that node had gone offline (see [Node failure](#node-failure)). Queued tasks are placed as nodes appear.`,
    ].join('\n'),
    '### Presence',
    [
      `- Agents publish a retained [NodeStatus](#nodestatus) on connect, on change and every heartbeat; the broker publishes their retained ${code('offline')} last will when the connection is lost. A clean stop publishes ${code('offline')} itself.`,
      `- The controller does the same with [ControllerStatus](#controllerstatus) on ${code(t.controllerStatus())}.`,
    ].join('\n'),
  ];
}

// ---- document -------------------------------------------------------------------------------------

/** Renders the whole of docs/protocol.md. @throws Error when an example does not parse or a topic builder is undocumented. */
export function renderProtocolDoc(): string {
  const t = topics();
  const v = PROTOCOL_VERSION;

  // Claims the prose makes about ids and payloads, checked against the code.
  const idOk = (id: string) => ID_RE.test(id);
  if (
    !idOk('a') ||
    !idOk('A'.repeat(64)) ||
    idOk('A'.repeat(65)) ||
    idOk('') ||
    idOk('.a') ||
    idOk('-a') ||
    !idOk('_a.b-c') ||
    idOk('a/b') ||
    idOk('a+b') ||
    idOk('a#b')
  ) {
    throw new Error('protocol doc: ID_RE no longer matches the id rule the document states');
  }

  const { rows, filters, used } = topicRows(t);
  const missing = topicBuilderNames().filter((n) => !used.has(n as TopicBuilderName));
  if (missing.length) throw new Error(`protocol doc: topic builders not in the topic table: ${missing.join(', ')}`);

  const { payloads, shared, results } = buildSchemaDocs(t);
  const all = [...payloads, ...shared, ...results];
  checkExamples(all);
  if (!NodeStatusSchema.safeParse({ ...exampleOnline, someFutureField: true }).success) {
    throw new Error('protocol doc: payload objects no longer ignore unknown properties, as the document states');
  }
  const json = jsonSchemas(all);

  const out: string[] = [];
  out.push(
    `# cutter wire protocol v${v}`,
    '<!-- Generated by `npm run docs:protocol` from scripts/protocol-doc.ts: do not edit by hand. test/unit/protocol-doc.test.ts fails when this file is out of date. -->',
    'Everything here is generated from the code: topics from the builders in `shared/topics.ts`, schemas from the zod schemas in `shared/schemas/`, and every example is validated against its schema when the document is built.',
    '## Overview',
    [
      `- **MQTT 3.1.1 features only**; the protocol works unchanged on MQTT 5 brokers.`,
      `- **Topics** live under ${code(`{prefix}/v${v}/`)}. The prefix is configurable, default ${code(t.prefix)}; it must be non-empty, without ${code('+')} or ${code('#')}, and not start or end with ${code('/')}. Topics below are shown with the default prefix.`,
      `- **Payloads** are UTF-8 JSON objects of at most ${MAX_PAYLOAD_BYTES.toLocaleString('en-US')} bytes, each carrying ${code(`"v": ${v}`)}. Every process validates each payload with zod on receipt; an invalid payload is dropped and logged (with its topic and the first bad field), and the process keeps working; an invalid request that carries an ${code('id')} is also answered with an ${code('INVALID_REQUEST')} reply. Unknown properties are ignored, so adding an optional field is backward compatible.`,
      `- An **empty payload** on a retained topic clears it; receivers treat it as "no value", not as an invalid message.`,
      `- **Ids** (node, task, client) are 1-64 characters of ${code('[A-Za-z0-9_.-]')}, not starting with ${code('.')} or ${code('-')} (${code(`/${ID_RE.source}/`)}), so they never contain the MQTT separators ${code('/')}, ${code('+')} or ${code('#')}.`,
      `- **Units**: memory in bytes, CPU in cores (fractions allowed), times in ms since the Unix epoch, durations in ms.`,
      `- **Attempts**: a task is run by one attempt at a time, numbered from 1; a lost attempt may be followed by another (see [RestartPolicy](#restartpolicy)), and only the current attempt's events count (see [Fencing](#fencing)).`,
      `- **Schemas** are JSON Schema (draft 2020-12) generated with ${code("z.toJSONSchema(schema, { io: 'input' })")}: they describe what a receiver accepts, so a property with a ${code('default')} may be omitted. Each schema has ${code('$id')} ${code('{Name}.json')}; a ${code('$ref')} such as ${code('TaskSpec.json')} names another schema in this document.`,
    ].join('\n'),
    '## Topics',
    table(
      ['topic', 'builder', 'from → to', 'retained', 'QoS', 'payload', 'notes'],
      rows.map((r) => [code(r.topic), code(r.builder), r.fromTo, r.retained, String(r.qos), r.payload, r.notes]),
    ),
    'Subscription filters (QoS 1):',
    table(
      ['filter', 'builder', 'subscribed by'],
      filters.map((f) => [code(f.filter), code(f.builder), f.who]),
    ),
    ...flows(t),
    '## Payloads',
    ...payloads.map((d) => renderSchemaSection(d, json[d.name])),
    '## Shared definitions',
    ...shared.map((d) => renderSchemaSection(d, json[d.name])),
    '## Reply results',
    ...results.map((d) => renderSchemaSection(d, json[d.name])),
    '## Error codes',
    "Error codes are stable strings (for scripts and `--json`); messages are for people and may change. They appear in `Reply.error.code`, in `failed` events and in `TaskState.error.code` (a `failed` event's code becomes the task's error when that attempt is its last); some are only raised locally by a client and never travel on the wire.",
    table(
      ['code', 'where'],
      Object.entries(errorCodes).map(([c, where]) => [code(c), where]),
    ),
    ...homeAssistantSection(),
  );
  return `${out.join('\n\n')}\n`;
}

/**
 * Home Assistant's topics (controller/extensions/ha): built with `haTopics()`, the example discovery config
 * with the extension's own builder from the online example node, validated with its schema.
 */
function homeAssistantSection(): string[] {
  const ha = haTopics();
  const view = {
    node: NODE,
    state: 'online' as const,
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 400,
    reservedMemory: 0,
    status: NodeStatusSchema.parse(exampleOnline),
  };
  const { topic, payload } = haDeviceConfig(view, { prefix: 'cutter', topics: ha, version: '0.1.0' });
  HaDeviceConfigSchema.parse(payload);
  const state = HaNodeStateSchema.parse(haNodeState(view, Date.UTC(2026, 0, 1)));
  const rows: [string, string, string, string, string][] = [
    [
      ha.deviceConfig(haNodeId('cutter', NODE)),
      'server → Home Assistant',
      'yes',
      'device discovery config (below); empty = device removed',
      'https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload',
    ],
    [
      ha.haStatus(),
      'Home Assistant → server',
      'no',
      "`online` (HA's birth): the server publishes everything again",
      "HA's birth and last will",
    ],
    [ha.state(NODE), 'server → Home Assistant', 'yes', 'node state JSON (below)', 'memory and CPU at most every 10 s; the rest at once'],
    [ha.availability(NODE), 'server → Home Assistant', 'yes', '`online` / `offline`', 'the node (its last will, or missed heartbeats)'],
    [ha.bridgeAvailability(), 'server → Home Assistant', 'yes', '`online` / `offline`', 'the server itself; its last will is `offline`'],
    [ha.drainCommand(NODE), 'Home Assistant → server', 'no', '`ON` drain, `OFF` resume', 'retained commands are ignored'],
  ];
  return [
    '## Home Assistant',
    `With discovery on (the default), the server publishes to Home Assistant's discovery prefix (default ${code('homeassistant')}), on its own broker or on ${code('--ha-broker')} (MQTT 5). HA ids are ${code('[a-zA-Z0-9_-]')}: a node id with other characters gets them replaced and a 6-digit hash appended.`,
    table(
      ['topic', 'from → to', 'retained', 'payload', 'notes'],
      rows.map(([tp, ft, r, p, n]) => [code(tp), ft, r, p, n]),
    ),
    `Example discovery config on ${code(topic)}:`,
    `\`\`\`json\n${JSON.stringify(payload, null, 2)}\n\`\`\``,
    'Example node state:',
    `\`\`\`json\n${JSON.stringify(state, null, 2)}\n\`\`\``,
  ];
}
