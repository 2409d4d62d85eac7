/**
 * NodeStatus: what an agent announces, retained, on `cutter/v1/nodes/{node}/status`.
 * All memory figures are bytes; times are ms since the Unix epoch on the agent's clock
 * (the controller judges freshness by its own receive time, so clock skew does not matter).
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { DiskSchema, NodePolicySchema, PlatformSchema } from './placement.js';
import { VolumeNameSchema } from '../volumes.js';
import { MAX_VOLUMES } from './volumes.js';
import { LendingStatusSchema } from './lending.js';

const Bytes = z.number().int().nonnegative();

/** One GPU as seen by the probe; memory in bytes, null when the driver does not say. */
export const GpuSchema = z.object({
  vendor: z.string().max(200),
  model: z.string().max(200),
  memoryTotal: Bytes.nullable(),
  memoryFree: Bytes.nullable(),
  /** NVIDIA's `GPU-…` UUID (nvidia-smi `uuid`): how cutter reserves and hands out a GPU. Absent: not assignable (other vendors, older agents). */
  uuid: z
    .string()
    .regex(/^GPU-[0-9A-Za-z-]{1,120}$/)
    .optional(),
  /** nvidia-smi `index` (may change at each boot: shown, never used to assign). */
  index: z.number().int().nonnegative().max(1_000).optional(),
  /** nvidia-smi `pci.bus_id`, e.g. `00000000:01:00.0`. */
  pciBusId: z.string().max(64).optional(),
  /** nvidia-smi `driver_version`. */
  driverVersion: z.string().max(64).optional(),
  /** Memory in use, bytes (by any program); null when the driver does not say. */
  memoryUsed: Bytes.nullable().optional(),
  /** nvidia-smi `utilization.gpu`, 0-100 (%); null when the driver does not say (often under WSL2). */
  utilizationPercent: z.number().min(0).max(100).nullable().optional(),
  /** nvidia-smi `temperature.gpu`, °C; null when the driver does not say. */
  temperatureC: z.number().min(-100).max(300).nullable().optional(),
});

/**
 * How the agent's NVIDIA probe went (agent/gpus.ts): `ok`, or why it found no GPU it can hand out
 * (`not-installed`, `no-driver` exit 9, `no-nvml` exit 12, `reboot-needed` exit 18, `failed`).
 */
export const NvidiaProbeSchema = z.object({
  state: z.enum(['ok', 'not-installed', 'no-driver', 'no-nvml', 'reboot-needed', 'failed']),
  /** What is wrong and what to do, one line for the node's owner. */
  error: z.string().max(500).optional(),
});

/** Docker engine reachability on the node. */
export const DockerInfoSchema = z.object({
  available: z.boolean(),
  version: z.string().max(100).optional(),
  apiVersion: z.string().max(20).optional(),
  error: z.string().max(500).optional(),
  /** Containers running on the engine now, cutter's and others' (`GET /containers/json`); absent from older agents. */
  containersRunning: z.number().int().nonnegative().optional(),
  /** The engine's platform (`GET /info` OSType and Architecture, mapped to Docker's names: x86_64 → amd64); absent from older agents. */
  platform: PlatformSchema.optional(),
  /** Free bytes of the filesystem of the engine's root dir (`GET /info` DockerRootDir), where images and containers go; absent when unknown. */
  diskFree: Bytes.optional(),
  /**
   * Why this engine cannot give containers GPUs (it refused a GPU device request: no NVIDIA
   * runtime); the node offers no GPU to docker tasks while it is set. Absent: not known to fail.
   */
  gpuError: z.string().max(500).optional(),
});

/**
 * One model an Ollama server has pulled, from `GET /api/tags` (Ollama docs/api.md "List Local
 * Models": `name`, `size` in bytes, `digest`, `details.family`, `details.parameter_size`,
 * `details.quantization_level`).
 */
export const OllamaModelSchema = z.object({
  name: z.string().min(1).max(256),
  /** Size on disk, bytes: a lower bound on the memory the model needs when loaded. */
  size: Bytes,
  digest: z.string().max(128).optional(),
  family: z.string().max(64).optional(),
  /** e.g. `8.0B`, `70.6B`. */
  parameterSize: z.string().max(32).optional(),
  /** e.g. `Q4_0`, `Q4_K_M`. */
  quantization: z.string().max(32).optional(),
  /** `modified_at` (RFC 3339). */
  modifiedAt: z.string().max(64).optional(),
  /** `details.format`, e.g. `gguf`. */
  format: z.string().max(32).optional(),
});

