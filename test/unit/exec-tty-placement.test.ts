/**
 * Placing an exec task with `-t` (issue 15): only on a node whose agent says it can give exec
 * tasks a pseudo-terminal (`capacity.exec.tty`); an older agent (no `tty` in its status) would run
 * it without one, and an agent without node-pty would refuse it, so neither is chosen, with the
 * reason. The agent announces it without loading node-pty.
 */
import { describe, expect, it } from 'vitest';
import { ptyInstalled } from '../../agent/executors/exec-pty.js';
import { place } from '../../controller/scheduler/place.js';
import type { NodeSnapshot } from '../../controller/scheduler/snapshot.js';
import { formatRejection } from '../../shared/reasons.js';
import { cluster, expectPlaced, makeNode, reasonFor, req } from './scheduler-fixtures.js';

/** An exec node; `tty` undefined: an older agent that says nothing about it. */
const node = (name: string, tty?: boolean): NodeSnapshot => {
  const n = makeNode(name, { executors: ['exec'] });
  n.status.capacity!.exec = { limits: { memory: true, cpus: true }, ...(tty !== undefined ? { tty } : {}) };
  return n;
};
const withTty = { ...req(0, { kind: 'exec' }), execTty: true };

describe('placing an exec task with -t', () => {
  it('takes a node whose agent can give it a TTY; a task without -t goes anywhere', () => {
    expect(expectPlaced(place(withTty, cluster([node('new', true)]))).node).toBe('new');
    expect(expectPlaced(place(req(0, { kind: 'exec' }), cluster([node('old')]))).node).toBe('old');
  });

  it('skips an older agent and one without node-pty, saying why', () => {
    const old = reasonFor(node('old'), withTty);
    expect(old).toEqual({ code: 'exec-tty', detail: 'its agent does not say it can (an older agent)' });
    expect(formatRejection({ node: 'old', ...old! })).toBe(
      'cannot give exec tasks a TTY (its agent does not say it can (an older agent)): drop -t, or run it on a node that can',
    );
    expect(reasonFor(node('bare', false), withTty)).toEqual({ code: 'exec-tty', detail: 'node-pty is not installed with its agent' });
  });

  it('this agent has node-pty installed (the dependency is built here)', () => {
    expect(ptyInstalled()).toBe(true);
  });
});
