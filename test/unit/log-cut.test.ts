/**
 * Kept output past the limit (issue 15): the controller keeps the head and the tail of a task's
 * output, the first half of maxLogBytes and the last half, all streams in the order written, and
 * counts what it dropped per stream and where. Checked on the real StateStore (SQLite in a temp
 * dir): for any sequence of output events, the bytes kept of each stream are exactly the bytes of
 * that stream among the first H and the last T bytes written, and the account says how many were
 * dropped after which offset — also across a reopen, for redeliveries, for chunks events (never
 * split), and for a database an older server wrote (log_usage without the account).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admit, evict, headBudget, newCut } from '../../controller/log-cut.js';
import { StateStore } from '../../controller/state-store.js';
import { type LogEvent, logBytes, logFields } from '../../shared/log-data.js';
import type { TaskEvent } from '../../shared/schemas/index.js';

const FREE = () => 10 * 1024 ** 3;
const newStore = (dir = mkdtempSync(join(tmpdir(), 'cutter-logcut-'))) => ({ dir, store: new StateStore(dir, { statfs: FREE }) });
const log = (taskId: string, seq: number, stream: 'stdout' | 'stderr', bytes: Buffer, attempt = 1): LogEvent => ({
  v: 1,
  taskId,
  attempt,
  node: 'n1',
  seq,
  ts: 1,
  type: 'log',
  stream,
  ...logFields(bytes),
});

/** Every kept event of a task (all pages). */
function keptEvents(store: StateStore, taskId: string): TaskEvent[] {
  return store.events(taskId, undefined, 1024 ** 3).events;
}

/** The kept bytes of one stream, in order. */
function keptBytes(store: StateStore, taskId: string, stream: 'stdout' | 'stderr'): Buffer {
  const events = keptEvents(store, taskId).filter((e): e is LogEvent => e.type === 'log' && e.stream === stream);
  return Buffer.concat(events.map(logBytes));
}

