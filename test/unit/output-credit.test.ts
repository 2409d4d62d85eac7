/**
 * Reader credit (shared/schemas/output-credit.ts): the agent's CreditGate closes past its window
 * of uncredited bytes or events and opens at half, credits by event seq (so a reader that skipped
 * events still credits past them), lets go for good after a hold without credit or on release;
 * its topic parses back, and only the task's submitter may publish there.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CreditGate, STOP_RELEASE_MS } from '../../agent/output-credit.js';
import { type AclContext, denyPublish, denySubscribe } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { topics } from '../../shared/topics.js';

const KiB = 1024;

describe('CreditGate', () => {
  afterEach(() => vi.useRealTimers());

  it('closes past the window of uncredited bytes, opens again at half of it', async () => {
    const gate = new CreditGate(undefined, { window: 100 * KiB, events: 1_000, timeoutMs: 60_000 });
    for (let seq = 1; seq <= 10; seq++) gate.add(seq, 10 * KiB);
    expect(gate.open).toBe(false);
    let resumed = false;
    const drained = gate.drained().then(() => (resumed = true));
    gate.credit(3); // 70 KiB outstanding: still more than half
    await Promise.resolve();
    expect(resumed).toBe(false);
    gate.credit(5); // 50 KiB: half
    await drained;
    expect(gate.open).toBe(true);
    expect(gate.outstanding).toBe(50 * KiB);
  });

  it('closes past its count of uncredited events however small they are', () => {
    const gate = new CreditGate(undefined, { window: 1_000 * KiB, events: 8 });
    for (let seq = 0; seq < 7; seq++) gate.add(seq, 1);
    expect(gate.open).toBe(true);
    gate.add(7, 1);
    expect(gate.open).toBe(false);
    gate.credit(3);
    expect(gate.open).toBe(true);
  });

  it('credits by seq: events the reader never saw (a gap) are credited by a later one', () => {
    const gate = new CreditGate(undefined, { window: 100 * KiB });
    gate.add(4, 60 * KiB);
    gate.add(9, 60 * KiB);
    expect(gate.open).toBe(false);
    gate.credit(12); // a seq past both (a later non-log event)
    expect(gate.outstanding).toBe(0);
    gate.credit(2); // an old credit arriving late changes nothing
    expect(gate.outstanding).toBe(0);
  });

  it('lets go for good when held without any credit for its timeout, and says so once', async () => {
    vi.useFakeTimers();
    const released: string[] = [];
    const gate = new CreditGate((why) => released.push(why), { window: 10 * KiB, timeoutMs: 10_000 });
    gate.add(1, 20 * KiB);
    const drained = gate.drained();
    vi.advanceTimersByTime(9_000);
    gate.credit(0); // a sign of life (nothing new written): the hold's timer starts again
    vi.advanceTimersByTime(9_000);
    expect(released).toEqual([]);
    vi.advanceTimersByTime(1_001);
    await drained;
    expect(released).toEqual(['timeout']);
    expect(gate.released).toBe('timeout');
    gate.add(2, 1_000 * KiB);
    expect(gate.open).toBe(true);
    gate.release('released');
    expect(released).toEqual(['timeout']);
  });

  it('opens at once when the reader releases it; the end of the attempt wakes waiters without a report', async () => {
    const released: string[] = [];
    const gate = new CreditGate((why) => released.push(why), { window: 10 * KiB });
    gate.add(1, 20 * KiB);
    const drained = gate.drained();
    gate.release('released');
    await drained;
    expect(released).toEqual(['released']);
    const other = new CreditGate((why) => released.push(why), { window: 10 * KiB });
    other.add(1, 20 * KiB);
    const waiting = other.drained();
    other.release('ended');
    await waiting;
    expect(released).toEqual(['released']);
  });

  it('a stopped attempt stays paced through its grace and is let go after it, without a report', async () => {
    vi.useFakeTimers();
    const released: string[] = [];
    const gate = new CreditGate((why) => released.push(why), { window: 10 * KiB, timeoutMs: 60_000 });
    gate.add(1, 20 * KiB);
    const drained = gate.drained();
    gate.stopping(3_000);
    vi.advanceTimersByTime(3_000);
    expect(gate.released).toBeUndefined();
    vi.advanceTimersByTime(STOP_RELEASE_MS);
    await drained;
    expect(gate.released).toBe('stopped');
    expect(released).toEqual([]);
  });

  it('keeps a bounded record when the bound is not honoured (merged past twice the events)', () => {
    const gate = new CreditGate(undefined, { window: 1_000_000 * KiB, events: 4 });
    for (let seq = 0; seq < 100; seq++) gate.add(seq, 1);
    gate.credit(98); // inside the merged run: counts less, never more
    expect(gate.outstanding).toBeGreaterThan(0);
    gate.credit(99);
    expect(gate.outstanding).toBe(0);
  });
});

describe('credit topic and ACL', () => {
  const t = topics();
  const ctx: AclContext = {
    t,
    haPrefix: 'homeassistant',
    assignmentOf: (task) =>
      task === 'abc' ? { node: 'nb', attempt: 1, state: 'running', ports: [], submitter: 'admin:local' } : undefined,
  };
  const credit = Buffer.from(JSON.stringify({ v: 1, attempt: 1, seq: 5 }));
  const admin: Identity = { username: 'admin:local', role: 'admin', name: 'local' };
  const mallory: Identity = { username: 'admin:mallory', role: 'admin', name: 'mallory' };
  const agent: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
  const observer: Identity = { username: 'observer:ha', role: 'observer', name: 'ha' };

  it('parses back', () => {
    expect(t.parse(t.nodeCredit('n1', 't-9'))).toEqual({ kind: 'nodeCredit', node: 'n1', task: 't-9' });
    expect(t.parse(`${t.nodeCredit('n1', 't-9')}/x`)).toBeNull();
  });

  it("lets only the task's submitter credit it; its node's agent subscribes, others do not", () => {
    expect(denyPublish(admin, 'cli-1', t.nodeCredit('nb', 'abc'), credit, ctx)).toBeNull();
    expect(denyPublish(mallory, 'cli-2', t.nodeCredit('nb', 'abc'), credit, ctx)).toContain('only its submitter may credit its output');
    expect(denyPublish(admin, 'cli-1', t.nodeCredit('nb', 'nope'), credit, ctx)).toContain('unknown to the controller');
    const mcp: Identity = { username: 'mcp:a', role: 'mcp', name: 'a' };
    expect(denyPublish(mcp, 'm', t.nodeCredit('nb', 'abc'), credit, ctx)).toContain('only its submitter');
    expect(denyPublish(observer, 'o', t.nodeCredit('nb', 'abc'), credit, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeCredit('nb', 'abc'), credit, ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeCredit('nb', '+'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeCredit('other', '+'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'o', 'cutter/v1/nodes/+/credit/+', ctx)).not.toBeNull();
  });
});
