/**
 * NodeStatus: what an agent announces, retained, on `cutter/v1/nodes/{node}/status`.
 * All memory figures are bytes; times are ms since the Unix epoch on the agent's clock
 * (the controller judges freshness by its own receive time, so clock skew does not matter).
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';

const Bytes = z.number().int().nonnegative();

/** One GPU as seen by the probe; memory in bytes, null when the driver does not say. */
export const GpuSchema = z.object({
  vendor: z.string().max(200),
  model: z.string().max(200),
  memoryTotal: Bytes.nullable(),
  memoryFree: Bytes.nullable(),
});

/** Docker engine reachability on the node. */
export const DockerInfoSchema = z.object({
  available: z.boolean(),
  version: z.string().max(100).optional(),
  apiVersion: z.string().max(20).optional(),
  error: z.string().max(500).optional(),
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
});

/** What the node's owner lets cutter use (a notebook is also someone's computer). */
export const OfferSchema = z.object({
  /** Memory cutter may commit to tasks, bytes; null = all of it. */
  maxMemory: Bytes.nullable(),
  /** Maximum concurrent tasks. */
  maxTasks: z.number().int().positive(),
  /** Executors this node runs: `docker` when an engine answers, `exec` only with --allow-exec. */
  executors: z.array(z.enum(['docker', 'exec'])).max(8),
  labels: z.record(z.string().max(64), z.string().max(256)).default({}),
  /** How long this node may be disconnected before its tasks are lost and rescheduled, ms (0 = at once). */
  lostAfterMs: z.number().int().nonnegative().default(0),
});

/** A task the node is running (or starting) now, with the memory committed to it in bytes. */
export const RunningTaskSchema = z.object({
  taskId: IdSchema,
  attempt: z.number().int().positive(),
  memory: Bytes,
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
  /** Why the node is offline (last will, shutdown). */
  reason: z.string().max(500).optional(),
});

export type Gpu = z.infer<typeof GpuSchema>;
export type DockerInfo = z.infer<typeof DockerInfoSchema>;
export type Capacity = z.infer<typeof CapacitySchema>;
export type Offer = z.infer<typeof OfferSchema>;
export type RunningTask = z.infer<typeof RunningTaskSchema>;
export type NodeState = z.infer<typeof NodeStateSchema>;
export type NodeStatus = z.infer<typeof NodeStatusSchema>;
