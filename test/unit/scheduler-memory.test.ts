/** The scheduler's memory arithmetic (bytes) and the reservations that keep two placements from sharing the last bytes. */
import { describe, expect, it } from 'vitest';
import { freeMemory } from '../../controller/scheduler/feasibility.js';
import { place } from '../../controller/scheduler/place.js';
import { cluster, expectPlaced, expectRejected, GiB, MiB, makeNode, reasonFor, req, withReservation } from './scheduler-fixtures.js';

describe('place(): memory', () => {
  it('free = offer.maxMemory − running − reserved when the offer is the tighter bound', () => {
    // offer 8 GiB, running 2 GiB, reserved 1 GiB → 5 GiB free; live 30 GiB − 1 GiB = 29 GiB
    const n = makeNode('n1', { total: 32 * GiB, available: 30 * GiB, maxMemory: 8 * GiB, running: [2 * GiB], reservedMemory: 1 * GiB });
    expect(freeMemory(n)).toBe(5 * GiB);
    const p = expectPlaced(place(req(5 * GiB), cluster([n])));
    expect(p.freeAfter).toBe(0);
    expect(reasonFor(n, req(5 * GiB + 1))).toEqual({
      code: 'memory',
      needed: 5 * GiB + 1,
      free: 5 * GiB,
      offered: 8 * GiB,
      available: 30 * GiB,
      held: 3 * GiB,
    });
  });

  it('uses total memory as the offer when maxMemory is null', () => {
    // total 16 − running 6 = 10 GiB; live 12 GiB → 10 GiB free
    const n = makeNode('n1', { total: 16 * GiB, available: 12 * GiB, maxMemory: null, running: [6 * GiB] });
    expect(freeMemory(n)).toBe(10 * GiB);
    expect(expectPlaced(place(req(1 * GiB), cluster([n]))).freeAfter).toBe(9 * GiB);
    expect(reasonFor(n, req(11 * GiB))).toMatchObject({ code: 'memory', offered: 16 * GiB });
  });

  it('free = live available − reserved when MemAvailable is the tighter bound', () => {
    // offer 16 GiB, nothing running; live 3 GiB − reserved 1 GiB = 2 GiB
    const n = makeNode('n1', { total: 16 * GiB, available: 3 * GiB, maxMemory: null, reservedMemory: 1 * GiB, reservedTasks: 1 });
    expect(freeMemory(n)).toBe(2 * GiB);
    expect(expectPlaced(place(req(2 * GiB), cluster([n]))).freeAfter).toBe(0);
    expect(reasonFor(n, req(2 * GiB + 1 * MiB))).toMatchObject({ code: 'memory', free: 2 * GiB, available: 3 * GiB, held: 1 * GiB });
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
    expect(reasonFor(n, req(1))).toMatchObject({ code: 'memory', needed: 1, free: 0 });
  });

  it('freeMemory is 0 for a node without capacity', () => {
    expect(freeMemory(makeNode('n1', { bare: true }))).toBe(0);
  });

  it('the summary message names the memory the task needs', () => {
    const p = expectRejected(place(req(64 * GiB), cluster([makeNode('a'), makeNode('b')])));
    expect(p.message).toBe('no node can take this docker task needing 64.0 GiB now');
    expect(p.rejections.map((r) => r.node)).toEqual(['a', 'b']);
    for (const r of p.rejections) expect(r).toMatchObject({ code: 'memory', needed: 64 * GiB, free: 32 * GiB });
  });

  it('the summary message omits memory when the task needs none', () => {
    const p = expectRejected(place(req(0, { kind: 'exec' }), cluster([makeNode('a')])));
    expect(p.message).toBe('no node can take this exec task now');
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
    expect(third.rejections[0]).toMatchObject({ code: 'memory', needed: 3 * GiB, free: 2 * GiB });
    expect(third.rejections[1]).toMatchObject({ code: 'memory', needed: 3 * GiB, free: 1 * GiB });
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
    expect(p.rejections[0]).toMatchObject({ code: 'memory', held: 3 * GiB });
  });

  it('reserved tasks alone can fill a node', () => {
    let s = cluster([makeNode('solo', { maxTasks: 1 })]);
    expectPlaced(place(req(0), s));
    s = withReservation(s, 'solo', 0);
    expect(expectRejected(place(req(0), s)).rejections[0]).toEqual({ node: 'solo', code: 'max-tasks', running: 1, max: 1 });
  });
});
