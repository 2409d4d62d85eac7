/**
 * The node's input cache does not fill the disk (agent/io/cache-evict.ts): under pressure the least
 * recently used contents go first, never one a waiting attempt named; on a sweep, contents unused
 * for a week go. Real files in a temporary directory, their last use set through mtime.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AgeSweep,
  CACHE_MAX_AGE_MS,
  CACHE_SWEEP_EVERY_MS,
  cacheEntries,
  evictForSpace,
  evictUnused,
  touchContent,
} from '../../agent/io/cache-evict.js';
import { tempDir } from '../harness.js';

const DAY = 24 * 3_600_000;

/** Writes a content of `size` bytes into `cas`, last used `agoMs` before `now`; returns its SHA-256 and path. */
function put(cas: string, seed: string, size: number, now: number, agoMs: number) {
  const data = Buffer.alloc(size, seed);
  const sha = createHash('sha256').update(data).update(seed).digest('hex');
  mkdirSync(join(cas, sha.slice(0, 2)), { recursive: true });
  const path = join(cas, sha.slice(0, 2), sha);
  writeFileSync(path, data);
  const at = new Date(now - agoMs);
  utimesSync(path, at, at);
  return { sha, path };
}

describe('input cache eviction', () => {
  it('lists contents oldest use first and leaves out part files and strays', async () => {
    const cas = join(tempDir('cutter-cas-'), 'cas');
    const now = Date.now();
    const a = put(cas, 'a', 10, now, 3 * DAY);
    const b = put(cas, 'b', 20, now, 1 * DAY);
    writeFileSync(`${b.path}.cutter-part`, 'partial');
    writeFileSync(join(cas, b.sha.slice(0, 2), 'notes.txt'), 'stray');
    const list = await cacheEntries(cas);
    expect(list.map((e) => [e.sha256, e.size])).toEqual([
      [a.sha, 10],
      [b.sha, 20],
    ]);
    expect(await cacheEntries(join(cas, 'missing'))).toEqual([]);
  });

  it('under pressure frees the least recently used first, skips what a waiting attempt needs, and stops once enough went', async () => {
    const cas = join(tempDir('cutter-cas-'), 'cas');
    const now = Date.now();
    const oldest = put(cas, 'o', 1000, now, 5 * DAY);
    const needed = put(cas, 'n', 1000, now, 4 * DAY);
    const older = put(cas, 'p', 1000, now, 3 * DAY);
    const recent = put(cas, 'r', 1000, now, 1 * DAY);
    // A use moves a content to the back of the line.
    await touchContent(oldest.path);

    const freed = await evictForSpace(cas, 1500, new Set([needed.sha]));
    expect(freed).toBe(2000);
    expect(existsSync(needed.path)).toBe(true);
    expect(existsSync(older.path)).toBe(false);
    expect(existsSync(recent.path)).toBe(false);
    expect(existsSync(oldest.path)).toBe(true);

    // Asked for more than may go: removes nothing (the request is refused anyway) and says so.
    expect(await evictForSpace(cas, 10_000, new Set([needed.sha]))).toBe(0);
    expect(existsSync(oldest.path)).toBe(true);
    expect(existsSync(needed.path)).toBe(true);
  });

  it('on a sweep removes only contents unused for longer than the age, never a needed one', async () => {
    const cas = join(tempDir('cutter-cas-'), 'cas');
    const now = Date.now();
    const stale = put(cas, 's', 100, now, CACHE_MAX_AGE_MS + DAY);
    const staleNeeded = put(cas, 'k', 100, now, CACHE_MAX_AGE_MS + 2 * DAY);
    const fresh = put(cas, 'f', 100, now, CACHE_MAX_AGE_MS - DAY);
    expect(await evictUnused(cas, CACHE_MAX_AGE_MS, new Set([staleNeeded.sha]), now)).toEqual({ contents: 1, bytes: 100 });
    expect(existsSync(stale.path)).toBe(false);
    expect(existsSync(staleNeeded.path)).toBe(true);
    expect(existsSync(fresh.path)).toBe(true);
  });

  it('checks the age rule at most once per CACHE_SWEEP_EVERY_MS, however often sweeps run', async () => {
    const cas = join(tempDir('cutter-cas-'), 'cas');
    const now = Date.now();
    const sweep = new AgeSweep();
    const first = put(cas, 'x', 100, now, CACHE_MAX_AGE_MS + DAY);
    await sweep.run(cas, () => new Set(), now);
    expect(existsSync(first.path)).toBe(false);
    // A content past the age within the hour stays until the next check.
    const second = put(cas, 'y', 100, now, CACHE_MAX_AGE_MS + DAY);
    await sweep.run(cas, () => new Set(), now + CACHE_SWEEP_EVERY_MS - 1);
    expect(existsSync(second.path)).toBe(true);
    await sweep.run(cas, () => new Set(), now + CACHE_SWEEP_EVERY_MS);
    expect(existsSync(second.path)).toBe(false);
  });
});
