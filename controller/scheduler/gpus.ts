/**
 * GPU placement (`requirements.gpus`): which of a node's GPUs a task can have, as a pure function
 * of the node's snapshot. A GPU can be handed out when the node announced it with a UUID
 * (agent/gpus.ts, from nvidia-smi), no task running or placed there holds it (the heartbeat's
 * `running[].gpus` and the controller's own placements since, NodeSnapshot `gpusHeld`: so two
 * tasks placed back to back get different devices), and its free VRAM is at least the request's
 * `memory`. Docker tasks also need an engine that can give containers GPUs (`docker.gpuError`).
 * Devices with the most free VRAM are chosen first, then by index, then UUID (deterministic).
 */
import type { Gpu, GpuRequirement } from '../../shared/schemas/index.js';
import type { NodeRejection } from './feasibility.js';
import type { NodeSnapshot, PlacementRequest } from './snapshot.js';

/** UUIDs of the node's GPUs held by tasks running or placed there. */
export function heldGpus(n: NodeSnapshot): Set<string> {
  const held = new Set<string>(n.gpusHeld ?? []);
  for (const t of n.status.running) for (const g of t.gpus ?? []) held.add(g);
  return held;
}

/** The node's GPUs that can be assigned (announced with a UUID). */
function assignable(n: NodeSnapshot): (Gpu & { uuid: string })[] {
  return (n.status.capacity?.gpus ?? []).filter((g): g is Gpu & { uuid: string } => typeof g.uuid === 'string');
}

/** Most free VRAM first, then index, then UUID. */
function byFreeVram(a: Gpu & { uuid: string }, b: Gpu & { uuid: string }): number {
  return (
    (b.memoryFree ?? -1) - (a.memoryFree ?? -1) || (a.index ?? 1e9) - (b.index ?? 1e9) || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0)
  );
}

/**
 * The GPUs the task would get on this node, or why it cannot have them (a `gpus` rejection).
 * @returns `{ devices: [] }` for a task that asks for none.
 */
export function fitGpus(n: NodeSnapshot, req: PlacementRequest): { devices: string[] } | NodeRejection {
  const want: GpuRequirement | undefined = req.requirements.gpus;
  if (!want) return { devices: [] };
  const gpus = assignable(n);
  const memory = want.memory;
  const needed = want.devices ? want.devices.length : want.count === 'all' ? Math.max(1, gpus.length) : want.count;
  const base = { code: 'gpus' as const, needed, gpuTotal: gpus.length, ...(memory !== undefined ? { gpuMemory: memory } : {}) };
  if (gpus.length === 0) {
    const why = n.status.capacity?.nvidia?.error;
    return { ...base, free: 0, ...(why ? { detail: why } : {}) };
  }
  const dockerWhy = req.kind === 'docker' ? n.status.capacity?.docker.gpuError : undefined;
  if (dockerWhy) return { ...base, free: 0, detail: dockerWhy };
  if (req.kind === 'ollama') return { ...base, free: 0, detail: 'ollama tasks use the GPUs of the node’s own Ollama server' };

  const held = heldGpus(n);
  const unheld = gpus.filter((g) => !held.has(g.uuid));
  const fits = (g: Gpu) => memory === undefined || (g.memoryFree !== null && g.memoryFree >= memory);
  const usable = unheld.filter(fits).sort(byFreeVram);
  const numbers = {
    free: usable.length,
    gpusHeld: gpus.length - unheld.length,
    ...(memory !== undefined ? { gpuFree: Math.max(0, ...unheld.map((g) => g.memoryFree ?? 0)) } : {}),
  };
  if (want.devices) {
    const missing = want.devices.filter((d) => !gpus.some((g) => g.uuid === d));
    if (missing.length > 0) return { ...base, ...numbers, detail: `it has no GPU ${missing.join(', ')}` };
    const ok = want.devices.every((d) => usable.some((g) => g.uuid === d));
    return ok ? { devices: [...want.devices] } : { ...base, ...numbers };
  }
  if (want.count === 'all') return usable.length === gpus.length ? { devices: usable.map((g) => g.uuid) } : { ...base, ...numbers };
  if (usable.length < needed) return { ...base, ...numbers };
  return { devices: usable.slice(0, needed).map((g) => g.uuid) };
}

/** The feasibility check: null when the node can give the task its GPUs (or it asks for none), else the rejection. */
export function gpuRejection(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  if (!req.requirements.gpus) return null;
  const fit = fitGpus(n, req);
  return 'devices' in fit ? null : fit;
}
