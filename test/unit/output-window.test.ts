/** The agent's flow control for task output (agent/output-window.ts). */
import { describe, expect, it } from 'vitest';
import { OutputWindow } from '../../agent/output-window.js';

describe('OutputWindow', () => {
  it('closes at the limit and wakes the waiters once half of it is acknowledged', async () => {
    const w = new OutputWindow(100);
    w.add(60);
    expect(w.open).toBe(true);
    w.add(40);
    expect(w.open).toBe(false);
    let woke = false;
    const waiting = w.drained().then(() => (woke = true));
    w.settle(40); // 60 in flight: still above half
    await Promise.resolve();
    expect(woke).toBe(false);
    w.settle(10); // 50: half
    await waiting;
    expect(woke).toBe(true);
    expect(w.open).toBe(true);
    expect(w.bytes).toBe(50);
  });

  it('resolves at once when little is in flight, and never counts below zero', async () => {
    const w = new OutputWindow(100);
    await w.drained();
    w.settle(10);
    expect(w.bytes).toBe(0);
  });
});
