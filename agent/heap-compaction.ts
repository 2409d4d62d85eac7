/**
 * Compacting full garbage collections for an agent: one once it has started, then one every
 * `IDLE_COMPACTION_MS` while it runs no task.
 *
 * At start: the start leaves the old generation fragmented: objects promoted while it was busy
 * (modules loading, schemas, the first probes and the connect; the young generation is held small
 * then, ./young-generation.ts) die soon after, and their pages stay committed. Measured with
 * `v8.getHeapSpaceStatistics()`: old space 12.7 MiB committed for 10.2 MiB live, new space 2 MiB,
 * until V8's memory reducer compacts and shrinks them ~8 s after the start (RSS 60 → 56 MiB here;
 * bench/profile.md, "An idle agent's CPU and peak"). No flag given at run time moves that delay,
 * and a plain full GC frees the dead objects but keeps their pages.
 *
 * Idle: each heartbeat leaves a few objects that outlive a scavenge (its status, the probes'
 * answers) and die in the old generation, which V8 lets grow to its next limit before it collects
 * it: an idle agent's RSS went from 56 to 60 MiB over 20 minutes (its live heap, after a forced
 * GC, stayed at 13.2 MiB; before this file: 62 to 70 MiB). Go's runtime, which Docker and Nomad
 * agents run on, forces a collection every 2 minutes for the same reason (runtime/proc.go
 * `forcegcperiod`); so does this file, at idle only, where the pause (~10-20 ms warm) meets no task.
 *
 * The collection runs with `--compact-on-every-full-gc` set around it, which evacuates fragmented
 * pages and gives them back. The `gc` function comes from a context made while `--expose-gc` is
 * set (V8 installs it in new contexts only); the flag is cleared again, so the process's own
 * global never gets a `gc`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How often an idle agent compacts its heap, ms (Go's `forcegcperiod`). */
export const IDLE_COMPACTION_MS = 120_000;

let gc: (() => void) | null | undefined;

/** V8's gc(), taken once from a fresh context; null when V8 refuses the flag. */
function gcFunction(): (() => void) | null {
  if (gc !== undefined) return gc;
  try {
    setFlagsFromString('--expose-gc');
    const f = runInNewContext('gc') as unknown;
    gc = typeof f === 'function' ? (f as () => void) : null;
  } catch {
    gc = null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

/** Runs one compacting full GC. Never throws: without a gc() it does nothing (V8's reducer does it later). */
export function compactHeap(): void {
  const run = gcFunction();
  if (!run) return;
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    run();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * Compacts the heap every `everyMs` while `idle()` says so, on an unref'd timer.
 * @returns a function that stops it.
 */
export function compactWhileIdle(idle: () => boolean, everyMs = IDLE_COMPACTION_MS): () => void {
  const timer = setInterval(() => {
    if (idle()) compactHeap();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
