/**
 * Why the scheduler ruled a node out, as data: a stable `code` plus the numbers behind it (bytes,
 * ms, counts). Words are made from it in one place only, shared/reasons.ts `formatRejection()`,
 * where a reason is shown (CLI, the task's waiting reason, the Ollama API's error text, logs);
 * code that needs to know why (metrics, the Ollama API's queue-or-fail choice) reads the code.
 * The codes follow the scheduler's checks in controller/scheduler/feasibility.ts and ollama.ts.
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';

/**
 * - `unknown-node`: the node named with `--node` never joined.
 * - `offline`: the node said so, its last will fired or the controller marked it down (`detail`: why).
 * - `draining`: the node drains by its own word; `drained`: by `cutter nodes drain`.
 * - `stale-heartbeat`: no heartbeat for `silentMs`.
 * - `unannounced`: no capacity or offer announced yet.
 * - `no-docker` / `no-ollama` / `no-exec`: the executor the task needs is missing (`detail`: the probe's error).
 * - `exec-limits`: the exec task asks for a memory or CPU limit the node cannot enforce (`detail`: which, and why).
 * - `exec-tty`: the exec task asks for a TTY (`-t`) and the node's agent cannot give it one (`detail`: why).
 * - `max-tasks`: `running` of at most `max` tasks are running or placed there.
 * - `cpus`: `needed` CPUs, the node has `free` cores.
 * - `memory`: `needed` bytes, `free` bytes free (`offered`, `available` and `held` bytes besides).
 * - `model-missing`: the node does not have `model` and may not pull it.
 * - `model-too-big`: `model` of `needed` bytes fits neither `free` bytes of memory nor `gpuFree` bytes on a GPU
 *   (`onDisk`: the node has it, else it would pull it).
 * - `placement-rule`: the Ollama placement file's `rule` sends `model` to other nodes.
 * - `constraint`: the task's constraint `wanted` (`gpu=rtx4090`) fails on the node's label, which is `has` (absent: no such label).
 * - `platform`: the task is for platform `wanted` (`linux/arm64`), the node is `has` (`detail`: when the node does not say).
 * - `disk`: `needed` bytes of free disk, the node has `free` (`detail`: when the node does not say).
 * - `policy`: the node's execution policy would refuse the task (`detail`: the rule, as the agent words it).
 * - `gpus`: `needed` GPUs (each with `gpuMemory` bytes of free VRAM when asked), the node has `free`
 *   such GPUs of `gpuTotal` (`gpusHeld` held by cutter tasks, `gpuFree`: the most free VRAM of one
 *   unheld GPU); `detail`: why it has none it can hand out (no driver, no GPU runtime for Docker).
 * - `volume`: the task mounts a volume the node does not have, or a host path its policy does not allow (`detail`: which).
 * - `lending`: the node's lending policy closes it now (issue 17; `detail`: its state, `suspended: on battery`, `closed: outside 22:00-07:00`).
 */
export const RejectionCodeSchema = z.enum([
  'unknown-node',
  'offline',
  'draining',
  'drained',
  'stale-heartbeat',
  'unannounced',
  'no-docker',
  'no-ollama',
  'no-exec',
  'exec-limits',
  'max-tasks',
  'cpus',
  'memory',
  'model-missing',
  'model-too-big',
  'placement-rule',
  'constraint',
  'platform',
  'disk',
  'policy',
  'exec-tty',
  'gpus',
  'volume',
  'lending',
]);

const bytes = z.number().int().nonnegative();

/** A placement-file rule as a rejection names it (sizes in bytes; `index` counts from 0). */
export const RejectionRuleSchema = z.object({
  index: z.number().int().nonnegative(),
  model: z.string().max(256).optional(),
  minSize: bytes.optional(),
  maxSize: bytes.optional(),
  nodes: z.array(IdSchema).max(1_000),
});

/** One node the scheduler rejected for a task, and the numbers behind it (see RejectionCodeSchema for which field goes with which code). */
export const RejectionSchema = z.object({
  node: IdSchema,
  code: RejectionCodeSchema,
  /** Words of the node's own (why it is offline, the executor probe's error). */
  detail: z.string().max(1_000).optional(),
  /** What the task needs: bytes for `memory` and `model-too-big`, CPUs for `cpus`. */
  needed: z.number().nonnegative().optional(),
  /** What the node has free: bytes for `memory` and `model-too-big`, CPU cores for `cpus`. */
  free: z.number().nonnegative().optional(),
  /** `memory`: the memory the node offers to tasks, bytes. */
  offered: bytes.optional(),
  /** `memory`: the node's MemAvailable, bytes. */
  available: bytes.optional(),
  /** `memory`: bytes held by tasks running or placed there. */
  held: bytes.optional(),
  /** `model-too-big`: the most free memory of one GPU, bytes (0: none reported). */
  gpuFree: bytes.optional(),
  /** `model-too-big`: the node has the model on disk (else it would pull it). */
  onDisk: z.boolean().optional(),
  /** `max-tasks`: tasks running or placed there. */
  running: z.number().int().nonnegative().optional(),
  /** `max-tasks`: the node's task limit. */
  max: z.number().int().nonnegative().optional(),
  /** `stale-heartbeat`: ms since the node was last heard. */
  silentMs: z.number().int().nonnegative().optional(),
  /** `model-missing`, `model-too-big`, `placement-rule`: the model asked for. */
  model: z.string().max(512).optional(),
  /** `placement-rule`: the rule that applies. */
  rule: RejectionRuleSchema.optional(),
  /** `constraint`: the constraint (`gpu=rtx4090`, `site!=home`); `platform`: the task's platform (`linux/arm64`). */
  wanted: z.string().max(600).optional(),
  /** `constraint`: the node's value of the label (absent: it has none); `platform`: the node's platform. */
  has: z.string().max(300).optional(),
  /** `gpus`: GPUs the node can hand out (with a UUID). */
  gpuTotal: z.number().int().nonnegative().optional(),
  /** `gpus`: of those, held by tasks running or placed there. */
  gpusHeld: z.number().int().nonnegative().optional(),
  /** `gpus`: free VRAM each GPU must have, bytes. */
  gpuMemory: bytes.optional(),
});

export type RejectionCode = z.infer<typeof RejectionCodeSchema>;
export type Rejection = z.infer<typeof RejectionSchema>;
