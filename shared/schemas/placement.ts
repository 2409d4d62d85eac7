/**
 * What placement needs to know beyond memory and CPUs (issue 16, "Placement honours the node"):
 * a node's labels are matched by a task's constraints, its platform by the task's, its free disk
 * by the task's `disk`, its announced policy by the task's image and command. Every field is
 * optional on the wire: older agents and clients keep working (see controller/scheduler/node-fit.ts
 * for how an absent figure is judged).
 */
import { z } from 'zod';

const Bytes = z.number().int().nonnegative();

/**
 * An OCI platform as Docker names it (`docker run --platform linux/arm64`, `docker image inspect`
 * `Os`/`Architecture`/`Variant`): `os` `linux`, `architecture` `amd64`/`arm64`/`arm`/`386`/…,
 * `variant` `v7`/`v6`/`v8` (absent for amd64). See shared/platform.ts for the mappings.
 */
export const PlatformSchema = z.object({
  os: z.string().min(1).max(32),
  architecture: z.string().min(1).max(32),
  variant: z.string().min(1).max(16).optional(),
});

/** Label keys and values as a node's offer bounds them (OfferSchema `labels`). */
const LabelKey = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[^=!\s]+$/, 'a label key has no =, ! or spaces');

/**
 * One placement constraint (`cutter run --constraint gpu=rtx4090`), after Nomad's `constraint`
 * block with its `=` and `!=` operators: `=` needs the node's label `key` to equal `value`; `!=`
 * needs it to differ (a node without the label passes, as in Nomad).
 */
export const ConstraintSchema = z.object({
  key: LabelKey,
  op: z.enum(['=', '!=']),
  value: z.string().max(256),
});

/**
 * How much of the submitting machine's node must stay free for a local placement
 * (`--local-headroom`): a share of its memory (`percent`, of `capacity.memory.total`) or `bytes`.
 */
export const HeadroomSchema = z.union([z.object({ percent: z.number().min(0).max(100) }), z.object({ bytes: Bytes })]);

/**
 * What the node's execution policy admits (agent config `allowedImages`, `maxTaskMemory`,
 * `defaultTaskMemory`, `execAllowlist`; the rules of shared/policy.ts), announced so the
 * scheduler never places a task the agent would refuse. A list too long for the wire is left out
 * (the agent still enforces it at admit time).
 */
export const NodePolicySchema = z.object({
  /** Image patterns (`*` wildcards); empty = any image. */
  allowedImages: z.array(z.string().max(512)).max(128).optional(),
  /** Largest container memory limit accepted, bytes. */
  maxTaskMemory: Bytes.optional(),
  /** Memory limit given to containers that set none, bytes. */
  defaultTaskMemory: Bytes.optional(),
  /** Commands exec tasks may run (argv[0]); empty = any. Whether exec runs at all is `executors`. */
  execAllowlist: z.array(z.string().max(1024)).max(128).optional(),
});

/** Free space where the node keeps its data (`fs.statfs` of the agent's data dir), bytes. */
export const DiskSchema = z.object({
  free: Bytes,
  total: Bytes,
});

export type Platform = z.infer<typeof PlatformSchema>;
export type Constraint = z.infer<typeof ConstraintSchema>;
export type Headroom = z.infer<typeof HeadroomSchema>;
export type NodePolicy = z.infer<typeof NodePolicySchema>;
export type Disk = z.infer<typeof DiskSchema>;
