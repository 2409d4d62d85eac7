/** The scheduler's ranking (spread, binpack, ties, an explicit node) and its determinism. */
import { describe, expect, it } from 'vitest';
import { place, WALK_FROM_NODES } from '../../controller/scheduler/place.js';
import { cluster, deepFreeze, expectPlaced, expectRejected, GiB, makeNode, req } from './scheduler-fixtures.js';

describe('place(): ranking', () => {
  // free memory: a 4 GiB, b 10 GiB, c 7 GiB
  const nodes = () => [
    makeNode('a', { available: 4 * GiB }),
    makeNode('b', { available: 10 * GiB }),
    makeNode('c', { available: 7 * GiB }),
  ];

  it('spread picks the node with the most headroom left', () => {
    const p = expectPlaced(place(req(1 * GiB), cluster(nodes(), 'spread')));
    expect(p.node).toBe('b');
    expect(p.freeAfter).toBe(9 * GiB);
    expect(p.reason).toBe('b: 9.0 GiB left for tasks after placement (most headroom of 3 feasible nodes, spread)');
  });

  it('binpack picks the node with the least headroom left', () => {
    const p = expectPlaced(place(req(1 * GiB), cluster(nodes(), 'binpack')));
    expect(p.node).toBe('a');
    expect(p.freeAfter).toBe(3 * GiB);
    expect(p.reason).toContain('least headroom of 3 feasible nodes, binpack');
  });

  it('binpack skips nodes the task does not fit and lists them as rejected', () => {
    const p = expectPlaced(place(req(5 * GiB), cluster(nodes(), 'binpack')));
    expect(p.node).toBe('c');
    expect(p.freeAfter).toBe(2 * GiB);
    expect(p.reason).toContain('of 2 feasible nodes');
    expect(p.reason).toContain('; rejected a: needs 5.0 GiB memory');
  });

  it('says "1 feasible node" in the singular', () => {
    const p = expectPlaced(place(req(8 * GiB), cluster(nodes(), 'spread')));
    expect(p.node).toBe('b');
    expect(p.reason).toContain('of 1 feasible node, spread');
  });

  it(`from ${WALK_FROM_NODES} nodes on, names the nodes with more headroom that could not take the task as passed over`, () => {
    const s = cluster([
      makeNode('a', { available: 4 * GiB }),
      makeNode('b', { available: 10 * GiB, state: 'draining' }),
      makeNode('c', { available: 7 * GiB, maxTasks: 1, running: [0] }),
      ...Array.from({ length: WALK_FROM_NODES }, (_, i) => makeNode(`small${i}`, { available: 1 * GiB })),
    ]);
    const p = expectPlaced(place(req(1 * GiB), s));
    expect(p.node).toBe('a');
    expect(p.reason).toBe(
      'a: 3.0 GiB left for tasks after placement (most headroom, spread); passed over b: draining: takes no new tasks; c: busy: 1 of at most 1 tasks running',
    );
    const q = expectPlaced(place(req(2 * GiB), { ...s, policy: 'binpack' }));
    expect(q.reason).toBe('a: 2.0 GiB left for tasks after placement (least headroom, binpack)');
  });

  it('names at most 8 passed-over nodes and counts the rest', () => {
    const busy = Array.from({ length: WALK_FROM_NODES }, (_, i) =>
      makeNode(`busy${String(i).padStart(2, '0')}`, { maxTasks: 1, running: [0] }),
    );
    const p = expectPlaced(place(req(1 * GiB), cluster([...busy, makeNode('free', { available: 2 * GiB })])));
    expect(p.node).toBe('free');
    expect(p.reason).toContain('passed over busy00: busy: 1 of at most 1 tasks running;');
    expect(p.reason).toContain(`busy07: busy: 1 of at most 1 tasks running; and ${WALK_FROM_NODES - 8} more`);
    expect(p.reason).not.toContain('busy08');
  });

  it('ties go to the lexically first node id, whatever the input order', () => {
    const ids = ['zeta', 'alpha', 'mid', 'beta'];
    for (const policy of ['spread', 'binpack'] as const) {
      for (const order of [ids, [...ids].reverse(), ['mid', 'beta', 'zeta', 'alpha']]) {
        const p = expectPlaced(
          place(
            req(1 * GiB),
            cluster(
              order.map((id) => makeNode(id, { available: 6 * GiB })),
              policy,
            ),
          ),
        );
        expect(p.node).toBe('alpha');
      }
    }
  });

  it('headroom beats name order', () => {
    const s = cluster([makeNode('aaa', { available: 5 * GiB }), makeNode('zzz', { available: 6 * GiB })]);
    expect(expectPlaced(place(req(1 * GiB), s)).node).toBe('zzz');
    expect(expectPlaced(place(req(1 * GiB), { ...s, policy: 'binpack' })).node).toBe('aaa');
  });

  it('an explicit node wins even when another node has more room', () => {
    const p = expectPlaced(place(req(1 * GiB, { node: 'a' }), cluster(nodes(), 'spread')));
    expect(p.node).toBe('a');
    expect(p.freeAfter).toBe(3 * GiB);
    expect(p.reason).toContain('requested with --node');
    // the other nodes were not candidates, so they are not reported as rejected
    expect(p.reason).not.toContain('rejected');
  });

  it('an explicit unknown node is rejected as "unknown node", listing the known nodes', () => {
    const p = expectRejected(place(req(1 * GiB, { node: 'ghost' }), cluster([makeNode('c'), makeNode('a'), makeNode('b')])));
    expect(p.rejections).toEqual([{ node: 'ghost', code: 'unknown-node' }]);
    expect(p.message).toContain('"ghost"');
    expect(p.message).toContain('known: a, b, c');
  });

  it('an explicit node on an empty cluster says no nodes have joined', () => {
    const p = expectRejected(place(req(0, { node: 'ghost' }), cluster([])));
    expect(p.rejections).toEqual([{ node: 'ghost', code: 'unknown-node' }]);
    expect(p.message).toContain('"ghost"');
    expect(p.message).toContain('no nodes have joined');
  });

  it('an explicit infeasible node is rejected with its own reason, even when others could take the task', () => {
    const p = expectRejected(place(req(1 * GiB, { node: 'a' }), cluster([makeNode('a', { state: 'draining' }), makeNode('b')])));
    expect(p.rejections).toHaveLength(1);
    expect(p.rejections[0].node).toBe('a');
    expect(p.rejections[0].code).toBe('draining');
  });

  it('an explicit node too small for the task reports its memory', () => {
    const p = expectRejected(place(req(6 * GiB, { node: 'a' }), cluster(nodes())));
    expect(p.rejections).toEqual([
      { node: 'a', code: 'memory', needed: 6 * GiB, free: 4 * GiB, offered: 32 * GiB, available: 4 * GiB, held: 0 },
    ]);
  });

  it('rejections are sorted by node id and carry one code per node', () => {
    const s = cluster([
      makeNode('delta', { state: 'draining' }),
      makeNode('bravo', { state: 'offline', reason: 'shutdown' }),
      makeNode('charlie', { maxTasks: 1, running: [0] }),
      makeNode('alpha', { silentFor: 60_000 }),
    ]);
    const p = expectRejected(place(req(), s));
    expect(p.rejections.map((r) => r.node)).toEqual(['alpha', 'bravo', 'charlie', 'delta']);
    expect(p.rejections.map((r) => r.code)).toEqual(['stale-heartbeat', 'offline', 'max-tasks', 'draining']);
    expect(p.rejections[1].detail).toBe('shutdown');
    expect(p.message).toBe('no node can take this docker task now');
  });

  it('an empty cluster says to start an agent', () => {
    const p = expectRejected(place(req(1 * GiB), cluster([])));
    expect(p.rejections).toEqual([]);
    expect(p.message).toContain('no nodes have joined');
    expect(p.message).toContain('cutter agent');
  });
});

describe('place(): determinism', () => {
  const build = () =>
    cluster(
      [
        makeNode('n3', { available: 7 * GiB, running: [1 * GiB] }),
        makeNode('n1', { available: 7 * GiB }),
        makeNode('n2', { state: 'draining' }),
        makeNode('n4', { available: 2 * GiB, reservedMemory: 1 * GiB, reservedTasks: 1 }),
      ],
      'spread',
    );

  it('the same snapshot gives the same answer', () => {
    const s = build();
    const a = place(req(2 * GiB), s);
    const b = place(req(2 * GiB), s);
    const c = place(req(2 * GiB), build());
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(expectPlaced(a).node).toBe('n1');
  });

  it('does not mutate the snapshot (works on a deeply frozen one, leaves it equal)', () => {
    const s = build();
    const before = structuredClone(s);
    deepFreeze(s);
    expect(() => place(req(2 * GiB), s)).not.toThrow();
    expect(() => place(req(64 * GiB), s)).not.toThrow();
    expect(() => place(req(0, { node: 'nope' }), s)).not.toThrow();
    expect(s).toEqual(before);
    expect(s.nodes.map((n) => n.node)).toEqual(['n3', 'n1', 'n2', 'n4']);
  });
});
