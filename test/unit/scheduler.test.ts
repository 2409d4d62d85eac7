import { describe, expect, it } from 'vitest';
import { freeMemory } from '../../controller/scheduler/feasibility.js';
import { place } from '../../controller/scheduler/place.js';
import type { ClusterSnapshot, NodeSnapshot, Placement, PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { STALE_AFTER_HEARTBEATS } from '../../controller/scheduler/snapshot.js';
import { NodeStatusSchema, type NodeStatus, type TaskKind } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const NOW = 1_700_000_000_000;

interface NodeOpts {
  state?: NodeStatus['state'];
  reason?: string;
  cores?: number;
  /** capacity.memory.total, bytes */
  total?: number;
  /** capacity.memory.available, bytes */
  available?: number;
  maxMemory?: number | null;
  maxTasks?: number;
  executors?: ('docker' | 'exec')[];
  dockerError?: string;
  /** memory of each running task, bytes */
  running?: number[];
  heartbeatMs?: number;
  /** ms since the controller last heard from the node */
  silentFor?: number;
  reservedMemory?: number;
  reservedTasks?: number;
  /** omit capacity and offer (a node that has not announced yet, or a last will) */
  bare?: boolean;
}

/** A NodeStatus that passes NodeStatusSchema (so the scheduler is fed what the wire delivers). */
function makeStatus(node: string, o: NodeOpts = {}): NodeStatus {
  const executors = o.executors ?? ['docker'];
  const raw = {
    v: 1,
    node,
    state: o.state ?? 'online',
    version: '0.1.0',
    seq: 7,
    ts: NOW - 100,
    heartbeatMs: o.heartbeatMs ?? 2_000,
    hostname: `${node}.lan`,
    ...(o.reason ? { reason: o.reason } : {}),
    ...(o.bare
      ? {}
      : {
          capacity: {
            cpu: { cores: o.cores ?? 8, loadPercent: 12.5 },
            memory: { total: o.total ?? 32 * GiB, available: o.available ?? 32 * GiB },
            gpus: [],
            docker: executors.includes('docker')
              ? { available: true, version: '27.0.1' }
              : { available: false, ...(o.dockerError ? { error: o.dockerError } : {}) },
          },
          offer: {
            maxMemory: o.maxMemory === undefined ? null : o.maxMemory,
            maxTasks: o.maxTasks ?? 4,
            executors,
            labels: {},
          },
        }),
    running: (o.running ?? []).map((memory, i) => ({ taskId: `${node}-t${i}`, attempt: 1, memory })),
  };
  return NodeStatusSchema.parse(raw);
}

function makeNode(node: string, o: NodeOpts = {}): NodeSnapshot {
  return {
    node,
    status: makeStatus(node, o),
    lastSeenMs: NOW - (o.silentFor ?? 500),
    reservedMemory: o.reservedMemory ?? 0,
    reservedTasks: o.reservedTasks ?? 0,
  };
}

function cluster(nodes: NodeSnapshot[], policy: ClusterSnapshot['policy'] = 'spread'): ClusterSnapshot {
  return { now: NOW, nodes, policy };
}

function req(memory = 0, extra: { kind?: TaskKind; cpus?: number; node?: string } = {}): PlacementRequest {
  return {
    kind: extra.kind ?? 'docker',
    requirements: { memory, cpus: extra.cpus ?? 0, ...(extra.node ? { node: extra.node } : {}) },
  };
}

type Rejected = Extract<Placement, { ok: false }>;
type Placed = Extract<Placement, { ok: true }>;

function expectPlaced(p: Placement): Placed {
  if (!p.ok) throw new Error(`expected a placement, got rejection: ${p.message} ${JSON.stringify(p.rejections)}`);
  return p;
}

function expectRejected(p: Placement): Rejected {
  if (p.ok) throw new Error(`expected a rejection, got placement on ${p.node}: ${p.reason}`);
  return p;
}

/** The reason the single candidate `node` was rejected for `r`. */
function reasonFor(n: NodeSnapshot, r: PlacementRequest = req()): string {
  const p = expectRejected(place(r, cluster([n])));
  expect(p.rejections).toHaveLength(1);
  expect(p.rejections[0].node).toBe(n.node);
  return p.rejections[0].reason;
}

/** Adds the reservation the controller holds after placing `memory` bytes on `node`. */
function withReservation(s: ClusterSnapshot, node: string, memory: number): ClusterSnapshot {
  return {
    ...s,
    nodes: s.nodes.map((n) =>
      n.node === node ? { ...n, reservedMemory: n.reservedMemory + memory, reservedTasks: n.reservedTasks + 1 } : n,
    ),
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}

describe('place(): feasibility', () => {
  it('a healthy node with room is feasible', () => {
    const p = expectPlaced(place(req(1 * GiB), cluster([makeNode('n1')])));
    expect(p.node).toBe('n1');
  });

  it('rejects an offline node and shows why it went offline', () => {
    const reason = reasonFor(makeNode('n1', { state: 'offline', reason: 'agent shutting down' }));
    expect(reason).toBe('offline (agent shutting down)');
  });

  it('rejects the minimal last-will form (offline, no capacity) as offline, not as "no capacity"', () => {
    const lastWill = NodeStatusSchema.parse({ v: 1, node: 'n1', state: 'offline', version: '0.1.0', seq: 0, ts: NOW, heartbeatMs: 2000 });
    const node: NodeSnapshot = { node: 'n1', status: lastWill, lastSeenMs: NOW, reservedMemory: 0, reservedTasks: 0 };
    expect(reasonFor(node)).toBe('offline');
  });

  it('rejects a draining node', () => {
    const reason = reasonFor(makeNode('n1', { state: 'draining' }));
    expect(reason).toMatch(/^draining/);
    expect(reason).toContain('no new tasks');
  });

  it(`rejects a node silent for longer than ${STALE_AFTER_HEARTBEATS} heartbeats as stale`, () => {
    expect(STALE_AFTER_HEARTBEATS).toBe(2.5);
    const reason = reasonFor(makeNode('n1', { heartbeatMs: 2_000, silentFor: 5_001 }));
    expect(reason).toMatch(/^stale: no heartbeat for /);
    expect(reason).toContain('5.0 s');
  });

  it('accepts a node silent for exactly 2.5 heartbeats (the boundary is exclusive)', () => {
    expectPlaced(place(req(), cluster([makeNode('n1', { heartbeatMs: 2_000, silentFor: 5_000 })])));
  });

  it("judges staleness by the node's own heartbeat interval", () => {
    // 20 s of silence is stale for a 2 s heartbeat, fresh for a 10 s heartbeat.
    expect(reasonFor(makeNode('fast', { heartbeatMs: 2_000, silentFor: 20_000 }))).toMatch(/^stale/);
    expectPlaced(place(req(), cluster([makeNode('slow', { heartbeatMs: 10_000, silentFor: 20_000 })])));
  });

  it('rejects an online node that has not announced capacity and offer yet', () => {
    expect(reasonFor(makeNode('n1', { bare: true }))).toBe('has not announced its capacity yet');
  });

  it('rejects a docker task on a node without a Docker engine, with the docker error text', () => {
    const reason = reasonFor(makeNode('n1', { executors: ['exec'], dockerError: 'connect ENOENT /var/run/docker.sock' }));
    expect(reason).toBe('no Docker engine (connect ENOENT /var/run/docker.sock)');
  });

  it('rejects a docker task on a node without Docker even when no error text is known', () => {
    expect(reasonFor(makeNode('n1', { executors: [] }))).toBe('no Docker engine');
  });

  it('rejects an exec task on a node without exec and says to use --allow-exec', () => {
    const reason = reasonFor(makeNode('n1', { executors: ['docker'] }), req(0, { kind: 'exec' }));
    expect(reason).toContain('exec');
    expect(reason).toContain('--allow-exec');
  });

  it('places an exec task on a node that allows exec', () => {
    const s = cluster([makeNode('docker-only', { executors: ['docker'] }), makeNode('shell', { executors: ['docker', 'exec'] })]);
    const p = expectPlaced(place(req(0, { kind: 'exec' }), s));
    expect(p.node).toBe('shell');
    expect(p.reason).toContain('docker-only');
    expect(p.reason).toContain('--allow-exec');
  });

  it('rejects a node whose running tasks reach maxTasks', () => {
    expect(reasonFor(makeNode('n1', { maxTasks: 2, running: [0, 0] }))).toBe('busy: 2 of at most 2 tasks running');
  });

  it('counts reserved (placed but not yet reported) tasks against maxTasks', () => {
    expect(reasonFor(makeNode('n1', { maxTasks: 2, running: [0], reservedTasks: 1 }))).toBe('busy: 2 of at most 2 tasks running');
    expect(reasonFor(makeNode('n2', { maxTasks: 1, reservedTasks: 1 }))).toBe('busy: 1 of at most 1 tasks running');
  });

  it('accepts a node one task below maxTasks', () => {
    expectPlaced(place(req(), cluster([makeNode('n1', { maxTasks: 3, running: [0], reservedTasks: 1 })])));
  });

  it('rejects a node with fewer CPU cores than required', () => {
    expect(reasonFor(makeNode('n1', { cores: 4 }), req(0, { cpus: 8 }))).toBe('needs 8 CPUs, has 4');
    expect(reasonFor(makeNode('n1', { cores: 4 }), req(0, { cpus: 4.5 }))).toBe('needs 4.5 CPUs, has 4');
  });

  it('accepts a node with exactly the required CPU cores', () => {
    expectPlaced(place(req(0, { cpus: 4 }), cluster([makeNode('n1', { cores: 4 })])));
  });

  it('checks in order: offline before everything else, draining before staleness, staleness before capacity', () => {
    expect(reasonFor(makeNode('n1', { state: 'offline', silentFor: 1e9, bare: true }))).toBe('offline');
    expect(reasonFor(makeNode('n1', { state: 'draining', silentFor: 1e9 }))).toMatch(/^draining/);
    expect(reasonFor(makeNode('n1', { silentFor: 1e9, bare: true }))).toMatch(/^stale/);
  });
});

describe('place(): memory', () => {
  it('free = offer.maxMemory − running − reserved when the offer is the tighter bound', () => {
    // offer 8 GiB, running 2 GiB, reserved 1 GiB → 5 GiB free; live 30 GiB − 1 GiB = 29 GiB
    const n = makeNode('n1', { total: 32 * GiB, available: 30 * GiB, maxMemory: 8 * GiB, running: [2 * GiB], reservedMemory: 1 * GiB });
    expect(freeMemory(n)).toBe(5 * GiB);
    const p = expectPlaced(place(req(5 * GiB), cluster([n])));
    expect(p.freeAfter).toBe(0);
    const reason = reasonFor(n, req(5 * GiB + 1));
    expect(reason).toMatch(/^needs 5\.0 GiB memory, has 5\.0 GiB free/);
    expect(reason).toContain('offers 8.0 GiB');
    expect(reason).toContain('30.0 GiB available');
    expect(reason).toContain('3.0 GiB held by tasks');
  });

  it('uses total memory as the offer when maxMemory is null', () => {
    // total 16 − running 6 = 10 GiB; live 12 GiB → 10 GiB free
    const n = makeNode('n1', { total: 16 * GiB, available: 12 * GiB, maxMemory: null, running: [6 * GiB] });
    expect(freeMemory(n)).toBe(10 * GiB);
    expect(expectPlaced(place(req(1 * GiB), cluster([n]))).freeAfter).toBe(9 * GiB);
    expect(reasonFor(n, req(11 * GiB))).toContain('offers 16.0 GiB');
  });

  it('free = live available − reserved when MemAvailable is the tighter bound', () => {
    // offer 16 GiB, nothing running; live 3 GiB − reserved 1 GiB = 2 GiB
    const n = makeNode('n1', { total: 16 * GiB, available: 3 * GiB, maxMemory: null, reservedMemory: 1 * GiB, reservedTasks: 1 });
    expect(freeMemory(n)).toBe(2 * GiB);
    expect(expectPlaced(place(req(2 * GiB), cluster([n]))).freeAfter).toBe(0);
    const reason = reasonFor(n, req(2 * GiB + 1 * MiB));
    expect(reason).toMatch(/^needs 2\.0 GiB memory, has 2\.0 GiB free/);
    expect(reason).toContain('3.0 GiB available');
    expect(reason).toContain('1.0 GiB held by tasks');
  });

  it('does not subtract running tasks from live memory (MemAvailable already excludes them)', () => {
    // offer 32 GiB − running 20 GiB = 12 GiB; live 10 GiB → 10 GiB (not 10 − 20)
    const n = makeNode('n1', { total: 32 * GiB, available: 10 * GiB, running: [20 * GiB] });
    expect(freeMemory(n)).toBe(10 * GiB);
  });

  it('never reports negative free memory', () => {
    const n = makeNode('n1', { total: 8 * GiB, available: 1 * GiB, reservedMemory: 2 * GiB, reservedTasks: 1 });
    expect(freeMemory(n)).toBe(0);
    // A task without a memory requirement still fits, leaving 0.
    expect(expectPlaced(place(req(0), cluster([n]))).freeAfter).toBe(0);
    expect(reasonFor(n, req(1))).toMatch(/^needs 1 B memory, has 0 B free/);
  });

  it('freeMemory is 0 for a node without capacity', () => {
    expect(freeMemory(makeNode('n1', { bare: true }))).toBe(0);
  });

  it('the summary message names the memory the task needs', () => {
    const p = expectRejected(place(req(64 * GiB), cluster([makeNode('a'), makeNode('b')])));
    expect(p.message).toBe('no node can take this docker task needing 64.0 GiB now');
    expect(p.rejections.map((r) => r.node)).toEqual(['a', 'b']);
    for (const r of p.rejections) expect(r.reason).toMatch(/^needs 64\.0 GiB memory, has 32\.0 GiB free/);
  });

  it('the summary message omits memory when the task needs none', () => {
    const p = expectRejected(place(req(0, { kind: 'exec' }), cluster([makeNode('a')])));
    expect(p.message).toBe('no node can take this exec task now');
  });
});

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
    expect(p.rejections).toEqual([{ node: 'ghost', reason: 'unknown node' }]);
    expect(p.message).toContain('"ghost"');
    expect(p.message).toContain('known: a, b, c');
  });

  it('an explicit node on an empty cluster says no nodes have joined', () => {
    const p = expectRejected(place(req(0, { node: 'ghost' }), cluster([])));
    expect(p.rejections).toEqual([{ node: 'ghost', reason: 'unknown node' }]);
    expect(p.message).toContain('"ghost"');
    expect(p.message).toContain('no nodes have joined');
  });

  it('an explicit infeasible node is rejected with its own reason, even when others could take the task', () => {
    const p = expectRejected(place(req(1 * GiB, { node: 'a' }), cluster([makeNode('a', { state: 'draining' }), makeNode('b')])));
    expect(p.rejections).toHaveLength(1);
    expect(p.rejections[0].node).toBe('a');
    expect(p.rejections[0].reason).toMatch(/^draining/);
  });

  it('an explicit node too small for the task reports its memory', () => {
    const p = expectRejected(place(req(6 * GiB, { node: 'a' }), cluster(nodes())));
    expect(p.rejections).toEqual([{ node: 'a', reason: expect.stringMatching(/^needs 6\.0 GiB memory, has 4\.0 GiB free/) }]);
  });

  it('rejections are sorted by node id and carry one reason per node', () => {
    const s = cluster([
      makeNode('delta', { state: 'draining' }),
      makeNode('bravo', { state: 'offline', reason: 'shutdown' }),
      makeNode('charlie', { maxTasks: 1, running: [0] }),
      makeNode('alpha', { silentFor: 60_000 }),
    ]);
    const p = expectRejected(place(req(), s));
    expect(p.rejections.map((r) => r.node)).toEqual(['alpha', 'bravo', 'charlie', 'delta']);
    expect(p.rejections[0].reason).toMatch(/^stale/);
    expect(p.rejections[1].reason).toBe('offline (shutdown)');
    expect(p.rejections[2].reason).toMatch(/^busy/);
    expect(p.rejections[3].reason).toMatch(/^draining/);
    expect(p.message).toBe('no node can take this docker task now');
  });

  it('an empty cluster says to start an agent', () => {
    const p = expectRejected(place(req(1 * GiB), cluster([])));
    expect(p.rejections).toEqual([]);
    expect(p.message).toContain('no nodes have joined');
    expect(p.message).toContain('cutter agent');
  });
});

