/**
 * Byte-size parsing and formatting, with Docker's conventions.
 *
 * Docker's `-m 24g` means 24 GiB (binary multiples, suffixes b/k/m/g/t, case-insensitive);
 * cutter accepts the same, plus the explicit forms `KiB`/`MiB`/`GiB`/`TiB` and `KB`/`MB`/`GB`
 * (also binary, as Docker treats them). Source: docker/go-units `RAMInBytes`.
 */
import { CutterError } from './errors.js';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i;

/**
 * Parses a size like `24g`, `512m`, `1.5GiB` or `1048576` into bytes.
 * @returns an integer number of bytes (rounded down).
 * @throws CutterError `INVALID_SIZE` when the text is not a size.
 */
export function parseBytes(text: string): number {
  const m = SIZE_RE.exec(text);
  if (!m) {
    throw new CutterError('INVALID_SIZE', `"${text}" is not a size: use a number with an optional unit b, k, m, g or t (e.g. 512m, 24g)`);
  }
  const value = Number(m[1]) * MULTIPLIERS[m[2].toLowerCase()];
  if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) {
    throw new CutterError('INVALID_SIZE', `"${text}" is too large`);
  }
  return Math.floor(value);
}

/** Formats bytes for people: `23.4 GiB`, `512.0 MiB`, `900 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value} B` : `${value.toFixed(1)} ${units[i]}`;
}

/** Formats a duration in ms for people: `850 ms`, `3.2 s`, `4m 05s`, `2h 03m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
