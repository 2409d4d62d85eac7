/**
 * Model-aware placement for ollama tasks (pure functions of a NodeSnapshot): where a model is
 * loaded beats where it is only on disk, which beats a node that is pulling it already for an
 * earlier request ("loading"), which beats a node that must pull it — loading a cold 27B model
 * takes 10-30 s and pulling one takes minutes. A node without the model is a candidate only for a
 * request that may pull it (op `pull`, or `pull: true`); otherwise it is rejected `model-missing`,
 * whatever other nodes have: Ollama would answer 404 there. A node that must load or pull a model
 * needs room for it: its size (as Ollama's /api/tags reports it, bytes) must fit the node's free
 * memory for tasks, or the free memory of one of its GPUs (measured by the driver, so what other
 * programs hold is already taken off).
 */
import { canonicalModel, ruleMatches, sameModel, type PlacementRule } from '../../shared/ollama.js';
import type { Rejection } from '../../shared/schemas/index.js';
import { freeMemory, type NodeRejection } from './feasibility.js';
import { heldGpus } from './gpus.js';
import type { NodeSnapshot, PlacementRequest } from './snapshot.js';

/** 0 = loaded, 1 = on disk, 2 = loading (pulled there for a request in flight), 3 = must pull (lower ranks first). */
export type ModelTier = 0 | 1 | 2 | 3;
export const TIER_NAMES = ['loaded', 'on disk', 'loading', 'must pull'] as const;

/** Largest size any node reports for the model, bytes; null when no node has it. */
export function modelSize(nodes: readonly NodeSnapshot[], model: string): number | null {
  let size: number | null = null;
  for (const n of nodes) {
    for (const m of n.status.capacity?.ollama?.models ?? [])
      if (sameModel(m.name, model) && (size === null || m.size > size)) size = m.size;
  }
  return size;
}

/**
 * Ollama requests the node has in flight: the ollama tasks its heartbeat lists plus those placed
 * since, or the controller's own count of the ollama tasks it placed there and that have not ended
 * (`NodeSnapshot.models`), whichever is more.
 */
export function inFlight(n: NodeSnapshot): number {
  const listed = n.status.running.filter((t) => t.kind === 'ollama').length + n.reservedTasks;
  let own = 0;
  for (const w of Object.values(n.models ?? {})) own += w.count;
  return Math.max(listed, own);
}

/** True when a request in flight on the node may pull the model there (so it is on its way). */
function pullingHere(n: NodeSnapshot, model: string): boolean {
  return (n.models?.[canonicalModel(model)]?.pulling ?? 0) > 0;
}

/**
 * Most free memory of one GPU of the node, bytes (0 without a GPU that reports it). A GPU reserved
 * for a task (`--gpus`, ./gpus.ts) does not count: that task may fill it any moment.
 */
function gpuFree(n: NodeSnapshot): number {
  const held = heldGpus(n);
  return Math.max(0, ...(n.status.capacity?.gpus ?? []).map((g) => (g.uuid && held.has(g.uuid) ? 0 : (g.memoryFree ?? 0))));
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
  const absent: ModelTier = pullingHere(n, req.model) ? 2 : 3;
  if (req.op === 'pull') return { tier: info.models.some((m) => sameModel(m.name, req.model)) ? 1 : absent };
  // Deleting or copying a model never loads it: the node needs it on disk, not the memory to load it.
  // Nor does creating a model from it or pushing it (POST /api/create with `from`, /api/push).
  if (req.op === 'create' || req.op === 'push')
    return info.models.some((m) => sameModel(m.name, req.model))
      ? { tier: 1 }
      : { rejection: { code: 'model-missing', model: canonicalModel(req.model) } };
  if (req.op === 'delete' || req.op === 'copy')
    return info.models.some((m) => sameModel(m.name, req.model))
      ? { tier: 1 }
      : { rejection: { code: 'model-missing', model: canonicalModel(req.model) } };
  if (info.loaded.some((m) => sameModel(m.name, req.model))) return { tier: 0 };
  const own = info.models.find((m) => sameModel(m.name, req.model));
  const need = own?.size ?? size;
  // Without the model only a request that may pull it can go there: Ollama answers 404 otherwise.
  if (!own && !req.pull) return { rejection: { code: 'model-missing', model: canonicalModel(req.model) } };
  if (need !== null) {
    const ram = freeMemory(n);
    const gpu = gpuFree(n);
    if (need > ram && need > gpu) {
      return {
        rejection: { code: 'model-too-big', model: canonicalModel(req.model), needed: need, free: ram, gpuFree: gpu, onDisk: !!own },
      };
    }
  }
  return { tier: own ? 1 : absent };
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
