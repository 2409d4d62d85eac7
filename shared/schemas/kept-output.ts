/**
 * What the controller kept of a task's output and what it dropped (the `output` of a `task.logs`
 * reply). Past the per-task limit (server setting `maxLogBytes`) the controller keeps the head and
 * the tail of the task's output: the first half of the limit and the last half, all streams
 * together in the order they were written (every attempt, in order), and drops the middle. So each
 * stream loses at most one contiguous range: bytes `droppedFrom` to `droppedFrom + dropped - 1` of
 * that stream. All counts are bytes of output as the task wrote it (decoded, not base64); for
 * `chunks` (ollama tasks) bytes of the chunks' JSON, dropped only whole events at a time.
 */
import { z } from 'zod';

const Bytes = z.number().int().nonnegative();

/** One stream's account, bytes. */
export const StreamKeptSchema = z.object({
  /** What reached the controller: kept + dropped + lost. */
  written: Bytes,
  /** What it keeps (head part plus tail part). */
  kept: Bytes,
  /** Dropped between the head and the tail to stay within the limit. */
  dropped: Bytes,
  /** Offset in the stream of the first dropped byte (= this stream's bytes in the head). */
  droppedFrom: Bytes,
  /** Lost anywhere in the stream while the controller could not write its data dir fast enough (storage failing). */
  lost: Bytes,
});

export const KeptOutputSchema = z.object({
  /** The limit per task now (server setting `maxLogBytes`), bytes. */
  limit: Bytes,
  /** Output kept from the start of the task (all streams, in order), bytes: at most half the limit. */
  headBytes: Bytes,
  /** Output kept from the end of the task (all streams, in order), bytes: at most the other half. */
  tailBytes: Bytes,
  stdout: StreamKeptSchema,
  stderr: StreamKeptSchema,
  chunks: StreamKeptSchema,
  /**
   * An older server (before this account) dropped output past its limit without counting it: the
   * counts above miss that part, and `droppedFrom` is where it began.
   */
  uncounted: z.boolean(),
});

export type StreamKept = z.infer<typeof StreamKeptSchema>;
export type KeptOutput = z.infer<typeof KeptOutputSchema>;
/** The streams a KeptOutput accounts for. */
export const KEPT_STREAMS = ['stdout', 'stderr', 'chunks'] as const;
export type KeptStream = (typeof KEPT_STREAMS)[number];

/** Whether anything of the output was not kept (dropped, lost, or uncounted by an older server). */
export function outputCut(o: KeptOutput): boolean {
  return o.uncounted || KEPT_STREAMS.some((s) => o[s].dropped > 0 || o[s].lost > 0);
}
