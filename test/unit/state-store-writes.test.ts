/**
 * StateStore's group commit writes each task's row once per commit, as the record is at the
 * commit: a task that changes several times in one turn of the event loop costs one upsert, and
 * what is reloaded after a restart is its last state.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../controller/state-store.js';
import { TaskStore } from '../../controller/task-store.js';
import { TaskOptionsSchema } from '../../shared/schemas/index.js';

const FREE = () => 10 * 1024 ** 3;
const spec = { kind: 'exec' as const, argv: ['true'], env: {} };

function open(dir: string, log?: unknown) {
  const store = new StateStore(dir, { statfs: FREE, log: log as never });
  const db = (store as unknown as { db: { prepare: (sql: string) => { get: () => Record<string, number> } } }).db;
  const changes = () => db.prepare('SELECT total_changes() AS n').get().n;
  const tasks = new TaskStore(store, 100);
  const create = (taskId: string) =>
    tasks.create({
      taskId,
      spec,
      requirements: { memory: 0, cpus: 0 },
      options: TaskOptionsSchema.parse({}),
      submittedBy: 'test',
      now: 1,
    });
  return { store, tasks, create, changes };
}

describe('StateStore: task rows', () => {
  it('writes a task changed three times in one turn once, in its last state', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-once-'));
    const { store, tasks, create, changes } = open(dir);
    const record = create('t1');
    store.commit();
    const before = changes();
    tasks.update(record, { state: 'assigned', node: 'n1' }, {}, 2);
    tasks.update(record, { state: 'running' }, {}, 3);
    tasks.update(record, { state: 'succeeded', exitCode: 0, finishedAt: 4 }, {}, 4);
    const said: string[] = [];
    store.afterCommit(() => said.push('ack'));
    expect(said).toEqual([]);
    store.commit();
    expect(said).toEqual(['ack']);
    expect(changes() - before).toBe(1);
    store.close();
    const reopened = new StateStore(dir, { statfs: FREE });
    expect(reopened.loadTasks().map((r) => r.state)).toMatchObject([{ taskId: 't1', state: 'succeeded', exitCode: 0, finishedAt: 4 }]);
    reopened.close();
  });

  it('a task saved and deleted in the same turn is not stored; one deleted and saved again is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-del-'));
    const { store, create } = open(dir);
    create('gone');
    store.deleteTasks(['gone']);
    const back = create('back');
    store.deleteTasks(['back']);
    store.saveTask(back, false);
    store.close();
    const reopened = new StateStore(dir, { statfs: FREE });
    expect(reopened.loadTasks().map((r) => r.state.taskId)).toEqual(['back']);
    reopened.close();
  });

  it('a record that cannot be serialised is dropped with an error; the others and what waits are committed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-bad-'));
    const errors: string[] = [];
    const log = { error: (_o: unknown, msg: string) => errors.push(msg), warn: () => undefined, info: () => undefined };
    const { store, create: make } = open(dir, log);
    make('good');
    const bad = make('bad');
    (bad as unknown as { extra: bigint }).extra = 1n;
    const said: string[] = [];
    store.afterCommit(() => said.push('ack'));
    store.commit();
    expect(said).toEqual(['ack']);
    expect(errors).toEqual(['cannot serialise a task: its change is dropped']);
    store.close();
    const reopened = new StateStore(dir, { statfs: FREE });
    expect(reopened.loadTasks().map((r) => r.state.taskId)).toEqual(['good']);
    reopened.close();
  });
});
