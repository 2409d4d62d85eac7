/**
 * Reader credit for a task's output (`cutter run` attached): the reader of the output tells the
 * agent how far it has got, so a slow reader (`cutter run … | slow-consumer`) slows the task, as a
 * slow terminal slows `docker run`, instead of the bytes piling up in the CLI, the broker or the agent.
 * The reverse of task stdin (shared/schemas/stdin.ts), with the same topic shape and authorisation.
 *
 * - The submitter asks for it with `credit: true` in the task's spec (docker and exec tasks). An
 *   agent that gates the attempt's output says so with `credit: true` in its `started` event; only
 *   then does the client send credit (an older agent or controller drops the field: nothing is gated,
 *   nothing is sent).
 * - Topic `nodes/N/credit/T` (shared/topics.ts `nodeCredit`), client → agent, JSON `OutputCredit`,
 *   QoS 1. Only T's submitter (or the controller) may publish there (broker/acl.ts, SECURITY.md).
 * - `seq` is the `seq` of the last event of `attempt` the client is done with: its output written to
 *   the client's stdout or stderr and taken by the OS (the write's callback), or skipped. The agent
 *   counts the log bytes it published after that event as outstanding; while they exceed
 *   OUTPUT_CREDIT_WINDOW (or OUTPUT_CREDIT_EVENTS log events) it stops reading the task's output
 *   (agent/output-credit.ts), so the task blocks on its own pipe. Counting in events, not bytes, a
 *   client that missed some events (a reconnect, a gap in the kept logs) still credits past them.
 * - The client sends its credit at least every OUTPUT_CREDIT_KEEPALIVE_MS while it follows the
 *   attempt, even when it has not moved (its own reader is slow): that it is alive is what keeps the
 *   task held.
 * - Reader gone: when the output is held and no credit arrived for OUTPUT_CREDIT_TIMEOUT_MS (the
 *   CLI was killed, its link is down), or the client sends `release: true` (it stops following
 *   while the task runs on), the agent stops gating that attempt for good: its output goes on at
 *   full speed to the kept logs, as for a detached task (`cutter run -d`).
 */
import { z } from 'zod';

/** Log bytes an agent publishes beyond the reader's credit before it holds the task's output (resumes at half), bytes. */
export const OUTPUT_CREDIT_WINDOW = 8 * 1024 * 1024;
/**
 * Log events an agent publishes beyond the reader's credit before it holds the task's output
 * (resumes at half): bounds what a reader holds when the output comes in many small batches. Below
 * the follow's unread-events bound (shared/client/event-queue.ts DEFAULT_BUFFER: 10,000 events,
 * 16 MiB, which also holds OUTPUT_CREDIT_WINDOW's base64), so a crediting reader never drops any.
 */
export const OUTPUT_CREDIT_EVENTS = 4_096;
/** Longest a client following a credit-gated attempt goes without sending credit, ms. */
export const OUTPUT_CREDIT_KEEPALIVE_MS = 1_000;
/** How long an agent holds an attempt's output without hearing any credit before it stops gating it, ms. */
export const OUTPUT_CREDIT_TIMEOUT_MS = 10_000;

/** Client → agent on `nodes/N/credit/T`. */
export const OutputCreditSchema = z.object({
  v: z.literal(1),
  attempt: z.number().int().positive(),
  /** The last event of `attempt` the reader is done with (see the file comment). */
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** The reader stops following: do not gate this attempt's output any more. */
  release: z.boolean().optional(),
});
export type OutputCredit = z.infer<typeof OutputCreditSchema>;
