/**
 * Keeps V8's young generation (new space) at its first size while the agent starts.
 *
 * Starting an agent allocates a burst: the bundle's modules, zod building every schema, the first
 * probes of the host, its GPUs and its executors. V8 answers a burst by doubling the new space at
 * each scavenge (`--semi-space-growth-factor`, 2 by default: `node --v8-options`), up to 16 MiB
 * here, and gives it back only when its memory reducer runs, ~8 s after the allocation stops. An
 * idle agent thus held 72-76 MiB RSS for its first 9 s and 63-64 MiB after (bench/profile.md,
 * "Agent idle footprint"). With growth held at 1 during the start, the new space stays at 1 MiB
 * per semi-space and the peak goes with it; the factor is put back to V8's default once the agent
 * has started, so tasks (a 100 MB output stream) get the young generation they got before.
 *
 * V8 reads the factor at each growth (heap/new-spaces.cc `SemiSpaceNewSpace::Grow`), so
 * `v8.setFlagsFromString` after the process started takes effect. A factor the user gave on
 * node's command line is left alone.
 */
import { setFlagsFromString } from 'node:v8';

const FLAG = '--semi-space-growth-factor';
/** V8's default (Node 20, V8 11.3: `node --v8-options`). */
const V8_DEFAULT = 2;

const userSet = () => process.execArgv.some((a) => a.startsWith(FLAG) || a.startsWith('--semi_space_growth_factor'));

let held = false;

/** Holds the young generation at its size until `releaseYoungGeneration()`. No-op when the user set the factor. */
export function holdYoungGeneration(): void {
  if (held || userSet()) return;
  setFlagsFromString(`${FLAG}=1`);
  held = true;
}

/** Puts the growth factor back to V8's default; no-op unless held. */
export function releaseYoungGeneration(): void {
  if (!held) return;
  held = false;
  setFlagsFromString(`${FLAG}=${V8_DEFAULT}`);
}