describe('place(): reservations', () => {
  it('two placements in a row do not both land on a node whose free memory fits only one', () => {
    // big: 5 GiB free, small: 4 GiB free; each task needs 3 GiB
    let s = cluster([makeNode('big', { available: 5 * GiB }), makeNode('small', { available: 4 * GiB })]);
    const first = expectPlaced(place(req(3 * GiB), s));
    expect(first.node).toBe('big');
    s = withReservation(s, first.node, 3 * GiB);
    const second = expectPlaced(place(req(3 * GiB), s));
    expect(second.node).toBe('small');
    s = withReservation(s, second.node, 3 * GiB);
    const third = expectRejected(place(req(3 * GiB), s));
    expect(third.rejections.map((r) => r.node)).toEqual(['big', 'small']);
    expect(third.rejections[0].reason).toMatch(/^needs 3\.0 GiB memory, has 2\.0 GiB free/);
    expect(third.rejections[1].reason).toMatch(/^needs 3\.0 GiB memory, has 1\.0 GiB free/);
  });

  it('binpack does not stack a second task onto the reserved last gigabytes either', () => {
    let s = cluster([makeNode('tight', { available: 3 * GiB }), makeNode('roomy', { available: 20 * GiB })], 'binpack');
    const first = expectPlaced(place(req(2 * GiB), s));
    expect(first.node).toBe('tight');
    s = withReservation(s, first.node, 2 * GiB);
    const second = expectPlaced(place(req(2 * GiB), s));
    expect(second.node).toBe('roomy');
  });

  it('a reservation on the only node makes the second placement fail', () => {
    let s = cluster([makeNode('solo', { maxMemory: 4 * GiB })]);
    expectPlaced(place(req(3 * GiB), s));
    s = withReservation(s, 'solo', 3 * GiB);
    const p = expectRejected(place(req(3 * GiB), s));
    expect(p.rejections[0].reason).toContain('3.0 GiB held by tasks');
  });

  it('reserved tasks alone can fill a node', () => {
    let s = cluster([makeNode('solo', { maxTasks: 1 })]);
    expectPlaced(place(req(0), s));
    s = withReservation(s, 'solo', 0);
    expect(expectRejected(place(req(0), s)).rejections[0].reason).toBe('busy: 1 of at most 1 tasks running');
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
