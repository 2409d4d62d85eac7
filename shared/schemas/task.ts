/**
 * Tasks: what to run (TaskSpec), where it may run (Requirements), the assignment sent to a
 * node, the events a node streams back and the retained TaskState the controller keeps.
 * Memory is in bytes, CPU in cores (fractions allowed), times in ms since the Unix epoch.
 */
import { z } from 'zod';
import { isJsonObject } from '../codec.js';
import { IdSchema } from '../topics.js';
import { ConstraintSchema, HeadroomSchema, PlatformSchema } from './placement.js';
import { VolumeNameSchema } from '../volumes.js';
import { IoSpecFields } from './io.js';

const Bytes = z.number().int().nonnegative();
const EnvSchema = z
  .record(
    z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^=\0]+$/, 'env names have no = or NUL'),
    z.string().max(32_768),
  )
  .default({});

/** One mount of a container (DockerSpec.mounts): `target` is absolute in the container. */
export const MountSchema = z.object({
  type: z.enum(['volume', 'bind']),
  source: z.string().min(1).max(4096),
  target: z.string().min(1).max(4096).startsWith('/'),
  readOnly: z.boolean().optional(),
});

/**
 * Log drivers a task may choose (`docker run --log-driver`): only those that write on the node
 * itself. A network driver (syslog, gelf, fluentd, splunk…) would make the node's engine dial an
 * address the task names. Names from Docker's "Configure logging drivers" page.
 */
export const LOG_DRIVERS = ['json-file', 'local', 'journald', 'none'] as const;
/** `--log-opt` keys a task may set: the json-file and local drivers' rotation options. */
export const LOG_OPTIONS = ['max-size', 'max-file', 'compress'] as const;

/** A Docker container to run; mirrors the `docker run` flags cutter accepts. */
export const DockerSpecSchema = z.object({
  kind: z.literal('docker'),
  image: z.string().min(1).max(512),
  /** Command and arguments (the image's CMD when empty). */
  cmd: z.array(z.string().max(32_768)).max(1_000).default([]),
  entrypoint: z.array(z.string().max(32_768)).max(100).optional(),
  env: EnvSchema,
  /** Container memory limit, bytes (HostConfig.Memory); none when absent. */
  memoryLimit: Bytes.optional(),
  /** CPU limit in cores (HostConfig.NanoCpus = cpus × 1e9). */
  cpus: z.number().positive().max(1024).optional(),
  workdir: z.string().max(4096).optional(),
  user: z.string().max(256).optional(),
  labels: z.record(z.string().max(256), z.string().max(4096)).default({}),
  /**
   * Container TCP ports to reach through the server (`cutter run -p SERVER:CONTAINER`): the node
   * publishes each on a free port of its own and the server proxies `server` to it
   * (shared/schemas/ports.ts).
   */
  ports: z
    .array(z.object({ container: z.number().int().min(1).max(65535), server: z.number().int().min(1).max(65535) }))
    .max(16)
    .optional(),
  /**
   * Attach stdin (`cutter run -i`, `docker run -i`): the container is created with OpenStdin and
   * StdinOnce and fed what the submitter streams on `nodes/N/stdin/T` (shared/schemas/stdin.ts).
   */
  stdin: z.boolean().optional(),
  /**
   * Allocate a TTY (`-t`, Docker's `Tty`): output is one raw stream (stderr merged into stdout, CRLF
   * line ends), the window size comes as stdin window-size frames; `rows`/`cols` are the size at
   * submit (applied right after the start).
   */
  tty: z.object({ rows: z.number().int().min(0).max(65535), cols: z.number().int().min(0).max(65535) }).optional(),
  /** The submitter credits what it has read of the output (`cutter run` attached; shared/schemas/output-credit.ts). */
  credit: z.boolean().optional(),
  /**
   * Directories of the node mounted into the container (`cutter run -v NAME:/data[:ro]`, `docker run
   * -v`/`--mount`): `volume` = the node's volume named `source` (placed only on nodes that have it),
   * `bind` = the host path `source`, refused unless the node's policy lists it (`--allow-host-path`).
   * The agent mounts either as HostConfig.Mounts type `bind` (a missing source fails, never created).
   */
  mounts: z.array(MountSchema).max(16).optional(),
  /**
   * The engine's log driver (`docker run --log-driver`, `--log-opt`: HostConfig.LogConfig). Absent:
   * the engine keeps no copy of the output if its default is json-file, since cutter keeps the
   * output itself; otherwise the node's own default (agent/executors/docker-logging.ts).
   */
  logging: z
    .object({ driver: z.enum(LOG_DRIVERS), options: z.partialRecord(z.enum(LOG_OPTIONS), z.string().min(1).max(64)).optional() })
    .optional(),
  ...IoSpecFields, // --input / --output (shared/schemas/io.ts): read-only and writable bind mounts at `target`
});

