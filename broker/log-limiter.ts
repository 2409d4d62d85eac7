/**
 * Rate-limited warnings for the broker: the first message of a kind in each interval is logged at
 * once, the rest are counted, and the next one after the interval carries `suppressed: n` (how many
 * were not logged meanwhile). Kinds are code constants (never chosen by a client), so the map stays
 * small; a flood of quarantined or denied publishes cannot flood the log or the disk.
 */

/** One line per kind per this interval, ms. */
export const BROKER_WARN_INTERVAL_MS = 10_000;

export class BrokerLogLimiter {
  private readonly kinds = new Map<string, { until: number; suppressed: number }>();

  /**
   * @param intervalMs one line per kind per this many ms.
   * @param now clock, ms epoch.
   */
  constructor(
    private readonly intervalMs = BROKER_WARN_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether to log this occurrence of `kind` now.
   * @returns null to stay silent (counted), or how many were suppressed since the last line (0 the first time).
   */
  take(kind: string): number | null {
    const now = this.now();
    const k = this.kinds.get(kind);
    if (k && k.until > now) {
      k.suppressed++;
      return null;
    }
    const suppressed = k?.suppressed ?? 0;
    this.kinds.set(kind, { until: now + this.intervalMs, suppressed: 0 });
    return suppressed;
  }
}
