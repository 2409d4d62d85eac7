/**
 * The one duration syntax of cutter: every flag, config key, pipeline field and env value that is
 * a length of time takes the same text.
 *
 * - A number with a unit: `500ms`, `30s`, `10m`, `2h`, `7d`; fractions too (`1.5s`).
 * - Units chained, largest first or not (Go's `time.ParseDuration` style): `1h30m`, `2m30s`.
 * - A bare number is **milliseconds**, everywhere (`--heartbeat 500` = 500 ms, `--grace 3000` =
 *   3 s), because the config file's `…Ms` keys and their env variables always were ms.
 * Negative and empty values are refused.
 */
import { CutterError } from './errors.js';

/** ms per unit. */
export const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/** The hint every duration error ends with. */
export const DURATION_HINT = 'use a number with a unit ms, s, m, h or d (e.g. 500ms, 30s, 2h, 1h30m); a bare number is milliseconds';

/**
 * Parses a duration (module comment) into whole milliseconds (rounded).
 * @param text e.g. `500ms`, `30s`, `1h30m`, `250` (ms); surrounding spaces are ignored.
 * @returns ms, a non-negative safe integer.
 * @throws CutterError INVALID_ARGUMENT `"<text>" is not a duration: …` when the text is not one.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  const fail = () => new CutterError('INVALID_ARGUMENT', `"${text}" is not a duration: ${DURATION_HINT}`);
  if (t === '' || t.length > 64) throw fail();
  let ms: number;
  if (/^\d+(?:\.\d+)?$/.test(t)) ms = Number(t);
  else {
    ms = 0;
    PART.lastIndex = 0;
    let end = 0;
    for (let m = PART.exec(t); m; m = PART.exec(t)) {
      ms += Number(m[1]) * DURATION_UNITS[m[2]];
      end = PART.lastIndex;
    }
    if (end !== t.length) throw fail();
  }
  const rounded = Math.round(ms);
  if (!Number.isSafeInteger(rounded)) throw new CutterError('INVALID_ARGUMENT', `"${text}" is too long a duration`);
  return rounded;
}

/**
 * A duration given with a flag: {@link parseDuration}, with the flag named in the error and optional bounds.
 * @param flag as the user typed it, e.g. `--grace`.
 * @param min,max bounds in ms (inclusive).
 * @throws CutterError INVALID_ARGUMENT `--grace "x": "x" is not a duration: …`, or the bound it breaks.
 */
export function durationFlag(flag: string, text: string, bounds: { min?: number; max?: number } = {}): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new CutterError('INVALID_ARGUMENT', `${flag} ${JSON.stringify(text)}: ${(err as Error).message}`);
  }
  if (bounds.min !== undefined && ms < bounds.min)
    throw new CutterError('INVALID_ARGUMENT', `${flag} ${JSON.stringify(text)}: must be at least ${durationWords(bounds.min)}`);
  if (bounds.max !== undefined && ms > bounds.max)
    throw new CutterError('INVALID_ARGUMENT', `${flag} ${JSON.stringify(text)}: must be at most ${durationWords(bounds.max)}`);
  return ms;
}

/** ms as the shortest duration text this module reads back: 90_000 → `1m30s`, 1500 → `1s500ms`, 0 → `0s`. */
export function durationWords(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, n] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
    ['ms', 1],
  ] as const) {
    const q = Math.floor(rest / n);
    if (q > 0) out += `${q}${unit}`;
    rest -= q * n;
  }
  return out;
}
