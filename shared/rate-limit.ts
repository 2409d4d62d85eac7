/**
 * Token-bucket rate limits, one bucket per key (an identity or a client id): `perMinute` events
 * a minute on average, with bursts up to `burst`. Buckets idle long enough to be full are
 * forgotten, so the map stays small.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /**
   * @param perMinute sustained events per minute per key.
   * @param burst most events at once (the bucket's size); default `perMinute`.
   */
  constructor(
    readonly perMinute: number,
    readonly burst = perMinute,
  ) {}

  /**
   * Takes one token for `key`.
   * @returns 0 when allowed, else the ms until a token is available.
   */
  take(key: string, now = Date.now()): number {
    const rate = this.perMinute / 60_000;
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * rate);
    b.at = now;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.prune(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / rate);
  }

  private prune(now: number): void {
    const rate = this.perMinute / 60_000;
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * rate >= this.burst) this.buckets.delete(k);
  }
}
