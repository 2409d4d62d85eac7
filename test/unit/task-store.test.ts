/**
 * TaskStore's eviction of finished tasks, over a real StateStore (SQLite in a temp dir): the
 * oldest finished go first, live tasks never, and the order survives a restart.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../controller/state-store.js';
import { TaskStore } from '../../controller/task-store.js';
import { TaskOptionsSchema } from '../../shared/schemas/index.js';

const spec = { kind: 'exec' as const, argv: ['true'], env: {} };

function make(store: TaskStore, id: string, now: number) {
  return store.create({
    taskId: id,
    spec,
    requirements: { memory: 0, cpus: 0 },
    options: TaskOptionsSchema.parse({}),
    submittedBy: 'test',
    now,
  });
}

describe('TaskStore.evictFinished', () => {
  it('evicts the oldest finished tasks beyond keepFinished, never live ones, and keeps the order across a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-taskstore-'));
    const state = new StateStore(dir);
    const tasks = new TaskStore(state, 2);
    const live = make(tasks, 'live', 0);
    const ids = ['a', 'b', 'c', 'd'];
    const records = ids.map((id, i) => make(tasks, id, i + 1));
    // Finish in the order c, a, d, b.
    for (const [i, id] of ['c', 'a', 'd'].entries())
      tasks.update(records[ids.indexOf(id)], { state: 'succeeded', finishedAt: 100 + i }, {}, 100 + i);
    expect(tasks.evictFinished()).toEqual(['c']);
    expect(tasks.get('c')).toBeUndefined();
    expect(tasks.get('live')).toBe(live);
    state.close();

    const state2 = new StateStore(dir);
    const again = new TaskStore(state2, 2);
    expect(again.get('c')).toBeUndefined();
    again.update(again.get('b')!, { state: 'failed', finishedAt: 200 }, {}, 200);
    expect(again.evictFinished()).toEqual(['a']);
    expect([...again.all()].map((r) => r.state.taskId).sort()).toEqual(['b', 'd', 'live']);
    expect(again.evictFinished()).toEqual([]);
    state2.close();
  });
});

describe('StateStore group commit', () => {
  it('commits the writes of one event-loop turn together, and runs afterCommit callbacks only after the commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-statestore-'));
    const state = new StateStore(dir);
    const tasks = new TaskStore(state, 10);
    const said: string[] = [];
    state.afterCommit(() => said.push('nothing pending: at once'));
    expect(said).toEqual(['nothing pending: at once']);
    make(tasks, 'x', 1);
    make(tasks, 'y', 2);
    state.afterCommit(() => said.push('after x and y'));
    expect(said).toHaveLength(1);
    // Another connection (a restarted controller) does not see them before the commit…
    const reader = new StateStore(dir);
    expect(reader.loadTasks()).toEqual([]);
    await new Promise((r) => setImmediate(r));
    // …and sees both after it, when the callback has run.
    expect(said).toEqual(['nothing pending: at once', 'after x and y']);
    expect(
      reader
        .loadTasks()
        .map((r) => r.state.taskId)
        .sort(),
    ).toEqual(['x', 'y']);
    reader.close();
    state.close();
  });
});