/**
 * A model loaded in memory now, from `GET /api/ps` (Ollama docs/api.md "List Running Models":
 * `size` and `size_vram` in bytes, `expires_at` RFC 3339).
 */
export const OllamaLoadedModelSchema = z.object({
  name: z.string().min(1).max(256),
  /** Memory the loaded model takes (RAM + VRAM), bytes. */
  size: Bytes,
  /** Part of `size` held in GPU memory, bytes (less than `size` = partly on the CPU). */
  sizeVram: Bytes,
  /** When Ollama unloads it if unused (RFC 3339, Ollama's clock). */
  expiresAt: z.string().max(64).optional(),
});

/** The node's Ollama server as the agent last saw it. */
export const OllamaInfoSchema = z.object({
  available: z.boolean(),
  /** `GET /api/version`. */
  version: z.string().max(50).optional(),
  error: z.string().max(500).optional(),
  models: z.array(OllamaModelSchema).max(2_000).default([]),
  loaded: z.array(OllamaLoadedModelSchema).max(200).default([]),
});

/**
 * What exec tasks can be held to on the node (agent/executors/cgroup-find.ts): a task asking for
 * a limit the node cannot enforce is not placed there (and refused if it is). Absent from agents
 * that do not run exec tasks and from older agents, which enforced no limit.
 */
export const ExecInfoSchema = z.object({
  limits: z.object({ memory: z.boolean(), cpus: z.boolean() }),
  /** How: `cgroup v2`, `cgroup v1`; absent when neither limit holds. */
  via: z.string().max(50).optional(),
  /** Why a limit cannot be enforced, one line for the node's owner. */
  why: z.string().max(1_000).optional(),
  /** It runs exec tasks in a pseudo-terminal (`-t`, agent/executors/exec-pty.ts); absent from older agents, which ran them without one. */
  tty: z.boolean().optional(),
});

/** Live capacity. `memory.available` is MemAvailable (not MemFree: it counts reclaimable cache). */
export const CapacitySchema = z.object({
  cpu: z.object({
    cores: z.number().int().positive(),
    /** Current load over all cores, 0-100 (%). */
    loadPercent: z.number().min(0).max(100),
  }),
  memory: z.object({ total: Bytes, available: Bytes }),
  gpus: z.array(GpuSchema).max(64),
  docker: DockerInfoSchema,
  /** Absent when the agent does not look for Ollama (older agents). */
  ollama: OllamaInfoSchema.optional(),
  /** Absent when the node runs no exec tasks, or its agent is older. */
  exec: ExecInfoSchema.optional(),
  /** Free and total bytes of the filesystem of the agent's data dir (`fs.statfs`); absent from older agents. */
  disk: DiskSchema.optional(),
  /** How the NVIDIA probe went (absent from older agents). */
  nvidia: NvidiaProbeSchema.optional(),
});

/** What the node's owner lets cutter use (a notebook is also someone's computer). */
export const OfferSchema = z.object({
  /** Memory cutter may commit to tasks, bytes; null = all of it. */
  maxMemory: Bytes.nullable(),
  /** Maximum concurrent tasks. */
  maxTasks: z.number().int().positive(),
  /** Executors this node runs: `docker` when an engine answers, `ollama` when an Ollama server answers, `exec` only with --allow-exec. */
  executors: z.array(z.enum(['docker', 'exec', 'ollama'])).max(8),
  labels: z.record(z.string().max(64), z.string().max(256)).default({}),
  /** How long this node may be disconnected before its tasks are lost and rescheduled, ms (0 = at once). */
  lostAfterMs: z.number().int().nonnegative().default(0),
  /** The agent's own platform (`process.arch` in Docker's names), what exec tasks run on; absent from older agents. */
  platform: PlatformSchema.optional(),
  /** What the node's execution policy admits (shared/policy.ts); absent from older agents, which enforce it only at admit time. */
  policy: NodePolicySchema.optional(),
  /** The machine's stable id (shared/machine-id.ts: a keyed hash of /etc/machine-id), for `--prefer-local`; absent when unknown. */
  machineId: z.string().max(128).optional(),
});

