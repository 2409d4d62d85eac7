/**
 * place() walks the nodes in headroom order and stops at the first that can take the task: it must
 * pick the node a check of every node ranks first. Checked against that full ranking (written out
 * here from the documented rule) over many random clusters, and the registry's incremental order
 * against a fresh sort after random changes.
 */
import { describe, expect, it } from 'vitest';
import { NodeRegistry } from '../../controller/registry.js';
import { freeMemory, rejectReason } from '../../controller/scheduler/feasibility.js';
import { headroomOrder } from '../../controller/scheduler/headroom.js';
import { place, WALK_FROM_NODES } from '../../controller/scheduler/place.js';
import type { ClusterSnapshot } from '../../controller/scheduler/snapshot.js';
import { cluster, GiB, makeNode, makeStatus, NOW, req } from './scheduler-fixtures.js';

/** A small deterministic PRNG (mulberry32), so a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The documented rule by brute force: every feasible node, most (spread) or least (binpack) headroom left, then the first id. */
function bestByScan(s: ClusterSnapshot, memory: number): string | null {
  const sign = s.policy === 'binpack' ? 1 : -1;
  const feasible = s.nodes.filter((n) => rejectReason(n, req(memory), s.now) === null);
  feasible.sort((a, b) => sign * (freeMemory(a) - freeMemory(b)) || (a.node < b.node ? -1 : 1));
  return feasible[0]?.node ?? null;
}

function randomCluster(r: () => number, policy: ClusterSnapshot['policy']): ClusterSnapshot {
  // up to twice WALK_FROM_NODES: both the full scan and the walk are checked
  const count = 1 + Math.floor(r() * 2 * WALK_FROM_NODES);
  const nodes = Array.from({ length: count }, (_, i) => {
    const pick = r();
    // few distinct sizes, so that ties on headroom are common
    const available = Math.floor(r() * 5) * 2 * GiB;
    return makeNode(`n${Math.floor(r() * 1000)}-${i}`, {
      available,
      state: pick < 0.1 ? 'draining' : pick < 0.15 ? 'offline' : 'online',
      maxTasks: 1 + Math.floor(r() * 3),
      running: r() < 0.3 ? [Math.floor(r() * 3) * GiB] : [],
      reservedMemory: r() < 0.2 ? GiB : 0,
      silentFor: r() < 0.05 ? 60_000 : 500,
    });
  });
  return cluster(nodes, policy);
}

describe('place(): the walk in headroom order', () => {
  it('picks the node a full scan ranks first, or none when none can take it (2,000 random clusters)', () => {
    for (let seed = 1; seed <= 2_000; seed++) {
      const r = rng(seed);
      const s = randomCluster(r, r() < 0.5 ? 'spread' : 'binpack');
      const memory = Math.floor(r() * 4) * GiB;
      const want = bestByScan(s, memory);
      const p = place(req(memory), s);
      expect({ seed, node: p.ok ? p.node : null }).toEqual({ seed, node: want });
      // the registry's order, handed in, gives the same answer
      const q = place(req(memory), { ...s, ranked: headroomOrder(s.nodes) });
      expect({ seed, node: q.ok ? q.node : null }).toEqual({ seed, node: want });
    }
  });
});

describe('NodeRegistry: headroom order kept as nodes change', () => {
  it('matches a fresh sort after every random change, and an earlier snapshot stays as it was', () => {
    const r = rng(42);
    const reg = new NodeRegistry();
    const ids = Array.from({ length: 30 }, (_, i) => `node-${i}`);
    let seq = 0;
    for (let step = 0; step < 3_000; step++) {
      const node = ids[Math.floor(r() * ids.length)];
      const before = reg.snapshot(NOW, 'spread');
      const frozen = { nodes: [...before.nodes], ranked: [...(before.ranked ?? [])] };
      const op = r();
      if (op < 0.4) reg.update({ ...makeStatus(node, { available: Math.floor(r() * 6) * GiB }), seq: seq++ }, NOW);
      else if (op < 0.6) reg.reserve(node, `t${step}`, Math.floor(r() * 3) * GiB);
      else if (op < 0.75) reg.release(node, `t${step - Math.floor(r() * 20)}`);
      else if (op < 0.85) reg.setDrained(node, r() < 0.5);
      else if (op < 0.9) reg.markDown(node, 'silent', NOW);
      else if (op < 0.93) reg.remove(node);
      else reg.heard(node, NOW + step * 100);
      const s = reg.snapshot(NOW, 'spread');
      expect(s.ranked).toEqual(headroomOrder(s.nodes));
      expect(new Set(s.ranked).size).toBe(s.nodes.length);
      expect(before.nodes).toEqual(frozen.nodes);
      expect(before.ranked).toEqual(frozen.ranked);
    }
  });
});
