/**
 * Keeps the node's input cache (`<io dir>/cas/<2 hex>/<sha256>`, agent/io/store.ts) from filling
 * the disk. A content's mtime is its last use (set when it arrives and each time a manifest finds
 * it), so recency survives agent restarts. Two rules, like Docker's build-cache garbage collection
 * (keep storage and keep duration):
 * - under disk pressure, the least recently used contents go first until the inputs of the
 *   attempt asking fit (`evictForSpace`);
 * - contents unused for `CACHE_MAX_AGE_MS` go, checked at most every `CACHE_SWEEP_EVERY_MS`
 *   (`AgeSweep`, `evictUnused`).
 * Contents a waiting attempt's manifest named are never removed. Inputs already built into a task's
 * directory are hard links or copies, so removing the cache file does not touch a running task.
 */
import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';

/** A cached content unused this long is removed by the sweep, ms (7 days). */
export const CACHE_MAX_AGE_MS = 7 * 24 * 3_600_000;

const SHA256_RE = /^[0-9a-f]{64}$/;

/** One cached content: its SHA-256, size (bytes) and last use (mtime, ms epoch). */
export interface CacheEntry {
  sha256: string;
  path: string;
  size: number;
  usedAt: number;
}

/** Every content in `casDir`, least recently used first. Files that are not contents (part files, strays) are left out. */
export async function cacheEntries(casDir: string): Promise<CacheEntry[]> {
  const out: CacheEntry[] = [];
  for (const prefix of await readdir(casDir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
    for (const name of await readdir(join(casDir, prefix)).catch(() => [] as string[])) {
      if (!SHA256_RE.test(name) || !name.startsWith(prefix)) continue;
      const path = join(casDir, prefix, name);
      const st = await stat(path).catch(() => null);
      if (st?.isFile()) out.push({ sha256: name, path, size: st.size, usedAt: st.mtimeMs });
    }
  }
  return out.sort((a, b) => a.usedAt - b.usedAt);
}

/** Marks a content as used now (its mtime); a content that is gone is ignored. */
export async function touchContent(path: string, now = new Date()): Promise<void> {
  await utimes(path, now, now).catch(() => undefined);
}

/**
 * Removes least recently used contents, except those in `keep`, until at least `bytes` are freed.
 * When even every removable content would not free that much, nothing is removed (the request
 * is refused anyway; the cache stays useful).
 * @returns the bytes freed: 0, or at least `bytes`.
 */
export async function evictForSpace(casDir: string, bytes: number, keep: ReadonlySet<string>): Promise<number> {
  const chosen: CacheEntry[] = [];
  let total = 0;
  for (const e of await cacheEntries(casDir)) {
    if (total >= bytes) break;
    if (keep.has(e.sha256)) continue;
    chosen.push(e);
    total += e.size;
  }
  if (total < bytes) return 0;
  for (const e of chosen) await rm(e.path, { force: true });
  return total;
}

/**
 * Removes contents, except those in `keep`, last used more than `maxAgeMs` before `now`.
 * @returns how many contents and bytes went.
 */
export async function evictUnused(
  casDir: string,
  maxAgeMs: number,
  keep: ReadonlySet<string>,
  now = Date.now(),
): Promise<{ contents: number; bytes: number }> {
  let contents = 0;
  let bytes = 0;
  for (const e of await cacheEntries(casDir)) {
    if (now - e.usedAt <= maxAgeMs) break;
    if (keep.has(e.sha256)) continue;
    await rm(e.path, { force: true });
    contents++;
    bytes += e.size;
  }
  return { contents, bytes };
}

/** How often the age rule is checked, ms (1 h): it reads every cache entry, and sweeps run at each task start. */
export const CACHE_SWEEP_EVERY_MS = 3_600_000;

/** The age rule, run at most once per CACHE_SWEEP_EVERY_MS however often it is asked for. */
export class AgeSweep {
  private last = Number.NEGATIVE_INFINITY;

  /** Runs `evictUnused(casDir, CACHE_MAX_AGE_MS, keep())` unless it ran less than CACHE_SWEEP_EVERY_MS before `now`. */
  async run(casDir: string, keep: () => ReadonlySet<string>, now = Date.now()): Promise<void> {
    if (now - this.last < CACHE_SWEEP_EVERY_MS) return;
    this.last = now;
    await evictUnused(casDir, CACHE_MAX_AGE_MS, keep(), now);
  }
}