/** A task the node is running (or starting) now, with the memory committed to it in bytes. */
export const RunningTaskSchema = z.object({
  taskId: IdSchema,
  attempt: z.number().int().positive(),
  memory: Bytes,
  /** The task's kind (the scheduler balances ollama requests by how many each node has in flight). */
  kind: z.enum(['docker', 'exec', 'ollama']).optional(),
  /** UUIDs of the GPUs assigned to it (Assignment `gpus`); absent when none. */
  gpus: z.array(z.string().max(128)).max(64).optional(),
});

/** A MAC as cutter writes it: six lower-case hex pairs joined by `:` (`02:fc:00:00:00:01`). */
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** A dotted-quad IPv4 address (each part 0-255, no leading zeros). */
export const IPV4_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * How to wake the node when it sleeps (Wake-on-LAN, shared/wol.ts): the MAC of the interface the
 * agent reaches the broker through and that interface's IPv4 directed broadcast address.
 */
export const WakeInfoSchema = z.object({
  /** Lower-case, `:`-separated (`02:fc:00:00:00:01`). */
  mac: z.string().regex(MAC_PATTERN, 'six lower-case hex pairs joined by :'),
  /** Dotted-quad IPv4 (`192.168.1.255`). */
  broadcast: z.string().regex(IPV4_PATTERN, 'an IPv4 address'),
});

export const NodeStateSchema = z.enum(['online', 'draining', 'offline']);

/**
 * NodeStatus payload. `capacity`, `offer` and `running` are absent in the retained last will
 * (which is fixed at connect time and only says the node is offline).
 */
export const NodeStatusSchema = z.object({
  v: z.literal(1),
  node: IdSchema,
  state: NodeStateSchema,
  version: z.string().max(50),
  /** Increases with every status the agent publishes during one run. */
  seq: z.number().int().nonnegative(),
  ts: z.number().int().nonnegative(),
  /** The agent's heartbeat interval, ms: the controller marks the node offline after 2.5 intervals of silence. */
  heartbeatMs: z.number().int().positive(),
  hostname: z.string().max(255).optional(),
  /** Random id of this agent process (new at every start): assignments meant for an earlier run are refused. */
  runId: z.string().max(64).optional(),
  capacity: CapacitySchema.optional(),
  offer: OfferSchema.optional(),
  running: z.array(RunningTaskSchema).max(10_000).default([]),
  /** Its MAC and broadcast address, for Wake-on-LAN; absent when unknown (and from older agents, and in the last will). */
  wake: WakeInfoSchema.optional(),
  /** Why the node is offline (last will, shutdown). */
  reason: z.string().max(500).optional(),
  /**
   * Attempts that ended here whose final event (`result`/`failed`) the controller has not acknowledged
   * yet (see Ack): they count as present, not lost, until then. Absent from older agents.
   */
  finished: z
    .array(z.object({ taskId: IdSchema, attempt: z.number().int().positive() }))
    .max(1_000)
    .optional(),
  /** The node's volumes by name (`cutter volume`), for placing tasks that mount one; absent from older agents and with volumes off. */
  volumes: z.array(VolumeNameSchema).max(MAX_VOLUMES).optional(),
  /** Host directories its policy lets tasks mount (`--allow-host-path`); absent = none. */
  hostPaths: z.array(z.string().max(4096)).max(32).optional(),
  /** Its lending state (issue 17, shared/schemas/lending.ts): absent when it has no lending policy, and from older agents. */
  lending: LendingStatusSchema.optional(),
});

export type Gpu = z.infer<typeof GpuSchema>;
export type NvidiaProbeInfo = z.infer<typeof NvidiaProbeSchema>;
export type DockerInfo = z.infer<typeof DockerInfoSchema>;
export type OllamaModel = z.infer<typeof OllamaModelSchema>;
export type OllamaLoadedModel = z.infer<typeof OllamaLoadedModelSchema>;
export type OllamaInfo = z.infer<typeof OllamaInfoSchema>;
export type Capacity = z.infer<typeof CapacitySchema>;
export type Offer = z.infer<typeof OfferSchema>;
export type RunningTask = z.infer<typeof RunningTaskSchema>;
export type WakeInfo = z.infer<typeof WakeInfoSchema>;
export type NodeState = z.infer<typeof NodeStateSchema>;
export type NodeStatus = z.infer<typeof NodeStatusSchema>;
