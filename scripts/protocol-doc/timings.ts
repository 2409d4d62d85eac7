/**
 * Timings the flows of docs/protocol.md state (staleness, fencing, backoff, config defaults), read
 * from the code that applies them where it exports them.
 */
import type { z } from 'zod';
import { backoffMs, type AttemptEnd } from '../../controller/task-record.js';
import { AgentConfigSchema, ServerConfigSchema } from '../../shared/config.js';

// From the pure lifecycle module (it imports neither MQTT nor SQLite).
export { FENCE_REPEAT_MS, MISSING_HEARTBEATS } from '../../controller/lifecycle.js';

/** The default of a server setting, as its config schema fills it in. */
export const serverDefault = <K extends keyof typeof ServerConfigSchema.shape>(key: K) =>
  ServerConfigSchema.shape[key].parse(undefined) as z.output<(typeof ServerConfigSchema.shape)[K]>;
/** The default of an agent setting, as its config schema fills it in. */
export const agentDefault = <K extends keyof typeof AgentConfigSchema.shape>(key: K) =>
  AgentConfigSchema.shape[key].parse(undefined) as z.output<(typeof AgentConfigSchema.shape)[K]>;

/** Whole seconds as `N s`; the backoff and the config defaults are whole seconds. */
export function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

/** A delay as the flows write it: `at once` for 0, else whole seconds. */
function delay(ms: number): string {
  return ms === 0 ? 'at once' : seconds(ms);
}

/** The backoff after attempt 1, 2, 3 … ending this way until it reaches its cap, e.g. `1 s, 2 s, 4 s … 60 s`. */
function backoffSequence(end: AttemptEnd): string {
  const seq: number[] = [];
  for (let attempt = 1; attempt <= 100; attempt++) {
    const d = backoffMs(attempt, end);
    if (seq.length > 1 && d === seq[seq.length - 1]) break;
    seq.push(d);
  }
  return `${seq.slice(0, 3).map(delay).join(', ')} … ${delay(seq[seq.length - 1])}`;
}

/** The backoff rule as one sentence, by how the last attempt ended. */
export function backoffSentence(): string {
  return `The delay doubles with each attempt up to a cap: after attempt 1, 2, 3 … it is ${backoffSequence('failed')} when the attempt failed (or succeeded, with \`always\`), and ${backoffSequence('lost')} when it was lost.`;
}
