/**
 * Rate-limited warnings, so a flood of bad input cannot flood the log or the disk: per kind, the
 * first warning of an interval (default 10 s) is logged at once, the rest are counted, and the
 * next warning after the interval (or `flush()`) logs one summary line with `suppressed: n`.
 * Kinds are code constants (never chosen by a sender), so the map stays bounded.
 */
import type { Logger } from './logger.js';

/** The kinds of warning that are rate-limited (add new ones here). */
export type WarnKind =
  | 'invalid-message'
  | 'invalid-request'
  | 'dropped-event'
  | 'handler-failed'
  | 'http-invalid-body'
  | 'http-unauthorized';

type Slot = { since: number; suppressed: number; last?: { fields: Record<string, unknown>; msg: string } };

/** Every warning given in this process, logged or not, per kind (`cutter_input_rejected_total{kind}` on /metrics). */
export const warnCounts = new Map<WarnKind, number>();

export class WarnLimiter {
  private readonly slots = new Map<WarnKind, Slot>();
  private readonly timer: NodeJS.Timeout;

  /**
   * @param log where the lines go (level warn).
   * @param intervalMs length of one interval, ms (default 10,000).
   */
  constructor(
    private readonly log: Logger,
    readonly intervalMs = 10_000,
  ) {
    // Summaries of a burst that then stopped still get written, at most one interval late.
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Logs `msg` with `fields` at warn unless this kind already logged within the interval; then counts it. */
  warn(kind: WarnKind, fields: Record<string, unknown>, msg: string, now = Date.now()): void {
    warnCounts.set(kind, (warnCounts.get(kind) ?? 0) + 1);
    const slot = this.slots.get(kind);
    if (slot && now - slot.since < this.intervalMs) {
      slot.suppressed++;
      slot.last = { fields, msg };
      return;
    }
    if (slot) this.summarise(kind, slot);
    this.slots.set(kind, { since: now, suppressed: 0 });
    this.log.warn({ kind, ...fields }, msg);
  }

  /** Writes the summary line of every kind whose interval is over (called by the timer). */
  flush(now = Date.now()): void {
    for (const [kind, slot] of this.slots) {
      if (now - slot.since < this.intervalMs) continue;
      this.summarise(kind, slot);
      this.slots.delete(kind);
    }
  }

  /** Stops the timer after writing every pending summary. */
  close(): void {
    clearInterval(this.timer);
    for (const [kind, slot] of this.slots) this.summarise(kind, slot);
    this.slots.clear();
  }

  private summarise(kind: WarnKind, slot: Slot): void {
    if (slot.suppressed === 0 || !slot.last) return;
    this.log.warn({ kind, ...slot.last.fields, suppressed: slot.suppressed }, `${slot.last.msg} (and ${slot.suppressed} more)`);
    slot.suppressed = 0;
  }
}

const byLogger = new WeakMap<Logger, WarnLimiter>();

/** The one limiter of a logger (each process has one root logger; children get their own). */
export function warnLimiter(log: Logger): WarnLimiter {
  let l = byLogger.get(log);
  if (!l) {
    l = new WarnLimiter(log);
    byLogger.set(log, l);
  }
  return l;
}
