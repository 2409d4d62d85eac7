/**
 * A node whose input cache has filled its disk still takes new inputs (agent/io/store.ts with
 * agent/io/cache-evict.ts): the cache lives on a 650 MiB tmpfs holding three earlier inputs of
 * 30 MiB; a manifest that needs 60 MiB more than the disk's free space minus the node's 512 MiB
 * margin gets room by evicting the least recently used contents (the one just reused stays), and
 * one that could only fit by removing what a running attempt needs is refused, naming the free
 * bytes, and evicts nothing.
 *
 * Needs root and `mount` (tmpfs), like test/e2e/disk-full.test.ts; skipped otherwise. The tmpfs is
 * always unmounted in afterAll.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IoStore } from '../../agent/io/store.js';
import { tempDir } from '../harness.js';
import { onPath } from '../services.js';

const mountable = process.getuid?.() === 0 && onPath('mount') !== null && onPath('umount') !== null;
const tag = mountable ? '' : ' [skipped: needs root and mount — run the tests as root with util-linux]';
const MiB = 1024 * 1024;
const never = () => false;

(mountable ? describe : describe.skip)(`the input cache on a full disk${tag}`, () => {
  const mnt = tempDir('cutter-io-disk-');
  let mounted = false;
  beforeAll(() => {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=650m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
    mounted = true;
  });
  afterAll(() => {
    if (mounted) spawnSync('umount', ['-l', mnt]);
  });

  /** A content of `mib` MiB filled with `seed`, and its manifest entry. */
  const content = (seed: string, mib: number) => {
    const data = Buffer.alloc(mib * MiB, seed);
    return { data, entry: { path: `${seed}.bin`, size: data.length, sha256: createHash('sha256').update(data).digest('hex') } };
  };

  it('evicts the least recently used contents to take new inputs, and never one a waiting attempt needs', async () => {
    const store = new IoStore(mnt, 'small', 1024 * MiB);
    // Three earlier tasks each left a 30 MiB input in the cache, used an hour apart.
    const old = ['a', 'b', 'c'].map((seed) => content(seed, 30));
    for (const [i, c] of old.entries()) {
      store.expect(`old${i}`, 1, 1, 0, false);
      await store.diff(`old${i}`, 1, 0, 'x'.repeat(32), [c.entry]);
      writeFileSync(await store.inputPath(`old${i}`, 1, c.entry.sha256), c.data);
      await store.ended(`old${i}`, 1, false);
      const at = new Date(Date.now() - (3 - i) * 3_600_000);
      utimesSync(store.casPath(c.entry.sha256), at, at);
    }
    // The oldest is used again by a task that has ended since: it moves to the back of the line.
    store.expect('reuse', 1, 1, 0, false);
    expect(await store.diff('reuse', 1, 0, 'x'.repeat(32), [old[0].entry])).toEqual({ need: [], haveBytes: 30 * MiB });
    await store.ended('reuse', 1, false);

    // 650 MiB - 90 MiB cached leaves ~560 MiB free: 60 MiB more plus the 512 MiB margin fits once b, the least recently used, goes.
    const fresh = content('d', 60);
    store.expect('new', 1, 1, 0, false);
    expect(await store.diff('new', 1, 0, 'x'.repeat(32), [fresh.entry])).toEqual({ need: [0], haveBytes: 0 });
    expect(existsSync(store.casPath(old[1].entry.sha256))).toBe(false);
    expect(existsSync(store.casPath(old[2].entry.sha256))).toBe(true);
    expect(existsSync(store.casPath(old[0].entry.sha256))).toBe(true);
    writeFileSync(await store.inputPath('new', 1, fresh.entry.sha256), fresh.data);
    const waited = store.wait('new', 1, never, 60_000);
    await store.ready('new', 1, [{ files: 1, bytes: fresh.entry.size }]);
    expect((await waited)?.inputs.length).toBe(1);

    // Room only by also removing what 'new' runs with: refused, saying why, and nothing was evicted for it.
    const big = content('e', 80);
    store.expect('big', 1, 1, 0, false);
    await expect(store.diff('big', 1, 0, 'x'.repeat(32), [big.entry])).rejects.toThrow(
      /node small has \d+ bytes of free disk, the inputs need 83886080 more/,
    );
    for (const c of [old[0], old[2], fresh]) expect(existsSync(store.casPath(c.entry.sha256))).toBe(true);
  });
});