/** A command run without a shell on the node (only on agents started with --allow-exec). */
export const ExecSpecSchema = z.object({
  kind: z.literal('exec'),
  argv: z.array(z.string().max(32_768)).min(1).max(1_000),
  env: EnvSchema,
  cwd: z.string().max(4096).optional(),
  /** Memory limit, bytes, enforced by a cgroup on the node (the task is refused where none can). */
  memoryLimit: Bytes.optional(),
  /** CPU limit in cores (a CFS quota), enforced like `memoryLimit`. */
  cpus: z.number().positive().max(1024).optional(),
  /** `name`, `uid`, `name:group` or `uid:gid` to run as (like `docker run -u`); the agent must run as root. */
  user: z.string().max(256).optional(),
  /** Give the process a stdin pipe fed from `nodes/N/stdin/T` (`cutter run -i`; shared/schemas/stdin.ts); else /dev/null. */
  stdin: z.boolean().optional(),
  /**
   * Run it in a pseudo-terminal (`cutter run -t`, agent/executors/exec-pty.ts): output is one raw
   * stream (stderr merged into stdout, CRLF line ends), stdin (`stdin`) goes to the terminal, the
   * window size comes as stdin window-size frames; `rows`/`cols` are the size at submit (0: 24x80).
   */
  tty: z.object({ rows: z.number().int().min(0).max(65535), cols: z.number().int().min(0).max(65535) }).optional(),
  /** The submitter credits what it has read of the output (`cutter run` attached; shared/schemas/output-credit.ts). */
  credit: z.boolean().optional(),
  /**
   * The node's volumes the command works on (`cutter run -v NAME exec …`): each one's absolute path
   * is in `$CUTTER_VOLUME_<NAME>`, and `cwd` may be `NAME:SUBDIR` (inside the volume). Placed only
   * on nodes that have them.
   */
  volumes: z
    .array(z.object({ name: VolumeNameSchema }))
    .max(16)
    .optional(),
  ...IoSpecFields, // --input / --output (shared/schemas/io.ts): `$CUTTER_INPUT_<NAME>`, `$CUTTER_OUTPUT_<NAME>`
});

/**
 * A request to the node's Ollama server (Ollama docs/api.md): `generate` (POST /api/generate),
 * `chat` (POST /api/chat), `embed` (POST /api/embed), `embeddings` (the legacy POST
 * /api/embeddings: `prompt` → `embedding`), `pull` (POST /api/pull), `show` (POST /api/show),
 * `delete` (DELETE /api/delete) or `copy` (POST /api/copy: `model` is the source, `request.destination`
 * the new name), `create` (POST /api/create from an existing model: `model` is the `from` model,
 * `request.model` the new name, with `system`, `template`, `parameters` …) or `push` (POST /api/push
 * of `model`). `request` is that endpoint's JSON body as the caller gave it (prompt,
 * messages, options, format, keep_alive …); the agent sets `model` and `stream` itself and streams
 * Ollama's response objects back verbatim as `chunks` events.
 */