/** What must be kept of each stream: its bytes among the first H and the last T of all the output, in order. */
function expected(writes: { stream: 'stdout' | 'stderr'; bytes: Buffer }[], limit: number) {
  const total = writes.reduce((n, w) => n + w.bytes.length, 0);
  const H = headBudget(limit);
  const tailFrom = Math.max(H, total - (limit - H));
  const out = { stdout: [] as number[], stderr: [] as number[] };
  const dropped = { stdout: 0, stderr: 0 };
  const droppedFrom = { stdout: -1, stderr: -1 };
  const seen = { stdout: 0, stderr: 0 };
  let at = 0;
  for (const w of writes)
    for (const b of w.bytes) {
      if (at < H || at >= tailFrom) out[w.stream].push(b);
      else {
        if (droppedFrom[w.stream] < 0) droppedFrom[w.stream] = seen[w.stream];
        dropped[w.stream]++;
      }
      seen[w.stream]++;
      at++;
    }
  return { bytes: { stdout: Buffer.from(out.stdout), stderr: Buffer.from(out.stderr) }, dropped, droppedFrom };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('log-cut arithmetic', () => {
  it('splits the event that fills the head, sends the rest to the tail, and cuts the tail from its oldest bytes', () => {
    const st = newCut();
    expect(admit(st, 'stdout', 60, true, 100)).toEqual({ head: 50, tail: 10 });
    expect(st.headFull).toBe(true);
    expect(admit(st, 'stderr', 70, true, 100)).toEqual({ head: 0, tail: 70 });
    // The tail holds 80 of a budget of 50: 30 go, from the oldest event (10 bytes, all of it), then 20 of the next.
    expect(evict(st, { stream: 'stdout', bytes: 10, splittable: true }, 100)).toBe(10);
    expect(evict(st, { stream: 'stderr', bytes: 70, splittable: true }, 100)).toBe(20);
    expect(evict(st, { stream: 'stderr', bytes: 50, splittable: true }, 100)).toBeNull();
    expect(st.streams.stdout).toMatchObject({ written: 60, head: 50, dropped: 10 });
    expect(st.streams.stderr).toMatchObject({ written: 70, head: 0, dropped: 20 });
  });

  it('never splits a chunks event: one that does not fit closes the head short, and leaves the tail whole', () => {
    const st = newCut();
    expect(admit(st, 'chunks', 30, false, 100)).toEqual({ head: 30, tail: 0 });
    expect(admit(st, 'chunks', 30, false, 100)).toEqual({ head: 0, tail: 30 });
    expect(st.headBytes).toBe(30);
    expect(admit(st, 'chunks', 40, false, 100)).toEqual({ head: 0, tail: 40 });
    expect(evict(st, { stream: 'chunks', bytes: 30, splittable: false }, 100)).toBe(30);
    expect(evict(st, { stream: 'chunks', bytes: 40, splittable: false }, 100)).toBeNull();
  });
});

describe('StateStore keeps the head and the tail of the output', () => {
  it('keeps exactly the first and the last half of any interleaving of stdout and stderr, and counts the middle per stream', () => {
    let n = 0;
    fc.assert(
      fc.property(
        fc.array(fc.record({ stream: fc.constantFrom('stdout' as const, 'stderr' as const), size: fc.integer({ min: 0, max: 700 }) }), {
          maxLength: 25,
        }),
        fc.integer({ min: 0, max: 3_000 }),
        (shape, limit) => {
          const { store } = newStore();
          const taskId = `t${n++}`;
          const writes = shape.map((w) => ({ stream: w.stream, bytes: randomBytes(w.size) }));
          for (const [seq, w] of writes.entries()) store.appendEvent(log(taskId, seq, w.stream, w.bytes), limit);
          store.commit();
          const want = expected(writes, limit);
          const output = store.output(taskId, limit);
          for (const s of ['stdout', 'stderr'] as const) {
            expect(sha(keptBytes(store, taskId, s))).toBe(sha(want.bytes[s]));
            expect(output[s].dropped).toBe(want.dropped[s]);
            if (want.dropped[s] > 0) expect(output[s].droppedFrom).toBe(want.droppedFrom[s]);
            expect(output[s].kept).toBe(want.bytes[s].length);
          }
          expect(output.headBytes + output.tailBytes).toBe(want.bytes.stdout.length + want.bytes.stderr.length);
          expect(store.events(taskId).truncated).toBe(want.dropped.stdout + want.dropped.stderr > 0);
          store.close();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('under the limit keeps every byte and reports nothing dropped', () => {
    const { store } = newStore();
    const a = randomBytes(1_000);
    const b = randomBytes(500);
    store.appendEvent(log('u', 0, 'stdout', a), 4_096);
    store.appendEvent(log('u', 1, 'stderr', b), 4_096);
    store.commit();
    expect(keptBytes(store, 'u', 'stdout').equals(a)).toBe(true);
    expect(keptBytes(store, 'u', 'stderr').equals(b)).toBe(true);
    expect(store.output('u', 4_096)).toMatchObject({ headBytes: 1_500, tailBytes: 0, uncounted: false });
    expect(store.output('u', 4_096).stdout).toEqual({ written: 1_000, kept: 1_000, dropped: 0, droppedFrom: 1_000, lost: 0 });
    expect(store.events('u').truncated).toBe(false);
    store.close();
  });

  it('goes on across a reopen, and ignores a redelivered event', () => {
    const { dir, store } = newStore();
    const writes = Array.from({ length: 8 }, () => ({ stream: 'stdout' as const, bytes: randomBytes(300) }));
    for (const [seq, w] of writes.slice(0, 4).entries()) store.appendEvent(log('r', seq, w.stream, w.bytes), 1_000);
    store.commit();
    store.close();
    const again = new StateStore(dir, { statfs: FREE });
    expect(again.appendEvent(log('r', 2, 'stdout', writes[2].bytes), 1_000)).toBe(false); // redelivered (QoS 1)
    for (const [i, w] of writes.slice(4).entries()) again.appendEvent(log('r', 4 + i, w.stream, w.bytes), 1_000);
    again.commit();
    expect(sha(keptBytes(again, 'r', 'stdout'))).toBe(sha(expected(writes, 1_000).bytes.stdout));
    expect(again.output('r', 1_000).stdout).toEqual({ written: 2_400, kept: 1_000, dropped: 1_400, droppedFrom: 500, lost: 0 });
    again.close();
  });

  it('reads a task an older server stored (no account): its kept bytes, and uncounted when it was truncated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutter-logcut-old-'));
    const db = new Database(join(dir, 'controller.db'));
    db.exec(`
      CREATE TABLE events (task_id TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (task_id, attempt, seq));
      CREATE TABLE log_usage (task_id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, truncated INTEGER NOT NULL);
    `);
    const insert = db.prepare('INSERT INTO events VALUES (?, ?, ?, ?)');
    insert.run('old', 1, 0, JSON.stringify({ ...log('old', 0, 'stdout', Buffer.alloc(0)), encoding: undefined, data: 'héllo\n' }));
    insert.run('old', 1, 1, JSON.stringify(log('old', 1, 'stderr', Buffer.from([0, 255]))));
    db.prepare('INSERT INTO log_usage VALUES (?, ?, ?)').run('old', 9, 1);
    insert.run('fine', 1, 0, JSON.stringify(log('fine', 0, 'stdout', Buffer.from('ok\n'))));
    db.prepare('INSERT INTO log_usage VALUES (?, ?, ?)').run('fine', 3, 0);
    db.close();

    const store = new StateStore(dir, { statfs: FREE });
    expect(store.output('old', 100)).toMatchObject({ headBytes: 9, uncounted: true });
    expect(store.output('old', 100).stdout).toMatchObject({ written: 7, kept: 7, dropped: 0, droppedFrom: 7 });
    expect(store.events('old').truncated).toBe(true);
    expect(store.output('fine', 100)).toMatchObject({ headBytes: 3, uncounted: false });
    expect(store.events('fine').truncated).toBe(false);
    // Output that arrives for it now is counted on top of what the older server kept.
    store.appendEvent(log('fine', 1, 'stdout', Buffer.from('more\n')), 100);
    store.commit();
    expect(keptBytes(store, 'fine', 'stdout').toString()).toBe('ok\nmore\n');
    expect(store.output('fine', 100).stdout.written).toBe(8);
    store.close();
  });

  it('keeps chunks events whole, dropping the oldest whole ones from the tail', () => {
    const { store } = newStore();
    const chunk = (seq: number, text: string): TaskEvent => ({
      v: 1,
      taskId: 'c',
      attempt: 1,
      node: 'n1',
      seq,
      ts: 1,
      type: 'chunks',
      chunks: [{ response: text }],
    });
    const text = (i: number) => `${i}`.padStart(40, '.'); // 57 bytes of JSON each
    for (let i = 0; i < 10; i++) store.appendEvent(chunk(i, text(i)), 300);
    store.commit();
    const kept = keptEvents(store, 'c').map((e) => (e.type === 'chunks' ? Number(String(e.chunks[0].response).replace(/\./g, '')) : -1));
    // Head: 150 bytes → 2 whole events (114); tail: 150 → the last 2 whole events.
    expect(kept).toEqual([0, 1, 8, 9]);
    expect(store.output('c', 300).chunks).toMatchObject({ dropped: 6 * 57, droppedFrom: 114 });
    store.close();
  });

  it('deleting a task forgets its account', () => {
    const { store } = newStore();
    store.appendEvent(log('d', 0, 'stdout', randomBytes(500)), 100);
    store.commit();
    expect(store.output('d', 100).stdout.dropped).toBe(400);
    store.deleteTasks(['d']);
    store.commit();
    expect(store.output('d', 100).stdout.written).toBe(0);
    expect(keptEvents(store, 'd')).toEqual([]);
    store.close();
  });
});
