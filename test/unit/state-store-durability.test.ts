/**
 * StateStore when the disk refuses writes (issue 14): a commit that fails with SQLITE_FULL or
 * SQLITE_READONLY (injected at COMMIT, where SQLite reports a full disk in WAL mode and rolls the
 * transaction back) keeps what was written and what waited on it, marks storage degraded with a
 * message naming the dir, and commits it all on a later try; memory and disk never diverge.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PENDING_OUTPUT_BYTES, StateStore } from '../../controller/state-store.js';
import { TaskStore } from '../../controller/task-store.js';
import { type TaskEvent, TaskOptionsSchema } from '../../shared/schemas/index.js';

const spec = { kind: 'exec' as const, argv: ['true'], env: {} };
const FREE = () => 10 * 1024 ** 3;

/** A store whose COMMIT fails with `code` while `fault.code` is set (the transaction is rolled back, as SQLite does). */
function faulty(dir: string) {
  const store = new StateStore(dir, { statfs: FREE });
  const fault: { code: string | null } = { code: null };
  const db = (store as unknown as { db: { exec: (sql: string) => unknown } }).db;
  const real = db.exec.bind(db);
  db.exec = (sql: string) => {
    if (sql === 'COMMIT' && fault.code) {
      real('ROLLBACK');
      throw Object.assign(new Error('injected'), { code: fault.code });
    }
    return real(sql);
  };
  return { store, fault };
}

const event = (taskId: string, seq: number, body: Record<string, unknown>) =>
  ({ v: 1, taskId, attempt: 1, node: 'n1', seq, ts: 1, ...body }) as TaskEvent;

describe('StateStore with a full or read-only disk', () => {
  it('keeps uncommitted writes and what waits on them through SQLITE_FULL, and commits them when space returns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-full-'));
    const { store, fault } = faulty(dir);
    const tasks = new TaskStore(store, 100);
    const record = tasks.create({
      taskId: 't1',
      spec,
      requirements: { memory: 0, cpus: 0 },
      options: TaskOptionsSchema.parse({}),
      submittedBy: 'test',
      now: 1,
    });
    store.commit();
    expect(store.failing).toBe(false);

    fault.code = 'SQLITE_FULL';
    tasks.update(record, { state: 'succeeded', exitCode: 0, finishedAt: 5 }, {}, 5);
    store.appendEvent(event('t1', 1, { type: 'log', stream: 'stdout', data: 'hello\n' }), 1024 ** 2);
    store.appendEvent(
      event('t1', 2, { type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 5 }),
      1024 ** 2,
    );
    const said: string[] = [];
    store.afterCommit(() => said.push('ack'));
    store.commit();

    // Nothing is said that the disk does not have; new work is refused with the dir named.
    expect(said).toEqual([]);
    expect(store.failing).toBe(true);
    expect(store.guard.state).toMatchObject({ state: 'degraded', code: 'SQLITE_FULL', path: dir });
    const refusal = store.guard.refusal();
    expect(refusal?.code).toBe('STORAGE_UNAVAILABLE');
    expect(refusal?.message).toBe(`data dir ${dir} is full (10.0 GiB free; SQLITE_FULL): free space there; new work is refused until then`);
    // Later writes and waiters queue behind it, in order.
    store.afterCommit(() => said.push('later'));
    store.retry();
    expect(said).toEqual([]);

    fault.code = null;
    store.retry();
    expect(said).toEqual(['ack', 'later']);
    expect(store.failing).toBe(false);
    expect(store.guard.ok).toBe(true);
    store.close();

    const reopened = new StateStore(dir, { statfs: FREE });
    expect(reopened.loadTasks()[0].state).toMatchObject({ taskId: 't1', state: 'succeeded', exitCode: 0 });
    expect(reopened.events('t1').events.map((e) => e.type)).toEqual(['log', 'result']);
    reopened.close();
  });

  it('past the pending bound drops output (counted as lost, task marked truncated) but never a result', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-bound-'));
    const { store, fault } = faulty(dir);
    fault.code = 'SQLITE_FULL';
    const mib = 'x'.repeat(1024 * 1024 - 100);
    const n = Math.ceil(PENDING_OUTPUT_BYTES / mib.length) + 2;
    const kept: boolean[] = [];
    for (let seq = 0; seq < n; seq++)
      kept.push(store.appendEvent(event('t2', seq, { type: 'log', stream: 'stdout', data: mib }), 64 * 1024 ** 2));
    expect(kept.at(-1)).toBe(false);
    expect(
      store.appendEvent(
        event('t2', n, { type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 2 }),
        0,
      ),
    ).toBe(true);
    store.commit();
    expect(store.failing).toBe(true);
    fault.code = null;
    store.retry();
    const page = store.events('t2', undefined, 1024 ** 3);
    expect(page.truncated).toBe(true);
    expect(page.events.at(-1)?.type).toBe('result');
    expect(page.events.length).toBeLessThan(n + 1);
    // What was dropped is counted as lost, byte for byte, and nothing as dropped for the limit.
    const lost = kept.filter((k) => !k).length * mib.length;
    expect(store.output('t2', 64 * 1024 ** 2).stdout).toMatchObject({ written: n * mib.length, lost, dropped: 0 });
    store.close();
  });

  it('a read-only data dir (SQLITE_READONLY) says so and how to fix it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-ro-'));
    const { store, fault } = faulty(dir);
    fault.code = 'SQLITE_READONLY';
    store.setDrained('n1', true);
    store.commit();
    expect(store.guard.refusal()?.message).toBe(
      `data dir ${dir} is read-only (10.0 GiB free; SQLITE_READONLY): make it writable; new work is refused until then`,
    );
    fault.code = null;
    store.retry();
    expect(store.drainedNodes()).toEqual(new Set(['n1']));
    expect(store.guard.ok).toBe(true);
    store.close();
  });

  it('free space below the minimum degrades storage before anything fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-state-low-'));
    let free = 1024;
    const store = new StateStore(dir, { statfs: () => free, minFreeBytes: 64 * 1024 });
    store.guard.check();
    expect(store.guard.refusal()?.message).toBe(
      `data dir ${dir} is almost full (1.0 KiB free, below the 64.0 KiB minimum): free space there; new work is refused until then`,
    );
    free = 1024 ** 2;
    store.guard.check();
    expect(store.guard.ok).toBe(true);
    store.close();
  });
});