export const OllamaSpecSchema = z.object({
  kind: z.literal('ollama'),
  op: z.enum(['generate', 'chat', 'embed', 'embeddings', 'pull', 'show', 'delete', 'copy', 'create', 'push']),
  model: z.string().min(1).max(256),
  request: z.record(z.string(), z.unknown()).default({}),
  /**
   * The node may pull the model first when it does not have it (what `ollama run` does); the
   * scheduler then also considers nodes without the model whose free memory fits it.
   */
  pull: z.boolean().default(false),
});

export const TaskSpecSchema = z.discriminatedUnion('kind', [DockerSpecSchema, ExecSpecSchema, OllamaSpecSchema]);
export const TaskKindSchema = z.enum(['docker', 'exec', 'ollama']);
export const OllamaOpSchema = OllamaSpecSchema.shape.op;

/** An NVIDIA GPU's UUID as nvidia-smi prints it (`GPU-` then hex groups). */
export const GpuUuidSchema = z.string().regex(/^GPU-[0-9A-Za-z-]{1,120}$/, 'a GPU UUID (GPU-…)');

/**
 * GPUs a task needs (`cutter run --gpus N|all --gpu-memory SIZE`, `docker run --gpus`): `count`
 * GPUs (`all`: every GPU of the node, at least one) each with at least `memory` bytes of free
 * VRAM; or exactly the GPUs `devices` names (UUIDs). The controller reserves them per device
 * and names them in the assignment (`gpus`).
 */
export const GpuRequirementSchema = z.object({
  count: z.union([z.number().int().min(1).max(64), z.literal('all')]),
  /** Only these GPUs (then `count` is their number). */
  devices: z.array(GpuUuidSchema).min(1).max(64).optional(),
  /** Free VRAM each GPU must have, bytes. */
  memory: Bytes.optional(),
});

/** What the scheduler needs: explicit node (wins), memory to reserve (bytes), CPU cores. */
export const RequirementsSchema = z.object({
  node: IdSchema.optional(),
  memory: Bytes.default(0),
  cpus: z.number().nonnegative().max(1024).default(0),
  /** Node labels the task needs (`--constraint key=value`, `key!=value`), all of them; absent = any node. */
  constraints: z.array(ConstraintSchema).max(32).optional(),
  /** The platform the task's image or command is built for (`--platform linux/arm64`); absent = any. */
  platform: PlatformSchema.optional(),
  /** Free disk the node must have for the task (`--disk 10g`, Nomad's ephemeral_disk), bytes. */
  disk: z.number().int().nonnegative().optional(),
  /** The submitting machine's id (shared/machine-id.ts), for `preferLocal`. */
  machineId: z.string().max(128).optional(),
  /** Prefer the submitting machine's node while it keeps `localHeadroom` (`--prefer-local`); absent = the server's default. */
  preferLocal: z.boolean().optional(),
  /** Memory the local node must keep free for `preferLocal`; absent = the server's default. */
  localHeadroom: HeadroomSchema.optional(),
  /** GPUs to reserve; absent: none. */
  gpus: GpuRequirementSchema.optional(),
});

/**
 * What happens to a task after an attempt ends without success:
 * - `never`: nothing; a lost attempt ends the task as `lost`.
 * - `on-lost` (default): a new attempt when the node was lost (died, partitioned, lease expired,
 *   agent shut down), never after the task's own failure.
 * - `on-failure`: also after a non-zero exit code, an OOM kill or a start failure.
 * - `always`: also after success (run again until `maxAttempts`).
 * Never after a cancel. Attempts are spaced by an exponential backoff (1 s, 2 s, 4 s … 60 s);
 * the first retry after a lost attempt (a node failure) is immediate.
 */
export const RestartPolicySchema = z.enum(['never', 'on-lost', 'on-failure', 'always']);

