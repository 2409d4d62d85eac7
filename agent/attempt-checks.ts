/**
 * A small check of the task runner (agent/tasks.ts): whether an assignment's GPUs can be given here.
 */
import type { Attempt } from './task-events.js';

/**
 * Why an assignment's GPUs cannot be given here (the controller's picture was stale): a UUID this
 * node did not find, or one a task running here holds. Null when they can.
 */
export function gpuConflict(wanted: readonly string[], known: readonly string[], running: readonly Attempt[]): string | null {
  const unknown = wanted.filter((g) => !known.includes(g));
  if (unknown.length) return `it has no GPU ${unknown.join(', ')}`;
  for (const r of running) {
    if (r.fenced) continue;
    const taken = wanted.filter((g) => r.gpus?.includes(g));
    if (taken.length) return `GPU ${taken.join(', ')} is held by task ${r.taskId}`;
  }
  return null;
}
