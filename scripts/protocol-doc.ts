/**
 * Builds docs/protocol.md from the code, so the document cannot drift from the protocol:
 * topics come from the real builders in shared/topics.ts, JSON Schemas from the zod schemas in
 * shared/schemas (`z.toJSONSchema`, input side), and every example payload is parsed with its
 * schema while rendering (an example that no longer parses throws). `npm run docs:protocol`
 * writes the file; test/unit/protocol-doc.test.ts fails when it is out of date.
 */
import { z } from 'zod';
import { MAX_PAYLOAD_BYTES } from '../shared/codec.js';
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
  TaskEventSchema,
  TaskListResultSchema,
  TaskSpecSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TERMINAL_STATUSES,
  type Request,
  type TaskEvent,
} from '../shared/schemas/index.js';
import { ID_RE, topics, type Topics } from '../shared/topics.js';
import { PROTOCOL_VERSION } from '../shared/version.js';

/** Names of the topic builders: every function of `Topics` that returns a topic string. */
export type TopicBuilderName = {
  [K in keyof Topics]: Topics[K] extends (...args: never[]) => string ? K : never;
}[keyof Topics];

/** The builders a topic table must cover: every function property of `topics()` except `idFrom`. */
export function topicBuilderNames(): string[] {
  const t = topics();
  return Object.keys(t)
    .filter((k) => typeof t[k as keyof Topics] === 'function' && k !== 'idFrom')
    .sort();
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
  offer: { maxMemory: 20 * GiB, maxTasks: 4, executors: ['docker'], labels: { site: 'home' } },
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
  placement: 'notebook: 16.0 GiB left for tasks after placement (most headroom of 2 feasible nodes, spread)',
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

const event = { v: 1, taskId: TASK, attempt: 1, node: NODE } as const;

/** One example per event type; the Record makes a new event type a compile error until it has one. */
const exampleEvents: Record<TaskEvent['type'], z.input<typeof TaskEventSchema>> = {
  accepted: { ...event, seq: 0, ts: TS + 40, type: 'accepted' },
  progress: { ...event, seq: 1, ts: TS + 60, type: 'progress', phase: 'pull', message: 'Downloading', current: 12_582_912, total: 29_360_128 },
  started: { ...event, seq: 2, ts: TS + 1_200, type: 'started', ref: '9c1e0a7b55d2' },
  log: { ...event, seq: 3, ts: TS + 9_600, type: 'log', stream: 'stdout', data: '4999999950000000\n' },
  result: { ...event, seq: 4, ts: TS + 9_640, type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: TS + 1_200, finishedAt: TS + 9_630 },
  failed: { ...event, seq: 1, ts: TS + 900, type: 'failed', code: 'IMAGE_PULL_FAILED', message: 'pulling python:3.12-slim failed: no space left on device' },
};

/** One example per request op; the Record makes a new op a compile error until it has one. */
const exampleRequests: Record<Request['op'], z.input<typeof RequestSchema>> = {
  submit: { v: 1, id: 'r1', op: 'submit', taskId: TASK, spec: exampleDockerSpec, requirements: exampleRequirements },
  cancel: { v: 1, id: 'r2', op: 'cancel', taskId: TASK, graceMs: 5_000 },
  'task.get': { v: 1, id: 'r3', op: 'task.get', taskId: TASK },
  'task.list': { v: 1, id: 'r4', op: 'task.list', states: ['assigned', 'running'], limit: 20 },
  'node.list': { v: 1, id: 'r5', op: 'node.list' },
};

/** What each op's successful reply carries in `result`. */
const resultOf: Record<Request['op'], string> = {
  submit: '[TaskState](#taskstate) of the new task (state `assigned`), or its current state when the taskId already exists (a retried submit is idempotent)',
  cancel: '[TaskState](#taskstate) as it is once the cancel is handled: already `cancelled` when the node is offline, otherwise the terminal state follows on the state topic',
  'task.get': '[TaskState](#taskstate)',
  'task.list': '[TaskListResult](#tasklistresult)',
  'node.list': '[NodeListResult](#nodelistresult)',
};

/** Every error code with where it shows up; the Record makes a new ErrorCode a compile error until it is described. */
const errorCodes: Record<ErrorCode, string> = {
  INVALID_SIZE: 'local (CLI): a size argument such as `-m 24g` does not parse',
  INVALID_CONFIG: 'local: a config file, environment variable or flag is invalid',
  INVALID_ARGUMENT: 'local (CLI): an argument is not accepted (e.g. an unsupported `docker run` flag)',
  INVALID_REQUEST: 'reply: the request did not validate (the message names the first bad field); a request without a usable `id` is dropped and logged',
  NO_FIT: 'reply to `submit`: no node can take the task now; `error.rejections` gives the reason per node',
  NOT_FOUND: 'reply to `task.get` / `cancel`: the controller does not know the task',
  ALREADY_FINISHED: 'reply to `cancel`: the task is already in a terminal state',
  NO_CONTROLLER: 'local (client): no reply within the timeout, so no controller is answering',
  BROKER_UNREACHABLE: 'local: the broker refused the connection or did not answer in time',
  EXECUTOR_UNAVAILABLE: '`failed` event: the node has no working executor of the task\'s kind (e.g. Docker engine not reachable)',
  EXECUTOR_DISABLED: '`failed` event: the node does not run `exec` tasks (agent started without `--allow-exec`)',
  IMAGE_PULL_FAILED: '`failed` event: the image is not on the node and could not be pulled',
  START_FAILED: '`failed` event: the container or process could not be created or started',
  LEASE_EXPIRED: 'TaskState.error: the node did not accept the assignment before `leaseExpiresAt`',
  NODE_LOST: 'TaskState.error: the node went offline while the task was assigned or running (state `lost`)',
  AGENT_SHUTDOWN: '`failed` event: the agent was shutting down',
  CANCELLED: '`failed` event / TaskState.error: the task was cancelled before it started, or while its node was offline',
  EXIT_CODE: 'TaskState.error: the run exited with a non-zero code (state `failed`)',
  OOM_KILLED: 'TaskState.error: the run was killed for running out of memory (state `failed`)',
  NODE_BUSY: '`failed` event: the node already runs as many tasks as it offers',
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
function schemaDoc<S extends z.ZodType>(d: { name: string; schema: S; about: string[]; examples: { title: string; value: z.input<S> }[] }): SchemaDoc {
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

function buildSchemaDocs(t: Topics): { payloads: SchemaDoc[]; shared: SchemaDoc[]; results: SchemaDoc[] } {
  const payloads = [
    schemaDoc({
      name: 'NodeStatus',
      schema: NodeStatusSchema,
      about: [
        `On ${code(t.nodeStatus('{node}'))}, retained. An agent publishes it on every change and every \`heartbeatMs\`; \`seq\` increases with every status during one agent run. Memory figures are bytes, times ms since the Unix epoch on the agent's clock (the controller judges freshness by its own receive time, so clock skew does not matter).`,
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
        `On ${code(t.nodeAssign('{node}'))}, not retained. The agent's session is persistent (\`clean: false\`), so an agent that reconnects receives what was sent while it was away. The agent de-duplicates by (\`taskId\`, \`attempt\`) and must accept (an \`accepted\` event) before \`leaseExpiresAt\` (controller clock).`,
      ],
      examples: [{ title: 'docker task', value: { v: 1, taskId: TASK, attempt: 1, leaseExpiresAt: TS + 10_000, spec: exampleDockerSpec, requirements: exampleRequirements } }],
    }),
    schemaDoc({
      name: 'Cancel',
      schema: CancelSchema,
      about: [
        `On ${code(t.nodeCancel('{node}'))}, not retained. The agent stops the run of (\`taskId\`, \`attempt\`): SIGTERM, then SIGKILL after \`graceMs\`. A cancel that arrives before its assignment makes the agent refuse that assignment with \`CANCELLED\`.`,
      ],
      examples: [{ title: 'cancel with the default grace', value: { v: 1, taskId: TASK, attempt: 1 } }],
    }),
    schemaDoc({
      name: 'TaskEvent',
      schema: TaskEventSchema,
      about: [
        `On ${code(t.taskEvents('{task}'))}, not retained: the agent's stream for one run, read by the controller and by any follower (the CLI). Discriminated by \`type\`: ${quoteList(Object.keys(exampleEvents))}. \`seq\` counts from 0 per attempt so followers can order and de-duplicate; events of another \`attempt\` or \`node\` than the task's current one are ignored by the controller.`,
        '`log.data` is a batch of UTF-8 output, not necessarily whole lines. `result` ends a run that executed (whatever the exit code); `failed` ends one that could not run, with a stable `code` (see [Error codes](#error-codes)).',
      ],
      examples: Object.entries(exampleEvents).map(([type, value]) => ({ title: type, value })),
    }),
    schemaDoc({
      name: 'TaskState',
      schema: TaskStateSchema,
      about: [
        `On ${code(t.taskState('{task}'))}, retained, published by the controller on every transition. \`state\` is one of ${quoteList(TaskStatusSchema.options)}; terminal states (${quoteList(TERMINAL_STATUSES)}) are final. When the controller evicts a finished task it clears the topic with an empty retained payload, which receivers treat as "no state", not as an invalid message.`,
      ],
      examples: [
        { title: 'assigned', value: exampleAssigned },
        { title: 'succeeded', value: exampleTaskState },
      ],
    }),
    schemaDoc({
      name: 'Request',
      schema: RequestSchema,
      about: [
        `On ${code(t.requests('{client}'))}, not retained. Discriminated by \`op\`: ${quoteList(Object.keys(exampleRequests))}. \`id\` is chosen by the client and comes back in the [Reply](#reply) on ${code(t.replies('{client}'))}; the controller takes \`{client}\` from the topic.`,
        'Results by op (`result` of a successful reply):',
        Object.entries(resultOf)
          .map(([op, what]) => `- ${code(op)}: ${what}`)
          .join('\n'),
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
          title: 'error',
          value: {
            v: 1,
            id: 'r1',
            ok: false,
            error: {
              code: 'NO_FIT',
              message: 'no node can take this docker task needing 4.0 GiB now',
              rejections: [
                { node: 'nas', reason: 'needs 4.0 GiB memory, has 1.2 GiB free (offers 8.0 GiB, 3.1 GiB available, 1.9 GiB held by tasks)' },
                { node: NODE, reason: 'offline (connection lost)' },
              ],
            },
          },
        },
      ],
    }),
    schemaDoc({
      name: 'ControllerStatus',
      schema: ControllerStatusSchema,
      about: [`On ${code(t.controllerStatus())}, retained. The controller publishes \`online\` when it connects; its last will (and a clean stop) publishes \`offline\`. Clients use it to tell "no controller" from "slow controller".`],
      examples: [{ title: 'online', value: { v: 1, state: 'online', version: VERSION, ts: TS } }],
    }),
  ];

  const shared = [
    schemaDoc({
      name: 'TaskSpec',
      schema: TaskSpecSchema,
      about: ['What to run, in [Assignment](#assignment) and `submit` requests. Discriminated by `kind`: `docker` (a container; mirrors the `docker run` flags cutter accepts) or `exec` (a command run without a shell, only on agents started with `--allow-exec`).'],
      examples: [
        { title: 'docker', value: exampleDockerSpec },
        { title: 'exec', value: exampleExecSpec },
      ],
    }),
    schemaDoc({
      name: 'Requirements',
      schema: RequirementsSchema,
      about: ['What the scheduler needs: an explicit `node` (wins), `memory` to reserve in bytes, `cpus` in cores.'],
      examples: [{ title: 'memory and CPU', value: exampleRequirements }],
    }),
  ];

  const nodeView = {
    node: NODE,
    state: 'online',
    lastSeenAgoMs: 850,
    reservedMemory: 0,
    status: exampleOnline,
  } satisfies z.input<typeof NodeViewSchema>;
  const results = [
    schemaDoc({
      name: 'NodeView',
      schema: NodeViewSchema,
      about: ['A node as the controller sees it: its last [NodeStatus](#nodestatus) plus freshness on the controller\'s clock. `stale` means online by its own word but silent for longer than the freshness window.'],
      examples: [{ title: 'online node', value: nodeView }],
    }),
    schemaDoc({
      name: 'TaskListResult',
      schema: TaskListResultSchema,
      about: ['`result` of `task.list`.'],
      examples: [{ title: 'one task', value: { tasks: [exampleTaskState] } }],
    }),
    schemaDoc({
      name: 'NodeListResult',
      schema: NodeListResultSchema,
      about: ['`result` of `node.list`.'],
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
        throw new Error(`protocol doc: example "${ex.title}" of ${d.name} does not parse: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
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
  return '```json\n' + JSON.stringify(value, null, indent) + '\n```';
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
    { ...b('nodeStatus', 'node'), fromTo: 'agent → all', retained: 'yes', qos: 1, payload: link('NodeStatus'), notes: 'Last will: retained `offline` NodeStatus. Published on change and every heartbeat.' },
    { ...b('nodeAssign', 'node'), fromTo: 'controller → agent', retained: 'no', qos: 1, payload: link('Assignment'), notes: 'Agent session is persistent (`clean: false`): assignments sent while it was away are delivered on reconnect.' },
    { ...b('nodeCancel', 'node'), fromTo: 'controller → agent', retained: 'no', qos: 1, payload: link('Cancel'), notes: 'Same persistent agent session.' },
    { ...b('taskEvents', 'task'), fromTo: 'agent → controller, followers', retained: 'no', qos: 1, payload: link('TaskEvent'), notes: 'Subscribe before submitting to miss nothing.' },
    { ...b('taskState', 'task'), fromTo: 'controller → all', retained: 'yes', qos: 1, payload: link('TaskState'), notes: 'Cleared with an empty retained payload when the controller evicts the finished task.' },
    { ...b('requests', 'client'), fromTo: 'client → controller', retained: 'no', qos: 1, payload: link('Request'), notes: 'The controller answers on the matching replies topic.' },
    { ...b('replies', 'client'), fromTo: 'controller → client', retained: 'no', qos: 1, payload: link('Reply'), notes: 'Matched to its request by `id`.' },
    { ...b('controllerStatus'), fromTo: 'controller → all', retained: 'yes', qos: 1, payload: link('ControllerStatus'), notes: 'Last will: retained `offline` ControllerStatus.' },
  ];
  const filters: FilterRow[] = [
    { ...b('allNodeStatus'), who: 'controller (node registry)' },
    { ...b('allTaskEvents'), who: 'controller (task lifecycle)' },
    { ...b('allTaskState'), who: 'observers of every task' },
    { ...b('allRequests'), who: 'controller' },
  ].map(({ topic, builder, who }) => ({ filter: topic, builder, who }));
  return { rows, filters, used };
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

// ---- document -------------------------------------------------------------------------------------

/** Renders the whole of docs/protocol.md. @throws Error when an example does not parse or a topic builder is undocumented. */
export function renderProtocolDoc(): string {
  const t = topics();
  const v = PROTOCOL_VERSION;

  // Claims the prose makes about ids and payloads, checked against the code.
  const idOk = (id: string) => ID_RE.test(id);
  if (!idOk('a') || !idOk('A'.repeat(64)) || idOk('A'.repeat(65)) || idOk('') || idOk('.a') || idOk('-a') || !idOk('_a.b-c') || idOk('a/b') || idOk('a+b') || idOk('a#b')) {
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

  const ev = (type: TaskEvent['type']) => code(type);
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
      `- **Units**: memory in bytes, CPU in cores (fractions allowed), times in ms since the Unix epoch.`,
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
    '## Flows',
    '### Submit',
    [
      `1. The client subscribes to ${code(t.replies('{client}'))}, then to ${code(t.taskEvents('{task}'))} and ${code(t.taskState('{task}'))} for a task id it chooses itself, so it misses nothing.`,
      `2. It publishes a ${code('submit')} [Request](#request) with that ${code('taskId')} on ${code(t.requests('{client}'))}. A retry with the same ${code('taskId')} is idempotent.`,
      `3. The controller places the task with the scheduler (explicit node first, then feasibility and ranking). No fit: it replies ${code('NO_FIT')} with the reason per node, and nothing else happens.`,
      `4. Placed: the controller reserves the memory on the node, publishes the retained [TaskState](#taskstate) ${code('assigned')} on ${code(t.taskState('{task}'))}, then the [Assignment](#assignment) on ${code(t.nodeAssign('{node}'))}, and replies with the TaskState.`,
      `5. The agent publishes [TaskEvent](#taskevent)s on ${code(t.taskEvents('{task}'))}: ${ev('accepted')}, ${ev('progress')} (e.g. image pull), ${ev('started')}, ${ev('log')}…, then ${ev('result')} or ${ev('failed')}. On ${ev('started')} the controller publishes state ${code('running')}.`,
      `6. On ${ev('result')} or ${ev('failed')} the controller publishes the terminal TaskState (${quoteList(TERMINAL_STATUSES)}) and releases the reservation. If the agent does not accept before ${code('leaseExpiresAt')} the task fails with ${code('LEASE_EXPIRED')}; if its node goes offline the task becomes ${code('lost')} with ${code('NODE_LOST')}.`,
    ].join('\n'),
    '### Cancel',
    [
      `1. The client publishes a ${code('cancel')} [Request](#request) (optional ${code('graceMs')}) on ${code(t.requests('{client}'))}.`,
      `2. The controller replies ${code('NOT_FOUND')} or ${code('ALREADY_FINISHED')} when it cannot cancel; if the task's node is offline it publishes the terminal state ${code('cancelled')} itself. Otherwise it publishes a [Cancel](#cancel) for the current attempt on ${code(t.nodeCancel('{node}'))} and replies with the current TaskState.`,
      `3. The agent stops the run (SIGTERM, SIGKILL after ${code('graceMs')}) and publishes ${ev('result')} with ${code('"cancelled": true')}, or ${ev('failed')} with ${code('CANCELLED')} if it had not started; the controller then publishes the terminal state ${code('cancelled')}.`,
    ].join('\n'),
    '### Presence',
    [
      `- Agents publish a retained [NodeStatus](#nodestatus) on connect, on change and every heartbeat; the broker publishes their retained ${code('offline')} last will when the connection is lost. A clean stop publishes ${code('offline')} itself.`,
      `- The controller does the same with [ControllerStatus](#controllerstatus) on ${code(t.controllerStatus())}.`,
    ].join('\n'),
    '## Payloads',
    ...payloads.map((d) => renderSchemaSection(d, json[d.name])),
    '## Shared definitions',
    ...shared.map((d) => renderSchemaSection(d, json[d.name])),
    '## Reply results',
    ...results.map((d) => renderSchemaSection(d, json[d.name])),
    '## Error codes',
    'Error codes are stable strings (for scripts and `--json`); messages are for people and may change. They appear in `Reply.error.code`, in `failed` events and in `TaskState.error.code`; some are only raised locally by a client and never travel on the wire.',
    table(
      ['code', 'where'],
      Object.entries(errorCodes).map(([c, where]) => [code(c), where]),
    ),
  );
  return out.join('\n\n') + '\n';
}