/** Scheduling options of one task; all optional on submit. Durations in ms. */
export const TaskOptionsSchema = z.object({
  restart: RestartPolicySchema.default('on-lost'),
  /** Attempts in all, the first included. */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /** Wait in the queue when no node fits now; false = fail at once with the reason per node. */
  queue: z.boolean().default(true),
  /** Bounds queueing and running together, from submission; null = no limit. */
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(365 * 24 * 3600 * 1000)
    .nullable()
    .default(null),
  /** How long a disconnected node may keep the task before it is lost; null = the node's own window. */
  lostAfterMs: z
    .number()
    .int()
    .nonnegative()
    .max(30 * 24 * 3600 * 1000)
    .nullable()
    .default(null),
  /** Higher runs first; equal priorities run in submission order. */
  priority: z.number().int().min(-1000).max(1000).default(0),
});

/**
 * Acknowledgement of final events (`result`, `failed`) on `nodes/{node}/ack` (controller → agent,
 * QoS 1), sent only once the controller has committed what the event changed (or found nothing to
 * change: a duplicate, an unknown task). Until then the agent keeps the event and sends it again.
 */
export const AckSchema = z.object({
  v: z.literal(1),
  acks: z
    .array(z.object({ taskId: IdSchema, attempt: z.number().int().positive() }))
    .min(1)
    .max(1_000),
});

/**
 * A JSON object with any members: one of Ollama's response objects in a `chunks` event. Checked to
 * be an object and no further: the payload was bounded (size, depth, width: shared/limits.ts
 * `scanJson`) and built by JSON.parse, so its keys are strings already, and `z.record` copied every
 * member of every chunk, twice per event in the server (the controller and the Ollama API each
 * decode it): 0.7 µs per chunk against 0.1 here (bench/profile.md, "Ollama API"). The protocol
 * document gives it as `{"type": "object"}` (scripts/protocol-doc/schema-doc.ts).
 */
export const JsonObjectSchema = z.custom<Record<string, unknown>>(isJsonObject, { message: 'must be a JSON object' });

const EventBase = {
  v: z.literal(1),
  taskId: IdSchema,
  attempt: z.number().int().positive(),
  node: IdSchema,
  /**
   * Increases with every event of one attempt, so followers can order and de-duplicate; not dense:
   * an attempt re-adopted by a restarted agent continues from that agent's clock (ms epoch).
   */
  seq: z.number().int().nonnegative(),
  ts: z.number().int().nonnegative(),
};

/** Output of a task (`log` event); also sent as a binary frame (shared/log-frame.ts). */
export const LogEventSchema = z.object({
  ...EventBase,
  type: z.literal('log'),
  stream: z.enum(['stdout', 'stderr']),
  /**
   * How `data` holds the output: `base64` = the stream's raw bytes, base64-encoded (what agents
   * send: binary output stays exact); absent = UTF-8 text (agents before it; still accepted).
   * Read it with `logBytes` / `logText` of shared/log-data.ts, never `data` directly.
   */
  encoding: z.literal('base64').optional(),
  /** A batch of one stream's output in order, not necessarily whole lines (≤ 768 KiB of raw bytes). */
  data: z.string().max(1_048_576),
});

