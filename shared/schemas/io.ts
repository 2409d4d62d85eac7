/**
 * A task's inputs and outputs (`cutter run --input ./data:/in --output /out:./results`), carried on
 * the file transfer topics (shared/schemas/files.ts) between the task's submitter and the node the
 * attempt runs on. Every message names the task and attempt; the broker lets only the identity that
 * submitted the task send them (broker/acl.ts `ioDenied`), and chunk frames belong to the `put`/`get`
 * that opened them (same client). Lifecycle, on the node (agent/io/):
 *
 * 1. staging: the agent accepts the attempt and waits for its inputs. The submitter sends, per input
 *    directory `input` (its index in the spec's `inputs`), pages of its manifest (`io.diff`: path
 *    inside the directory, size in bytes, SHA-256) and gets `vol.need`: the indices of the files
 *    whose content the node's content-addressed cache lacks. Each missing content is sent with `put`
 *    carrying `task`/`attempt` (the cache keeps it under its SHA-256, checked on arrival). `io.ready`
 *    (file and byte counts per input, checked against the manifests) makes the node build each
 *    input's directory from the cache and start the task; answered `io.ok`.
 * 2. running: docker gets each input as a read-only bind mount and each output as a writable bind
 *    mount of an empty scratch directory; exec gets `$CUTTER_INPUT_<NAME>` / `$CUTTER_OUTPUT_<NAME>`.
 * 3. collecting: after the attempt ended, `io.manifest` pages the files of output `output` (regular
 *    files only: symbolic links are never listed nor followed) as `vol.files`; each file moves with
 *    `get` carrying `task`/`attempt`/`output`; `io.done` deletes the attempt's directories (`io.ok`).
 *    A node deletes them on its own an hour after the attempt ended.
 * A submitter that cannot send its inputs says `io.abort` (the attempt fails STAGING_FAILED with its
 * message); one that says nothing for two minutes while the attempt waits fails it the same way.
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { MANIFEST_PAGE, ManifestEntrySchema } from './volumes.js';

const XferId = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters');
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Attempt = z.number().int().positive().max(1_000_000);

/** Most inputs and most outputs of one task. */
export const MAX_IO_DIRS = 8;
/** Most files of one input or output directory. */
export const MAX_IO_FILES = 100_000;

/** One input or output of a task spec: where the task finds it (docker: an absolute container path; exec: a name). */
export const IoTargetSchema = z.object({ target: z.string().min(1).max(1024) });
export type IoTarget = z.infer<typeof IoTargetSchema>;

/** The task spec fields (docker and exec; shared/schemas/task.ts). */
export const IoSpecFields = {
  /**
   * Directories the submitter uploads before the start (`cutter run --input ./data:/in`): docker
   * mounts each read-only at `target` (absolute); exec finds each in `$CUTTER_INPUT_<NAME>`. Absent: none.
   */
  inputs: z.array(IoTargetSchema).max(MAX_IO_DIRS).optional(),
  /**
   * Empty directories the task writes, collected to the submitter after the exit (`--output
   * /out:./results`): docker mounts each writable at `target`; exec finds each in `$CUTTER_OUTPUT_<NAME>`.
   */
  outputs: z.array(IoTargetSchema).max(MAX_IO_DIRS).optional(),
};

/** Client → agent requests (members of FileInSchema). */
export const IoInSchemas = [
  z.object({
    v: z.literal(1),
    type: z.literal('io.diff'),
    xfer: XferId,
    task: IdSchema,
    attempt: Attempt,
    input: z
      .number()
      .int()
      .min(0)
      .max(MAX_IO_DIRS - 1),
    files: z.array(ManifestEntrySchema).max(MANIFEST_PAGE),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('io.ready'),
    xfer: XferId,
    task: IdSchema,
    attempt: Attempt,
    /** Per input, in order: files and bytes its manifest pages announced. */
    inputs: z.array(z.object({ files: Count, bytes: Count })).max(MAX_IO_DIRS),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('io.manifest'),
    xfer: XferId,
    task: IdSchema,
    attempt: Attempt,
    output: z
      .number()
      .int()
      .min(0)
      .max(MAX_IO_DIRS - 1),
    offset: Count,
  }),
  z.object({ v: z.literal(1), type: z.literal('io.done'), xfer: XferId, task: IdSchema, attempt: Attempt }),
  /** The submitter could not send the inputs: the attempt fails STAGING_FAILED with `message` (answered `io.ok`). */
  z.object({ v: z.literal(1), type: z.literal('io.abort'), xfer: XferId, task: IdSchema, attempt: Attempt, message: z.string().max(2000) }),
] as const;

/** Agent → client replies (members of FileOutSchema); `io.diff` is answered `vol.need`, `io.manifest` `vol.files`. */
export const IoOutSchemas = [
  /** `io.ready` (the inputs are staged: `files`, `bytes`) or `io.done` done. */
  z.object({ v: z.literal(1), type: z.literal('io.ok'), xfer: XferId, files: Count.optional(), bytes: Count.optional() }),
] as const;

/** Fields `put` and `get` carry for a task's inputs (`put`) and outputs (`get`, with `output`). */
export const IoFileFields = {
  /** The task whose input content this is (`put`: into the node's cache) or whose output (`get`). */
  task: IdSchema.optional(),
  attempt: Attempt.optional(),
  /** `get`: the index of the output directory `path` is inside. */
  output: z
    .number()
    .int()
    .min(0)
    .max(MAX_IO_DIRS - 1)
    .optional(),
};

/**
 * The environment variable an exec task finds input or output `target` in: `CUTTER_INPUT_` or
 * `CUTTER_OUTPUT_` + the target's last path component upper-cased, other characters as `_`
 * (`/in` → `CUTTER_INPUT_IN`, `results` → `CUTTER_OUTPUT_RESULTS`).
 */
export function ioEnvName(kind: 'input' | 'output', target: string): string {
  const last = target.split('/').filter(Boolean).pop() ?? '';
  return `CUTTER_${kind.toUpperCase()}_${last.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}
