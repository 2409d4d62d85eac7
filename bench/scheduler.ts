/**
 * The scheduler alone, in this process: `place()` (pure) on the registry's snapshot of `nodes`
 * identical nodes, with a reservation and its release around each placement as the controller
 * does — no MQTT, no SQLite. The ceiling the controller's placement rate can reach on this
 * machine with that many nodes.
 */
import { NodeRegistry } from '../controller/registry.js';
import { place } from '../controller/scheduler/place.js';
import type { NodeStatus } from '../shared/schemas/index.js';

const GiB = 1024 ** 3;

/** @returns placements/s, the best of `rounds` rounds of `roundMs` each. */
export function measureScheduler(nodes: number, roundMs = 1_000, rounds = 3): number {
  const registry = new NodeRegistry();
  const now = Date.now();
  for (let i = 0; i < nodes; i++) {
    const status: NodeStatus = {
      v: 1,
      node: `sim-${i}`,
      state: 'online',
      version: 'bench',
      seq: 1,
      ts: now,
      heartbeatMs: 2_000,
      capacity: {
        cpu: { cores: 8, loadPercent: 1 },
        memory: { total: 32 * GiB, available: 30 * GiB },
        gpus: [],
        docker: { available: false },
      },
      offer: { maxMemory: null, maxTasks: 64, executors: ['exec'], labels: {}, lostAfterMs: 0 },
      running: [],
    };
    registry.update(status, now);
  }
  const req = { kind: 'exec' as const, requirements: { memory: 0, cpus: 0 } };
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < roundMs) {
      const p = place(req, registry.snapshot(now, 'spread'));
      if (!p.ok) throw new Error(`no placement: ${p.message}`);
      registry.reserve(p.node, `t${n}`, 0);
      registry.release(p.node, `t${n}`);
      n++;
    }
    best = Math.max(best, n / ((performance.now() - t0) / 1000));
  }
  return best;
}