/** Events an agent streams on `tasks/{task}/events`. */
export const TaskEventSchema = z.discriminatedUnion('type', [
  z.object({ ...EventBase, type: z.literal('accepted') }),
  z.object({
    ...EventBase,
    type: z.literal('progress'),
    phase: z.enum(['pull', 'create', 'start']),
    message: z.string().max(1_000),
    /** Bytes done and total (pulls), when known. */
    current: Bytes.optional(),
    total: Bytes.optional(),
  }),
  z.object({
    ...EventBase,
    type: z.literal('started'),
    ref: z.string().max(200).optional(),
    /** The agent holds this attempt's output to the submitter's credit (shared/schemas/output-credit.ts). */
    credit: z.boolean().optional(),
  }),
  LogEventSchema,
  z.object({
    ...EventBase,
    type: z.literal('chunks'),
    /**
     * Structured output of an ollama task: Ollama's response objects (NDJSON lines of
     * /api/generate, /api/chat, /api/pull; the one /api/embed object) in order, batched by time.
     */
    chunks: z.array(JsonObjectSchema).min(1).max(100_000),
  }),
  z.object({
    ...EventBase,
    type: z.literal('result'),
    exitCode: z.number().int(),
    oomKilled: z.boolean(),
    /** True when the run ended because cutter stopped it (cancel). */
    cancelled: z.boolean(),
    startedAt: z.number().int().nonnegative(),
    finishedAt: z.number().int().nonnegative(),
  }),
  z.object({
    ...EventBase,
    type: z.literal('failed'),
    code: z.string().max(64),
    message: z.string().max(4_000),
    /** The exit code a shell would give (127 COMMAND_NOT_FOUND, 126 COMMAND_NOT_INVOKABLE); absent for other failures. */
    exitCode: z.number().int().optional(),
  }),
]);

/**
 * `unknown`: its node disconnected; the task may still be running there. It returns to `running`
 * if the node comes back within its lost-after window, else the attempt is lost.
 */
export const TaskStatusSchema = z.enum(['queued', 'assigned', 'running', 'unknown', 'succeeded', 'failed', 'cancelled', 'lost']);
export const TERMINAL_STATUSES = ['succeeded', 'failed', 'cancelled', 'lost'] as const;

/** Retained TaskState published by the controller on `tasks/{task}/state`. */
export const TaskStateSchema = z.object({
  v: z.literal(1),
  taskId: IdSchema,
  state: TaskStatusSchema,
  kind: TaskKindSchema,
  /** Image (docker) or argv[0] (exec), for listings. */
  summary: z.string().max(512),
  node: IdSchema.nullable(),
  attempt: z.number().int().nonnegative(),
  requirements: RequirementsSchema,
  options: TaskOptionsSchema,
  /** One line on why the scheduler chose the node. */
  placement: z.string().max(2_000).nullable(),
  /** Why the task is in its state now: what it waits for when queued, its node when unknown. */
  reason: z.string().max(4_000).nullable(),
  createdAt: z.number().int().nonnegative(),
  updatedAt: z.number().int().nonnegative(),
  assignedAt: z.number().int().nonnegative().nullable(),
  startedAt: z.number().int().nonnegative().nullable(),
  finishedAt: z.number().int().nonnegative().nullable(),
  exitCode: z.number().int().nullable(),
  oomKilled: z.boolean(),
  error: z.object({ code: z.string().max(64), message: z.string().max(4_000) }).nullable(),
  submittedBy: z.string().max(128),
  /** The node volumes the task mounts (`-v VOLUME…`), so `cutter volume rm` can refuse one in use; absent: none (or stored before it was kept). */
  volumes: z.array(VolumeNameSchema).max(32).optional(),
});

export type DockerSpec = z.infer<typeof DockerSpecSchema>;
export type ExecSpec = z.infer<typeof ExecSpecSchema>;
export type Mount = z.infer<typeof MountSchema>;
export type OllamaSpec = z.infer<typeof OllamaSpecSchema>;
export type OllamaOp = z.infer<typeof OllamaOpSchema>;
export type TaskSpec = z.infer<typeof TaskSpecSchema>;
export type TaskKind = z.infer<typeof TaskKindSchema>;
export type Requirements = z.infer<typeof RequirementsSchema>;
export type GpuRequirement = z.infer<typeof GpuRequirementSchema>;
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;
export type TaskOptions = z.infer<typeof TaskOptionsSchema>;
export type Ack = z.infer<typeof AckSchema>;
export type TaskEvent = z.infer<typeof TaskEventSchema>;
export type TaskEventType = TaskEvent['type'];
export type TaskStatus = z.infer<typeof TaskStatusSchema>;
export type TaskState = z.infer<typeof TaskStateSchema>;

/** True for succeeded, failed, cancelled and lost. */
export function isTerminal(status: TaskStatus): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}
