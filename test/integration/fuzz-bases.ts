/**
 * fast-check arbitraries for valid-looking messages of every fuzzed topic, built from the schemas'
 * shapes but naming only harmless things (test/integration/fuzz.test.ts).
 */
import * as fc from 'fast-check';
import { AGENT, TASK, toJ } from './fuzz-json.js';

// ---- valid-looking bases, built from the schemas' shapes ------------------------------------------

export const id = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}$/);
export const otherNode = id.filter((x) => x !== AGENT);
export const short = (maxLength: number) => fc.string({ maxLength });
export const dict = fc.dictionary(short(10), short(10), { maxKeys: 3 });
/** fc.record with only `required` keys required (the others may be absent). */
export function rec(
  required: Record<string, fc.Arbitrary<unknown>>,
  optional: Record<string, fc.Arbitrary<unknown>> = {},
): fc.Arbitrary<Record<string, unknown>> {
  return fc.record({ ...required, ...optional }, { requiredKeys: Object.keys(required) }) as fc.Arbitrary<Record<string, unknown>>;
}

/** A node status that is valid but never for AGENT (its topic): the controller must drop it for the id. */
export const statusBase = rec(
  {
    v: fc.constant(1),
    node: otherNode,
    state: fc.constantFrom('online', 'draining', 'offline'),
    version: fc.constant('0.1.0'),
    seq: fc.nat(),
    ts: fc.integer({ min: 0, max: 2 ** 41 }),
    heartbeatMs: fc.integer({ min: 1, max: 60_000 }),
  },
  {
    hostname: short(20),
    runId: short(16),
    capacity: fc.record({
      cpu: fc.record({ cores: fc.integer({ min: 1, max: 256 }), loadPercent: fc.double({ min: 0, max: 100, noNaN: true }) }),
      memory: fc.record({ total: fc.nat(), available: fc.nat() }),
      gpus: fc.array(
        fc.record({
          vendor: short(10),
          model: short(10),
          memoryTotal: fc.option(fc.nat(), { nil: null }),
          memoryFree: fc.option(fc.nat(), { nil: null }),
        }),
        { maxLength: 2 },
      ),
      docker: rec({ available: fc.boolean() }, { version: fc.constant('27.0.0'), error: short(20) }),
    }),
    offer: rec(
      {
        maxMemory: fc.option(fc.nat(), { nil: null }),
        maxTasks: fc.integer({ min: 1, max: 16 }),
        executors: fc.subarray(['docker', 'exec']),
      },
      { labels: dict, lostAfterMs: fc.nat() },
    ),
    running: fc.array(fc.record({ taskId: id, attempt: fc.integer({ min: 1, max: 5 }), memory: fc.nat() }), { maxLength: 3 }),
    reason: short(20),
  },
).map(toJ);

/** A task event, valid, for TASK (unknown to the controller) or naming another task than its topic. */
export const eventFields = {
  v: fc.constant(1),
  taskId: fc.oneof(fc.constant(TASK), id),
  attempt: fc.integer({ min: 1, max: 5 }),
  node: id,
  seq: fc.nat(),
  ts: fc.nat(),
};
export const eventBase = fc
  .oneof(
    rec({ ...eventFields, type: fc.constant('accepted') }),
    rec(
      { ...eventFields, type: fc.constant('progress'), phase: fc.constantFrom('pull', 'create', 'start'), message: short(30) },
      { current: fc.nat(), total: fc.nat() },
    ),
    rec({ ...eventFields, type: fc.constant('started') }, { ref: short(20) }),
    rec({ ...eventFields, type: fc.constant('log'), stream: fc.constantFrom('stdout', 'stderr'), data: short(60) }),
    rec({
      ...eventFields,
      type: fc.constant('result'),
      exitCode: fc.integer({ min: -1000, max: 1000 }),
      oomKilled: fc.boolean(),
      cancelled: fc.boolean(),
      startedAt: fc.nat(),
      finishedAt: fc.nat(),
    }),
    rec({ ...eventFields, type: fc.constant('failed'), code: short(20), message: short(40) }),
  )
  .map(toJ);

