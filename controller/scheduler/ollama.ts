/**
 * Model-aware placement for ollama tasks (pure functions of a NodeSnapshot): where a model is
 * loaded beats where it is only on disk, which beats a node that must pull it — loading a cold
 * 27B model takes 10-30 s and pulling one takes minutes. A node that must load or pull a model
 * needs room for it: its size (as Ollama's /api/tags reports it, bytes) must fit the node's free
 * memory for tasks, or the free memory of one of its GPUs (measured by the driver, so what other
 * programs hold is already taken off).
 */
import { canonicalModel, ruleMatches, sameModel, type PlacementRule } from '../../shared/ollama.js';
import type { Rejection } from '../../shared/schemas/index.js';
import { freeMemory, type NodeRejection } from './feasibility.js';
import type { NodeSnapshot, PlacementRequest } from './snapshot.js';

/** 0 = loaded, 1 = on disk, 2 = must pull (lower ranks first). */
export type ModelTier = 0 | 1 | 2;
export const TIER_NAMES = ['loaded', 'on disk', 'must pull'] as const;

/** Largest size any node reports for the model, bytes; null when no node has it. */
export function modelSize(nodes: readonly NodeSnapshot[], model: string): number | null {
  let size: number | null = null;
  for (const n of nodes) {
    for (const m of n.status.capacity?.ollama?.models ?? [])
      if (sameModel(m.name, model) && (size === null || m.size > size)) size = m.size;
  }
  return size;
}

/** Ollama requests the node has in flight: the ollama tasks its heartbeat lists plus those placed since. */
export function inFlight(n: NodeSnapshot): number {
  return n.status.running.filter((t) => t.kind === 'ollama').length + n.reservedTasks;
}

/** Most free memory of one GPU of the node, bytes (0 without a GPU that reports it). */
function gpuFree(n: NodeSnapshot): number {
  return Math.max(0, ...(n.status.capacity?.gpus ?? []).map((g) => g.memoryFree ?? 0));
}

/**
 * Where the model stands on the node, or why the node cannot serve it.
 * @param size the model's size in the mesh (modelSize()), null when unknown.
 */
export function modelTier(
  n: NodeSnapshot,
  req: Required<Pick<PlacementRequest, 'ollama'>>['ollama'],
  size: number | null,
): { tier: ModelTier } | { rejection: NodeRejection } {
  const info = n.status.capacity?.ollama;
  if (!info?.available) return { rejection: { code: 'no-ollama', ...(info?.error ? { detail: info.error } : {}) } };
  if (req.op === 'pull') return { tier: info.models.some((m) => sameModel(m.name, req.model)) ? 1 : 2 };
  if (info.loaded.some((m) => sameModel(m.name, req.model))) return { tier: 0 };
  const own = info.models.find((m) => sameModel(m.name, req.model));
  const need = own?.size ?? size;
  if (!own && !req.pull && size === null) return { rejection: { code: 'model-missing', model: canonicalModel(req.model) } };
  if (need !== null) {
    const ram = freeMemory(n);
    const gpu = gpuFree(n);
    if (need > ram && need > gpu) {
      return {
        rejection: { code: 'model-too-big', model: canonicalModel(req.model), needed: need, free: ram, gpuFree: gpu, onDisk: !!own },
      };
    }
  }
  return { tier: own ? 1 : 2 };
}

/** The first placement rule that covers the model, with its index, or null. */
export function ruleFor(
  rules: readonly PlacementRule[] | undefined,
  model: string,
  size: number | null,
): { rule: PlacementRule; index: number } | null {
  const index = (rules ?? []).findIndex((r) => ruleMatches(r, model, size));
  return index < 0 ? null : { rule: rules![index], index };
}

/** A rule as a rejection carries it (shared/reasons.ts `describeRule()` puts it into words). */
export function ruleData(rule: PlacementRule, index: number): NonNullable<Rejection['rule']> {
  return {
    index,
    nodes: [...rule.nodes],
    ...(rule.model !== undefined ? { model: rule.model } : {}),
    ...(rule.minSize !== undefined ? { minSize: rule.minSize } : {}),
    ...(rule.maxSize !== undefined ? { maxSize: rule.maxSize } : {}),
  };
}
