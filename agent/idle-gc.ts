/**
 * A full garbage collection every `IDLE_GC_MS` while the agent runs no task.
 *
 * Each heartbeat leaves a few objects that outlive a scavenge (its status, the probes' answers)
 * and die in the old generation, which V8 lets grow to its next limit before it collects it: an
 * idle agent's RSS crept from 56 to 60 MiB over 20 minutes (62 to 70 MiB before session 36's
 * changes) while its live heap, after a forced GC, stayed at 13.2 MiB; with a full GC each minute
 * it stayed at 56.7-57.1 MiB (bench/profile.md, "An idle agent's CPU and peak"). Go's runtime,
 * which Docker's and Nomad's agents run on, forces a collection every 2 minutes for the same
 * reason (runtime/proc.go `forcegcperiod`); so does this file, at idle only, where the pause
 * (~40-60 ms here, in code that stays cold) meets no task.
 *
 * A plain full GC, not a compacting one: `--compact-on-every-full-gc` would give back the start's
 * fragmented pages too (RSS 60 → 57 MiB in the first seconds) but copies every live object to do
 * it, and the process's peak RSS rose from ~62 to 69-70 MiB for that moment: a worse peak for a
 * small machine, so not done.
 *
 * The `gc` function comes from a context made while `--expose-gc` is set (V8 installs it in new
 * contexts only); the flag is cleared again, so the process's own global never gets a `gc`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How often an idle agent collects its heap, ms (Go's `forcegcperiod`). */
export const IDLE_GC_MS = 120_000;

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

/** Runs one full GC. Never throws: without a gc() it does nothing (V8 collects at its own time). */
export function collectGarbage(): void {
  gcFunction()?.();
}

/**
 * Runs a full GC every `everyMs` while `idle()` says so, on an unref'd timer.
 * @returns a function that stops it.
 */
export function collectWhileIdle(idle: () => boolean, everyMs = IDLE_GC_MS): () => void {
  const timer = setInterval(() => {
    if (idle()) collectGarbage();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
