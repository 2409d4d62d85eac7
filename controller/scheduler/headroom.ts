/**
 * The nodes in headroom order — most free memory first (`freeMemory`, bytes), ties by node id
 * (`compareIds`) — so that place() can walk them from the best and stop at the first that can
 * take a task, instead of checking every node for every task. The registry keeps the order as
 * nodes change (controller/registry.ts); a snapshot built without it gets it sorted here.
 *
 * Spread ranks feasible nodes by the most headroom left after the task, binpack by the least:
 * `freeAfter` is `freeMemory - need` for every node alike, so the order of freeMemory is the order
 * of freeAfter, and the first feasible node met in this order (spread), or in its runs of equal
 * headroom taken from the smallest (binpack), is the one a full scan ranks first.
 */
import { compareIds } from '../../shared/topics.js';
import { freeMemory } from './feasibility.js';
import type { NodeSnapshot } from './snapshot.js';

/** Sorts by headroom order: negative when `a` comes before `b`. */
export function byHeadroom(a: NodeSnapshot, b: NodeSnapshot): number {
  return freeMemory(b) - freeMemory(a) || compareIds(a.node, b.node);
}

/** A copy of `nodes` in headroom order. */
export function headroomOrder(nodes: readonly NodeSnapshot[]): NodeSnapshot[] {
  const keyed = nodes.map((n) => ({ n, free: freeMemory(n) }));
  keyed.sort((a, b) => b.free - a.free || compareIds(a.n.node, b.n.node));
  return keyed.map((k) => k.n);
}

/**
 * Where `n` stands, or would stand, in `ranked` (headroom order): the first index whose node does
 * not come before it. O(log n) calls of freeMemory.
 */
export function headroomIndex(ranked: readonly NodeSnapshot[], n: NodeSnapshot): number {
  let lo = 0;
  let hi = ranked.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byHeadroom(ranked[mid], n) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The nodes in the order a policy ranks them among those with at least `need` bytes free: spread
 * from the most headroom, binpack from the least (within equal headroom, by node id either way).
 * Nodes with less than `need` free are not visited: memory rules them out.
 */
export function* headroomWalk(
  ranked: readonly NodeSnapshot[],
  policy: 'spread' | 'binpack',
  need: number,
): Generator<NodeSnapshot, void, undefined> {
  if (policy === 'spread') {
    for (const n of ranked) {
      if (freeMemory(n) < need) return;
      yield n;
    }
    return;
  }
  let end = ranked.length;
  while (end > 0) {
    const free = freeMemory(ranked[end - 1]);
    let start = end - 1;
    while (start > 0 && freeMemory(ranked[start - 1]) === free) start--;
    if (free >= need) for (let i = start; i < end; i++) yield ranked[i];
    end = start;
  }
}
