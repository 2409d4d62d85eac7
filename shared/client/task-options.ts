/**
 * The one place the task options of every client that submits (the CLI's `run`, `cutter ollama`,
 * the Ollama-compatible API, the MCP server, the pipeline runner) get their defaults, and the
 * defaults of following a task (shared/client/run-task.ts).
 *
 * Task options by kind (TaskOptions, shared/schemas/task.ts; durations in ms):
 *
 * | kind           | restart   | maxAttempts | queue            | timeoutMs | lostAfterMs        |
 * | -------------- | --------- | ----------- | ---------------- | --------- | ------------------ |
 * | docker, exec   | `on-lost` | 3           | yes              | none      | the node's window  |
 * | ollama         | `never`   | 1           | only when busy   | none      | 0 (lost at once)   |
 *
 * An ollama task streams its answer to a caller as it is generated, and a stream half-delivered
 * cannot be replayed: it is never retried, and a lost node ends it at once. It waits in the queue
 * only while the nodes that could serve it are busy (as Ollama's own request queue does); when no
 * node could take it at all, the submit fails at once with the reason per node (NO_FIT). Whatever a
 * caller sets explicitly (a flag, a pipeline step's `timeout`) overrides these. There is no separate
 * queue timeout: `timeoutMs` bounds queueing and running together, from submission.
 */
import { CutterError } from '../errors.js';
import { type Rejection, type TaskOptions, TaskOptionsSchema, type TaskSpec } from '../schemas/index.js';

/**
 * How long the broker may be unreachable, or the controller's retained status say `offline`,
 * before a follow gives up with `end: 'disconnected'`: 30 s, ms. Long enough for a server restart
 * (SQLite recovery, the embedded broker back on its port); the task itself runs on regardless.
 */
export const CONNECTION_GRACE_MS = 30_000;

/** Queueing of a submit: yes, no (NO_FIT at once), or only when the nodes that fit are busy. */
export type QueueMode = 'yes' | 'no' | 'when-busy';

/** Task options plus how to queue; what `runTask` submits. */
export interface SubmitOptions {
  options: TaskOptions;
  queue: QueueMode;
}

/**
 * The options a task of this spec is submitted with: the defaults of its kind (table above), then
 * `overrides` (fields left undefined keep the default).
 * @param overrides `queue` may be a QueueMode or a boolean (`--no-queue`).
 */
export function taskOptionsFor(
  spec: Pick<TaskSpec, 'kind'>,
  overrides: Partial<Omit<TaskOptions, 'queue'>> & { queue?: boolean | QueueMode } = {},
): SubmitOptions {
  const base: TaskOptions =
    spec.kind === 'ollama' ? TaskOptionsSchema.parse({ restart: 'never', maxAttempts: 1, lostAfterMs: 0 }) : TaskOptionsSchema.parse({});
  const set = Object.fromEntries(Object.entries(overrides).filter(([k, v]) => v !== undefined && k !== 'queue'));
  const q = overrides.queue;
  const queue: QueueMode = q === undefined ? (spec.kind === 'ollama' ? 'when-busy' : 'yes') : q === true ? 'yes' : q === false ? 'no' : q;
  return { options: { ...base, ...set, queue: queue === 'yes' }, queue };
}

/**
 * True when a NO_FIT says that nodes fit the task but are busy now (so `when-busy` queues it).
 * Reads the scheduler's per-node rejections (`details`, RejectionSchema).
 */
export function busyOnly(err: unknown): boolean {
  if (!(err instanceof CutterError) || err.code !== 'NO_FIT') return false;
  const rejections = err.details as Rejection[] | undefined;
  return Boolean(rejections?.some((r) => r.code === 'max-tasks'));
}
