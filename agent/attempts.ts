/**
 * What the agent remembers of the (task, attempt) pairs it was given, to take each exactly once:
 * assignments arrive at least once (QoS 1, persistent session), a newer attempt of a task makes
 * every lower one stale, and a cancel may arrive before its assignment (different topics are not
 * ordered). Bounded: the oldest entries are forgotten past `limit`.
 */

/** How many (task, attempt) pairs are remembered by default. */
export const SEEN_LIMIT = 10_000;

/** The map key of one attempt. */
export const keyOf = (taskId: string, attempt: number): string => `${taskId}:${attempt}`;

/** Adds `key` to a bounded set (oldest first out). */
function addBounded(set: Set<string>, key: string, limit: number): void {
  set.add(key);
  if (set.size > limit) set.delete(set.values().next().value!);
}

/** The (task, attempt) pairs taken, the latest attempt per task, and early cancels. */
export class AttemptLedger {
  /** `taskId:attempt` of every assignment taken (or re-adopted), to drop redeliveries. */
  private readonly taken = new Set<string>();
  /** Highest attempt seen per task, to ignore assignments of stale attempts. */
  private readonly latestAttempt = new Map<string, number>();
  /** Cancels that arrived before their assignment. */
  private readonly cancelledEarly = new Set<string>();

  /** @param limit how many entries each record keeps. */
  constructor(private readonly limit = SEEN_LIMIT) {}

  /** True when (task, attempt) was taken already (a redelivery). */
  has(taskId: string, attempt: number): boolean {
    return this.taken.has(keyOf(taskId, attempt));
  }

  /** The highest attempt of the task taken here, if any. */
  latest(taskId: string): number | undefined {
    return this.latestAttempt.get(taskId);
  }

  /** Records (task, attempt) as taken: redeliveries of it and assignments of lower attempts are ignored. */
  remember(taskId: string, attempt: number): void {
    addBounded(this.taken, keyOf(taskId, attempt), this.limit);
    if ((this.latestAttempt.get(taskId) ?? 0) < attempt) {
      // Deleted first so the task moves to the newest end of the map's order.
      this.latestAttempt.delete(taskId);
      this.latestAttempt.set(taskId, attempt);
      if (this.latestAttempt.size > this.limit) this.latestAttempt.delete(this.latestAttempt.keys().next().value!);
    }
  }

  /** Notes a cancel for an attempt not running here; its assignment, if it comes later, is refused. Ignored for one taken already. */
  cancelEarly(taskId: string, attempt: number): void {
    if (!this.has(taskId, attempt)) addBounded(this.cancelledEarly, keyOf(taskId, attempt), this.limit);
  }

  /** True (once) when a cancel for (task, attempt) came before its assignment. */
  takeEarlyCancel(taskId: string, attempt: number): boolean {
    return this.cancelledEarly.delete(keyOf(taskId, attempt));
  }
}
