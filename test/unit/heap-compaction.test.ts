/**
 * agent/heap-compaction.ts: one compacting full GC gives back the old-generation pages a start
 * left fragmented, which a plain full GC keeps. Checked in a fresh process (the test runner's heap
 * is not a start's): objects promoted to the old generation, nine in ten then dropped, leave its
 * committed size well above what is live; after compactHeap() it is close to it, and the
 * process's global still has no `gc`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const script = `
  import { getHeapSpaceStatistics } from 'node:v8';
  const { compactHeap } = await import(${JSON.stringify(`${ROOT}dist/agent/heap-compaction.js`)});
  const old = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space');
  // Like a start: objects that live long enough to be promoted, most of them dropped afterwards.
  let kept = [];
  for (let i = 0; i < 600_000; i++) kept.push({ i, s: 'x' + i });
  kept = kept.filter((_, i) => i % 10 === 0);
  const before = old();
  compactHeap();
  const after = old();
  console.log(JSON.stringify({
    before: before.space_size, after: after.space_size, live: after.space_used_size,
    kept: kept.length, gcGlobal: typeof globalThis.gc,
  }));`;

describe("compacting an agent's heap once it has started", () => {
  it('gives back the fragmented old-generation pages, and leaves no gc() in the global', async () => {
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    const { before, after, live, kept, gcGlobal } = JSON.parse(r.stdout) as Record<string, number | string>;
    expect(kept).toBe(60_000);
    expect(gcGlobal).toBe('undefined');
    // Before: committed pages of mostly dead objects; after: within a few pages of what is live.
    expect(after).toBeLessThan((before as number) / 2);
    expect((after as number) - (live as number)).toBeLessThan(4 * 1024 * 1024);
  });

  it('compacts on its period while idle, and not while a task runs', async () => {
    const idleScript = `
      import { getHeapSpaceStatistics } from 'node:v8';
      import { setTimeout as sleep } from 'node:timers/promises';
      const { compactWhileIdle } = await import(${JSON.stringify(`${ROOT}dist/agent/heap-compaction.js`)});
      const old = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size;
      let kept = [];
      for (let i = 0; i < 600_000; i++) kept.push({ i, s: 'x' + i });
      kept = kept.filter((_, i) => i % 10 === 0);
      let idle = false;
      const stop = compactWhileIdle(() => idle, 100);
      const before = old();
      await sleep(400);
      const busy = old();
      idle = true;
      await sleep(400);
      const after = old();
      stop();
      console.log(JSON.stringify({ before, busy, after, kept: kept.length }));`;
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', idleScript], { encoding: 'utf8', timeout: 30_000 });
    const { before, busy, after } = JSON.parse(r.stdout) as Record<string, number>;
    expect(busy).toBeGreaterThanOrEqual(before * 0.9);
    expect(after).toBeLessThan(before / 2);
  });
});
