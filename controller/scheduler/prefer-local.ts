/**
 * "Stay local until it does not fit" (the seed's `should_offload`): with `--prefer-local` (or the
 * server's default) a task goes to a node of the submitting machine — the one whose announced
 * `offer.machineId` equals the task's `requirements.machineId` — while that node keeps the
 * headroom (`--local-headroom`, a share of its memory or bytes) after the task; else to the best
 * other node; else, when no other node can take it, to the local node after all. A pure narrowing
 * of the feasible nodes: place() ranks whatever pool this leaves as usual.
 */
import { formatBytes } from '../../shared/units.js';
import type { Headroom } from '../../shared/schemas/index.js';
import type { ClusterSnapshot, NodeSnapshot, PlacementRequest } from './snapshot.js';

/** The headroom when neither the task nor the server sets one: a fifth of the local node's memory. */
export const DEFAULT_LOCAL_HEADROOM: Headroom = { percent: 20 };

/** Bytes the node must keep free under `headroom` (`percent` of its `capacity.memory.total`). */
export function headroomBytes(n: NodeSnapshot, headroom: Headroom): number {
  if ('bytes' in headroom) return headroom.bytes;
  return Math.ceil(((n.status.capacity?.memory.total ?? 0) * headroom.percent) / 100);
}

/** `20% of memory (6.4 GiB)` or `2.0 GiB`. */
function describeHeadroom(headroom: Headroom, bytes: number): string {
  return 'percent' in headroom ? `${headroom.percent}% of memory (${formatBytes(bytes)})` : formatBytes(bytes);
}

/** Whether prefer-local has a say for this task: asked for (by the task or the server), a submitting machine known, no node named. */
export function preferLocalApplies(req: PlacementRequest, snapshot: ClusterSnapshot): boolean {
  const r = req.requirements;
  return (r.preferLocal ?? snapshot.local?.prefer ?? false) && !!r.machineId && !r.node;
}

/**
 * Narrows the feasible nodes to where prefer-local sends the task.
 * @param feasible the nodes that can take the task, with the bytes each would have left (`freeAfter`).
 * @returns the pool to rank and, when prefer-local applied, a note for the placement reason.
 */
export function preferLocal<T extends { node: string; freeAfter: number }>(
  feasible: T[],
  req: PlacementRequest,
  snapshot: ClusterSnapshot,
): { pool: T[]; note?: string } {
  const r = req.requirements;
  if (!preferLocalApplies(req, snapshot)) return { pool: feasible };
  const headroom = r.localHeadroom ?? snapshot.local?.headroom ?? DEFAULT_LOCAL_HEADROOM;
  const byId = new Map(snapshot.nodes.map((n) => [n.node, n]));
  const isLocal = (f: T) => byId.get(f.node)?.status.offer?.machineId === r.machineId;
  const locals = feasible.filter(isLocal);
  const others = feasible.filter((f) => !isLocal(f));
  if (locals.length === 0) {
    const known = snapshot.nodes.some((n) => n.status.offer?.machineId === r.machineId);
    return {
      pool: feasible,
      note: known ? 'the local node cannot take it: best other node' : 'no node of the submitting machine: best node',
    };
  }
  const keeping = locals.filter((f) => f.freeAfter >= headroomBytes(byId.get(f.node)!, headroom));
  if (keeping.length > 0) {
    const keep = headroomBytes(byId.get(keeping[0].node)!, headroom);
    return { pool: keeping, note: `local node, keeps the headroom of ${describeHeadroom(headroom, keep)}` };
  }
  const first = locals[0];
  const why = `the local node ${first.node} would keep less than ${describeHeadroom(headroom, headroomBytes(byId.get(first.node)!, headroom))}`;
  if (others.length > 0) return { pool: others, note: `${why}: offloaded to the best other node` };
  return { pool: locals, note: `${why}, but no other node can take it` };
}
