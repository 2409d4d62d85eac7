/**
 * Stay local until it does not fit (issue 16, the seed's should_offload): with prefer-local the
 * submitting machine's node wins while it keeps the headroom, else the best other node, else the
 * local node after all. Pure: snapshots in, a placement out.
 */
import { describe, expect, it } from 'vitest';
import { place } from '../../controller/scheduler/place.js';
import type { ClusterSnapshot, PlacementRequest } from '../../controller/scheduler/snapshot.js';
import type { Headroom } from '../../shared/schemas/index.js';
import { cluster, expectPlaced, GiB, makeNode } from './scheduler-fixtures.js';
import { withFacts } from './scheduler-node-fit-fixtures.js';

const LAPTOP = 'machine-laptop';

/** The laptop (16 GiB, the submitter's) and a bigger server (64 GiB), both idle. */
function mesh(laptopAvailable = 16 * GiB): ClusterSnapshot {
  return cluster([
    withFacts(makeNode('laptop', { total: 16 * GiB, available: laptopAvailable }), { machineId: LAPTOP }),
    withFacts(makeNode('server', { total: 64 * GiB, available: 64 * GiB }), { machineId: 'machine-server' }),
  ]);
}

function task(
  memory: number,
  o: { prefer?: boolean; headroom?: Headroom; machineId?: string | null; node?: string } = {},
): PlacementRequest {
  return {
    kind: 'docker',
    requirements: {
      memory,
      cpus: 0,
      ...(o.machineId === null ? {} : { machineId: o.machineId ?? LAPTOP }),
      ...(o.prefer !== undefined ? { preferLocal: o.prefer } : {}),
      ...(o.headroom ? { localHeadroom: o.headroom } : {}),
      ...(o.node ? { node: o.node } : {}),
    },
  };
}

describe('prefer-local', () => {
  it('without it, spread picks the node with most headroom (the server)', () => {
    expect(expectPlaced(place(task(1 * GiB), mesh())).node).toBe('server');
  });

  it("with it, the submitter's own node while it keeps the default 20% of its memory", () => {
    const p = expectPlaced(place(task(12 * GiB, { prefer: true }), mesh()));
    expect(p.node).toBe('laptop');
    expect(p.reason).toContain('local node, keeps the headroom of 20% of memory (3.2 GiB)');
  });

  it('offloads to the best other node once the task would cross the headroom', () => {
    // 16 GiB - 13 GiB = 3 GiB left < 3.2 GiB.
    const p = expectPlaced(place(task(13 * GiB, { prefer: true }), mesh()));
    expect(p.node).toBe('server');
    expect(p.reason).toContain('the local node laptop would keep less than 20% of memory (3.2 GiB): offloaded to the best other node');
  });

  it('counts what is already used on the local node', () => {
    expect(expectPlaced(place(task(4 * GiB, { prefer: true }), mesh(8 * GiB))).node).toBe('laptop');
    expect(expectPlaced(place(task(5 * GiB, { prefer: true }), mesh(8 * GiB))).node).toBe('server');
  });

  it('takes a headroom in bytes', () => {
    expect(expectPlaced(place(task(10 * GiB, { prefer: true, headroom: { bytes: 6 * GiB } }), mesh())).node).toBe('laptop');
    expect(expectPlaced(place(task(11 * GiB, { prefer: true, headroom: { bytes: 6 * GiB } }), mesh())).node).toBe('server');
  });

  it('stays local past the headroom when no other node can take the task', () => {
    const only = cluster([
      withFacts(makeNode('laptop', { total: 16 * GiB }), { machineId: LAPTOP }),
      makeNode('full', { available: 1 * GiB }),
    ]);
    const p = expectPlaced(place(task(15 * GiB, { prefer: true }), only));
    expect(p.node).toBe('laptop');
    expect(p.reason).toContain('but no other node can take it');
  });

  it("follows the server's default, which a task's own preference overrides", () => {
    const withDefault: ClusterSnapshot = { ...mesh(), local: { prefer: true, headroom: { percent: 50 } } };
    expect(expectPlaced(place(task(8 * GiB), withDefault)).node).toBe('laptop');
    expect(expectPlaced(place(task(9 * GiB), withDefault)).node).toBe('server');
    expect(expectPlaced(place(task(1 * GiB, { prefer: false }), withDefault)).node).toBe('server');
  });

  it('does nothing for a submitter that sends no machine id, or names a node', () => {
    expect(expectPlaced(place(task(1 * GiB, { prefer: true, machineId: null }), mesh())).node).toBe('server');
    expect(expectPlaced(place(task(1 * GiB, { prefer: true, node: 'server' }), mesh())).node).toBe('server');
  });

  it('a submitter without a node of its own gets the best node', () => {
    const p = expectPlaced(place(task(1 * GiB, { prefer: true, machineId: 'elsewhere' }), mesh()));
    expect(p.node).toBe('server');
    expect(p.reason).toContain('no node of the submitting machine');
  });
});
