/**
 * Lending on the wire (issue 17): the state a node announces in its NodeStatus (`lending`, optional:
 * absent from older agents and from nodes without a lending policy) and the message that changes a
 * node's policy at runtime (`cutter nodes policy`, the Home Assistant switch and select), published
 * on `cutter/v1/nodes/{node}/lending/set` by an admin or the server (broker/acl.ts) and read only
 * by that node's agent. Bytes, ms, ms since the Unix epoch.
 */
import { z } from 'zod';
import { LendingPatchSchema, LendingPolicySchema } from '../lending.js';

/** `lending`: takes work; `suspended`: a condition fails and its tasks are paused; `closed`: takes no work. */
export const LendingStateSchema = z.enum(['lending', 'suspended', 'closed']);

/** What the agent last read of its owner's side (shared/lending.ts OwnerSample). */
export const OwnerInfoSchema = z.object({
  onBattery: z.boolean().nullable(),
  idleSec: z.number().nonnegative().nullable(),
  idleSource: z.string().max(200),
  ownerCpuPercent: z.number().min(0).max(100).nullable(),
  freeMemory: z.number().int().nonnegative().nullable(),
});

/** NodeStatus `lending`. */
export const LendingStatusSchema = z.object({
  state: LendingStateSchema,
  /** Why it is not lending (`on battery`, `outside mon-fri 22:00-07:00`); shown as `suspended: on battery`. */
  reason: z.string().max(300).optional(),
  /** When the state last changed, ms epoch (agent's clock). */
  since: z.number().int().nonnegative(),
  /** The policy in force. */
  policy: LendingPolicySchema,
  /** How often the agent samples, ms. */
  sampleMs: z.number().int().positive(),
  /** The last sample. */
  owner: OwnerInfoSchema.optional(),
  /** Attempts paused now (`taskId:attempt`). */
  suspended: z.array(z.string().max(200)).max(10_000).optional(),
  /** Id of the last LendingSet the agent applied (so `cutter nodes policy` knows its change took). */
  applied: z.string().max(64).optional(),
});

/** A change of a node's lending policy; `reset` first goes back to the agent's own (flags, file). */
export const LendingSetSchema = z.object({
  v: z.literal(1),
  /** Chosen by the sender; echoed as NodeStatus `lending.applied`. */
  id: z.string().min(1).max(64),
  patch: LendingPatchSchema,
  reset: z.boolean().optional(),
});

export type LendingState = z.infer<typeof LendingStateSchema>;
export type OwnerInfo = z.infer<typeof OwnerInfoSchema>;
export type LendingStatus = z.infer<typeof LendingStatusSchema>;
export type LendingSet = z.infer<typeof LendingSetSchema>;
