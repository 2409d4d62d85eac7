/**
 * One compacting full garbage collection once the agent has started.
 *
 * An agent's start leaves its old generation fragmented: objects promoted while the start was
 * busy (modules loading, schemas, the first probes and the connect; the young generation is held
 * small then, ./young-generation.ts) die soon after, and their pages stay committed. Measured with
 * `v8.getHeapSpaceStatistics()`: old space 12.7 MiB committed for 10.2 MiB live, new space 2 MiB,
 * until V8's memory reducer compacts and shrinks them ~8 s after the start (RSS 60 → 56 MiB here;
 * bench/profile.md, "An idle agent's CPU and peak"). That delay is V8's own and no flag given at
 * run time moves it; a plain full GC frees the dead objects but keeps their pages.
 *
 * So once started, the agent runs one full GC with `--compact-on-every-full-gc` set for it, which
 * evacuates the fragmented pages and gives them back: RSS 57 MiB from then on instead of 60 until
 * the reducer runs. It pauses the agent once, ~70 ms on this machine, before any task is taken.
 * The `gc` function comes from a context made while `--expose-gc` is set (V8 installs it in new
 * contexts only); the flag is cleared again, so the process's own global never gets a `gc`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Runs one compacting full GC. Never throws: a V8 that refuses a flag just skips it. */
export function compactAfterStart(): void {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (() => void) | undefined;
    setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return;
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc();
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
  } catch {
    // Nothing to undo: at worst the memory reducer does it a few seconds later.
  }
}
