/** The scheduler's feasibility checks: each rejects a node with a code and the numbers behind it. */
import { describe, expect, it } from 'vitest';
import { place } from '../../controller/scheduler/place.js';
import type { NodeSnapshot } from '../../controller/scheduler/snapshot.js';
import { STALE_AFTER_HEARTBEATS } from '../../controller/scheduler/snapshot.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';
import { cluster, expectPlaced, GiB, makeNode, NOW, reasonFor, req } from './scheduler-fixtures.js';

describe('place(): feasibility', () => {
  it('a healthy node with room is feasible', () => {
    const p = expectPlaced(place(req(1 * GiB), cluster([makeNode('n1')])));
    expect(p.node).toBe('n1');
  });

  it('rejects an offline node and keeps why it went offline', () => {
    expect(reasonFor(makeNode('n1', { state: 'offline', reason: 'agent shutting down' }))).toEqual({
      code: 'offline',
      detail: 'agent shutting down',
    });
  });

  it('rejects the minimal last-will form (offline, no capacity) as offline, not as "no capacity"', () => {
    const lastWill = NodeStatusSchema.parse({ v: 1, node: 'n1', state: 'offline', version: '0.1.0', seq: 0, ts: NOW, heartbeatMs: 2000 });
    const node: NodeSnapshot = { node: 'n1', status: lastWill, lastSeenMs: NOW, reservedMemory: 0, reservedTasks: 0 };
    expect(reasonFor(node)).toEqual({ code: 'offline' });
  });

  it('rejects a draining node, and one drained with cutter nodes drain', () => {
    expect(reasonFor(makeNode('n1', { state: 'draining' }))).toEqual({ code: 'draining' });
    expect(reasonFor({ ...makeNode('n1'), drained: true })).toEqual({ code: 'drained' });
  });

  it(`rejects a node silent for longer than ${STALE_AFTER_HEARTBEATS} heartbeats as stale, with how long`, () => {
    expect(STALE_AFTER_HEARTBEATS).toBe(2.5);
    expect(reasonFor(makeNode('n1', { heartbeatMs: 2_000, silentFor: 5_001 }))).toEqual({ code: 'stale-heartbeat', silentMs: 5_001 });
  });

  it('accepts a node silent for exactly 2.5 heartbeats (the boundary is exclusive)', () => {
    expectPlaced(place(req(), cluster([makeNode('n1', { heartbeatMs: 2_000, silentFor: 5_000 })])));
  });

  it("judges staleness by the node's own heartbeat interval", () => {
    // 20 s of silence is stale for a 2 s heartbeat, fresh for a 10 s heartbeat.
    expect(reasonFor(makeNode('fast', { heartbeatMs: 2_000, silentFor: 20_000 })).code).toBe('stale-heartbeat');
    expectPlaced(place(req(), cluster([makeNode('slow', { heartbeatMs: 10_000, silentFor: 20_000 })])));
  });

  it('rejects an online node that has not announced capacity and offer yet', () => {
    expect(reasonFor(makeNode('n1', { bare: true }))).toEqual({ code: 'unannounced' });
  });

  it('rejects a docker task on a node without a Docker engine, with the docker error text', () => {
    const why = reasonFor(makeNode('n1', { executors: ['exec'], dockerError: 'connect ENOENT /var/run/docker.sock' }));
    expect(why).toEqual({ code: 'no-docker', detail: 'connect ENOENT /var/run/docker.sock' });
  });

  it('rejects a docker task on a node without Docker even when no error text is known', () => {
    expect(reasonFor(makeNode('n1', { executors: [] }))).toEqual({ code: 'no-docker' });
  });

  it('rejects an exec task on a node without exec', () => {
    expect(reasonFor(makeNode('n1', { executors: ['docker'] }), req(0, { kind: 'exec' }))).toEqual({ code: 'no-exec' });
  });

  it('places an exec task on a node that allows exec, and says why the other was rejected', () => {
    const s = cluster([makeNode('docker-only', { executors: ['docker'] }), makeNode('shell', { executors: ['docker', 'exec'] })]);
    const p = expectPlaced(place(req(0, { kind: 'exec' }), s));
    expect(p.node).toBe('shell');
    expect(p.reason).toContain('docker-only');
    expect(p.reason).toContain('--allow-exec');
  });

  it('rejects a node whose running tasks reach maxTasks', () => {
    expect(reasonFor(makeNode('n1', { maxTasks: 2, running: [0, 0] }))).toEqual({ code: 'max-tasks', running: 2, max: 2 });
  });

  it('counts reserved (placed but not yet reported) tasks against maxTasks', () => {
    expect(reasonFor(makeNode('n1', { maxTasks: 2, running: [0], reservedTasks: 1 }))).toEqual({ code: 'max-tasks', running: 2, max: 2 });
    expect(reasonFor(makeNode('n2', { maxTasks: 1, reservedTasks: 1 }))).toEqual({ code: 'max-tasks', running: 1, max: 1 });
  });

  it('accepts a node one task below maxTasks', () => {
    expectPlaced(place(req(), cluster([makeNode('n1', { maxTasks: 3, running: [0], reservedTasks: 1 })])));
  });

  it('rejects a node with fewer CPU cores than required', () => {
    expect(reasonFor(makeNode('n1', { cores: 4 }), req(0, { cpus: 8 }))).toEqual({ code: 'cpus', needed: 8, free: 4 });
    expect(reasonFor(makeNode('n1', { cores: 4 }), req(0, { cpus: 4.5 }))).toEqual({ code: 'cpus', needed: 4.5, free: 4 });
  });

  it('accepts a node with exactly the required CPU cores', () => {
    expectPlaced(place(req(0, { cpus: 4 }), cluster([makeNode('n1', { cores: 4 })])));
  });

  it('checks in order: offline before everything else, draining before staleness, staleness before capacity', () => {
    expect(reasonFor(makeNode('n1', { state: 'offline', silentFor: 1e9, bare: true })).code).toBe('offline');
    expect(reasonFor(makeNode('n1', { state: 'draining', silentFor: 1e9 })).code).toBe('draining');
    expect(reasonFor(makeNode('n1', { silentFor: 1e9, bare: true })).code).toBe('stale-heartbeat');
  });
});
