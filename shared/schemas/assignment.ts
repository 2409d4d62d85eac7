/**
 * What the controller tells an agent about one attempt: run it (`nodes/{node}/assign`) or stop it
 * (`nodes/{node}/cancel`). The task's own shapes (spec, requirements) are in ./task.ts.
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { GpuUuidSchema, RequirementsSchema, TaskSpecSchema } from './task.js';

/** Assignment published by the controller on `nodes/{node}/assign`. */
export const AssignmentSchema = z.object({
  v: z.literal(1),
  taskId: IdSchema,
  attempt: z.number().int().positive(),
  /** The agent must accept before this time (ms epoch, controller clock) or the task is reassigned. */
  leaseExpiresAt: z.number().int().nonnegative(),
  spec: TaskSpecSchema,
  requirements: RequirementsSchema,
  /**
   * The node's runId when the controller placed the task: an agent started since (a persistent
   * session redelivers what was queued for the previous run) refuses it with NODE_RESTARTED.
   */
  nodeRunId: z.string().max(64).nullable().default(null),
  /**
   * The GPUs the controller reserved for this attempt (UUIDs, `requirements.gpus`): docker gets them
   * as `HostConfig.DeviceRequests` DeviceIDs, exec as `CUDA_VISIBLE_DEVICES`. Absent: none.
   */
  gpus: z.array(GpuUuidSchema).max(64).optional(),
  /**
   * The controller reads output as binary frames (shared/log-frame.ts): the agent sends the
   * attempt's `log` events so. Absent (an older controller): JSON events with base64 `data`.
   */
  outputFrames: z.boolean().optional(),
});

/** Cancellation published by the controller on `nodes/{node}/cancel`. */
export const CancelSchema = z.object({
  v: z.literal(1),
  taskId: IdSchema,
  attempt: z.number().int().positive(),
  /** How long to wait after SIGTERM before SIGKILL, ms. */
  graceMs: z.number().int().nonnegative().max(600_000).default(3_000),
  /**
   * Why a node is told to stop work it did not ask to stop (fencing): the controller does not know
   * the task (`unknown-task`) or no longer wants this attempt there (`stale-attempt`). Absent for a
   * user's cancel or a timeout. The agent stops that attempt and carries on with the rest.
   */
  reason: z.enum(['unknown-task', 'stale-attempt']).optional(),
});

export type Assignment = z.infer<typeof AssignmentSchema>;
export type Cancel = z.infer<typeof CancelSchema>;
