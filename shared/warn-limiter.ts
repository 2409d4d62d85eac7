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
  | 'http-unauthorized'
  | 'controller-backlog'
  | 'stdin-refused';

type Slot = { since: number; suppressed: number; log: Logger; last?: { fields: Record<string, unknown>; msg: string } };

/** Every warning given in this process, logged or not, per kind (`cutter_input_rejected_total{kind}` on /metrics). */
export const warnCounts = new Map<WarnKind, number>();

export class WarnLimiter {
  private readonly timer: NodeJS.Timeout;

  /**
   * @param log where the lines go (level warn).
   * @param intervalMs length of one interval, ms (default 10,000).
   * @param slots the state per kind; `warnLimiter()` shares one map across the process's loggers,
   *   so the bound is per kind and process, however many components warn.
   */
  constructor(
    private readonly log: Logger,
    readonly intervalMs = 10_000,
    private readonly slots = new Map<WarnKind, Slot>(),
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
    this.slots.set(kind, { since: now, suppressed: 0, log: this.log });
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
    slot.log.warn({ kind, ...slot.last.fields, suppressed: slot.suppressed }, `${slot.last.msg} (and ${slot.suppressed} more)`);
    slot.suppressed = 0;
  }
}

const byLogger = new WeakMap<Logger, WarnLimiter>();
const processSlots = new Map<WarnKind, Slot>();

/** The limiter writing to `log`; all of them share one state per kind in this process. */
export function warnLimiter(log: Logger): WarnLimiter {
  let l = byLogger.get(log);
  if (!l) {
    l = new WarnLimiter(log, 10_000, processSlots);
    byLogger.set(log, l);
  }
  return l;
}