/** Specs that would be harmless even if one ever passed validation. */
export const harmlessSpec = fc.oneof(
  rec({ kind: fc.constant('exec'), argv: fc.constant(['true']) }, { env: dict, cwd: fc.constant('/') }),
  rec(
    { kind: fc.constant('docker'), image: fc.constant('cutter-fuzz/does-not-exist:never') },
    { cmd: fc.constant(['true']), env: dict, labels: dict, memoryLimit: fc.nat(), cpus: fc.constant(0.5) },
  ),
);
export const requestId = fc.string({ minLength: 1, maxLength: 64 });
export const reqFields = { v: fc.constant(1), id: requestId };
/** Requests: only valid ones are harmless (unknown node, not queued), and valid ones are discarded anyway. */
export const requestBase = fc
  .oneof(
    rec(
      {
        ...reqFields,
        op: fc.constant('submit'),
        spec: harmlessSpec,
        requirements: rec({ node: fc.constant('no-such-node-fuzz') }, { memory: fc.nat(), cpus: fc.constant(0) }),
      },
      {
        taskId: id,
        options: rec(
          { queue: fc.constant(false) },
          {
            restart: fc.constantFrom('never', 'on-lost'),
            maxAttempts: fc.integer({ min: 1, max: 3 }),
            priority: fc.integer({ min: -10, max: 10 }),
          },
        ),
      },
    ),
    rec({ ...reqFields, op: fc.constant('cancel'), taskId: id }, { graceMs: fc.integer({ min: 0, max: 600_000 }) }),
    rec({ ...reqFields, op: fc.constant('task.get'), taskId: id }),
    rec(
      { ...reqFields, op: fc.constant('task.list') },
      { states: fc.subarray(['queued', 'running', 'failed']), limit: fc.integer({ min: 1, max: 100 }) },
    ),
    rec({ ...reqFields, op: fc.constant('node.list') }),
    rec({ ...reqFields, op: fc.constant('node.drain'), node: fc.constant('no-such-node-fuzz'), drain: fc.boolean() }),
    rec({ ...reqFields, op: fc.constant('task.logs'), taskId: id }, { after: fc.record({ attempt: fc.nat(), seq: fc.nat() }) }),
  )
  .map(toJ);

/** Assignments: harmless (`true`, a run id the agent does not have), and valid ones are discarded anyway. */
export const assignBase = rec({
  v: fc.constant(1),
  taskId: id,
  attempt: fc.integer({ min: 1, max: 5 }),
  leaseExpiresAt: fc.nat(),
  spec: harmlessSpec,
  requirements: rec({}, { memory: fc.nat(), cpus: fc.constant(0) }),
  nodeRunId: fc.constant('fuzz-not-this-run'),
}).map(toJ);

/** Cancels for tasks that do not run on the agent: valid, logged as 'cancel for a task not running here'. */
export const cancelBase = rec(
  { v: fc.constant(1), taskId: id, attempt: fc.integer({ min: 1, max: 5 }) },
  { graceMs: fc.integer({ min: 0, max: 600_000 }) },
).map(toJ);

/** Acknowledgements of final events (never sent valid: the agent forgets acknowledged results silently). */
export const ackBase = rec({
  v: fc.constant(1),
  acks: fc.array(rec({ taskId: id, attempt: fc.integer({ min: 1, max: 5 }) }), { minLength: 1, maxLength: 4 }),
}).map(toJ);

/** A port announcement for the unknown task (never sent valid: the port proxy would act on it). */
export const portsBase = rec(
  {
    v: fc.constant(1),
    taskId: id,
    node: otherNode,
    attempt: fc.integer({ min: 1, max: 5 }),
    address: fc.constantFrom(null, '127.0.0.1'),
    ports: fc.array(
      fc.record({
        container: fc.integer({ min: 1, max: 65535 }),
        host: fc.integer({ min: 1, max: 65535 }),
        server: fc.integer({ min: 1, max: 65535 }),
      }),
      { maxLength: 3 },
    ),
    ts: fc.integer({ min: 0, max: 2 ** 41 }),
  },
  {},
).map(toJ);

// ---- mutations ------------------------------------------------------------------------------------

export type Gen = { kind: string; payload: Buffer };
export const utf8 = (kind: string, s: string): Gen => ({ kind, payload: Buffer.from(s, 'utf8') });
