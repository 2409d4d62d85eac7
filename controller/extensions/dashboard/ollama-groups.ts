/**
 * The dashboard's Ollama requests, grouped (issue 19): every Ollama API call and `cutter ollama`
 * run is an ollama task, so a busy front-end would fill the task table with one row per call.
 * Instead the page shows one row per model and node: how many calls, how many are live, and the
 * newest one.
 */
import { canonicalModel } from '../../../shared/ollama.js';
import { isTerminal } from '../../../shared/schemas/index.js';
import type { TaskRecord } from '../../task-record.js';

/** Most groups a snapshot carries (the most recently active first). */
export const MAX_OLLAMA_GROUPS = 100;

/** One model (canonical name, shared/ollama.ts) on one node (node null: not placed yet, or never placed). */
export interface OllamaGroup {
  model: string;
  node: string | null;
  /** Calls the controller still keeps (finished ones are forgotten after `--forget-after`). */
  count: number;
  /** Calls queued, assigned or running. */
  live: number;
  /** Calls that ended failed or lost. */
  failed: number;
  /** The newest call: its task id, op (chat, generate, embed…), state, last change (ms epoch) and run time (ms, null until it ran). */
  latest: { taskId: string; op: string; state: string; updatedAt: number; durationMs: number | null };
}

/** The groups of `records`' ollama tasks, most recently active first, at most MAX_OLLAMA_GROUPS. */
export function ollamaGroups(records: Iterable<TaskRecord>, now: number): OllamaGroup[] {
  const groups = new Map<string, OllamaGroup>();
  for (const r of records) {
    if (r.spec.kind !== 'ollama') continue;
    const s = r.state;
    // `tinyllama` and `tinyllama:latest` are one model (Ollama's default tag).
    const model = canonicalModel(r.spec.model);
    const key = `${model}\u0000${s.node ?? ''}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        model,
        node: s.node,
        count: 0,
        live: 0,
        failed: 0,
        latest: { taskId: '', op: '', state: '', updatedAt: -1, durationMs: null },
      };
      groups.set(key, g);
    }
    g.count++;
    if (!isTerminal(s.state)) g.live++;
    else if (s.state === 'failed' || s.state === 'lost') g.failed++;
    if (s.createdAt > g.latest.updatedAt || (s.createdAt === g.latest.updatedAt && s.taskId > g.latest.taskId)) {
      const end = s.finishedAt ?? now;
      g.latest = {
        taskId: s.taskId,
        op: r.spec.op,
        state: s.state,
        updatedAt: s.createdAt,
        durationMs: s.startedAt !== null ? Math.max(0, end - s.startedAt) : null,
      };
    }
  }
  return [...groups.values()].sort((a, b) => b.latest.updatedAt - a.latest.updatedAt).slice(0, MAX_OLLAMA_GROUPS);
}
