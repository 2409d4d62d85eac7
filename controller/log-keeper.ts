/**
 * A task's output kept within its limit, in the state store's SQLite database: the head and the
 * tail (controller/log-cut.ts), the middle dropped and counted per stream.
 *
 * Tables: `events` holds every kept event, output or not, whole as it came (JSON, or a log event's
 * binary frame as a BLOB: shared/log-frame.ts `storedForm`);
 * `log_tail` lists the output events in the tail with how many of their tail bytes are still kept
 * (`bytes`; the event that filled the head also holds `prefix` head bytes before them);
 * `log_usage` holds each task's account (log-cut's CutState as JSON in `cut`, plus the kept total
 * and a truncated flag, the columns older servers wrote). Dropping from the tail deletes its oldest
 * event when all its bytes go, and otherwise only lowers that event's `bytes`: an event is read
 * back (`keptPart`) as its first `prefix` bytes and its last `bytes` bytes. So an arriving event
 * costs one insert and at most a delete and a small update, never a rewrite of a stored event; on
 * disk a task holds at most two output events (≤ 768 KiB each) beyond its limit.
 *
 * Tasks stored by an older server (a `log_usage` row without `cut`, head kept, the rest dropped
 * uncounted) read as an account of their kept events, `uncounted` when they were truncated.
 */
import type Database from 'better-sqlite3';
import { logBytes, logSize } from '../shared/log-data.js';
import { frameEvent, fromStoredForm, headerOf } from '../shared/log-frame.js';
import { KEPT_STREAMS, type KeptOutput, type KeptStream, outputCut, type TaskEvent } from '../shared/schemas/index.js';
import { admit, type CutState, evict, keptOutput, lose, newCut, parseCut, takeInOrder } from './log-cut.js';

/** The stream an output event counts in and its size, bytes (decoded log bytes; JSON of chunks). */
export function measure(event: Extract<TaskEvent, { type: 'log' | 'chunks' }>): { stream: KeptStream; bytes: number } {
  return event.type === 'log'
    ? { stream: event.stream, bytes: logSize(event) }
    : { stream: 'chunks', bytes: JSON.stringify(event.chunks).length };
}

/** Whether an event is output (counts against the limit). */
export function isOutput(event: TaskEvent): event is Extract<TaskEvent, { type: 'log' | 'chunks' }> {
  return event.type === 'log' || event.type === 'chunks';
}

interface TailRow {
  attempt: number;
  seq: number;
  stream: KeptStream;
  prefix: number;
  bytes: number;
}

export class LogKeeper {
  private readonly stmts;

  /** Creates its tables when missing and adds the `cut` column to an older database's `log_usage`. */
  constructor(db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS log_usage (
        task_id TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL,
        truncated INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS log_tail (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        stream TEXT NOT NULL,
        prefix INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (task_id, attempt, seq)
      );
    `);
    const columns = db.prepare('PRAGMA table_info(log_usage)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'cut')) db.exec('ALTER TABLE log_usage ADD COLUMN cut TEXT');
    this.stmts = {
      usage: db.prepare('SELECT bytes, truncated, cut FROM log_usage WHERE task_id = ?'),
      setUsage: db.prepare(
        'INSERT INTO log_usage (task_id, bytes, truncated, cut) VALUES (?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET bytes = excluded.bytes, truncated = excluded.truncated, cut = excluded.cut',
      ),
      insertEvent: db.prepare('INSERT OR IGNORE INTO events (task_id, attempt, seq, body) VALUES (?, ?, ?, ?)'),
      deleteEvent: db.prepare('DELETE FROM events WHERE task_id = ? AND attempt = ? AND seq = ?'),
      allEvents: db.prepare('SELECT body FROM events WHERE task_id = ? ORDER BY attempt, seq'),
      insertTail: db.prepare('INSERT OR REPLACE INTO log_tail (task_id, attempt, seq, stream, prefix, bytes) VALUES (?, ?, ?, ?, ?, ?)'),
      oldestTail: db.prepare(
        'SELECT attempt, seq, stream, prefix, bytes FROM log_tail WHERE task_id = ? AND bytes > 0 ORDER BY attempt, seq LIMIT 1',
      ),
      setTail: db.prepare('UPDATE log_tail SET bytes = ? WHERE task_id = ? AND attempt = ? AND seq = ?'),
      deleteTail: db.prepare('DELETE FROM log_tail WHERE task_id = ? AND attempt = ? AND seq = ?'),
      deleteTaskTail: db.prepare('DELETE FROM log_tail WHERE task_id = ?'),
      deleteUsage: db.prepare('DELETE FROM log_usage WHERE task_id = ?'),
    };
  }

  /**
   * Stores one event (call inside a transaction). Output events go to the head while it has room,
   * then to the tail, whose oldest bytes are dropped past the limit; a redelivered output event
   * (at or before the last one taken) is ignored. Other events are always stored.
   * @param body the event as stored (shared/log-frame.ts `storedForm`: its JSON, or a log frame).
   * @param limit the task's output limit, bytes (maxLogBytes).
   * @returns whether some of the event is kept now (false: a redelivery, or dropped at once).
   */
  store(event: TaskEvent, body: string | Buffer, limit: number): boolean {
    if (!isOutput(event)) {
      this.stmts.insertEvent.run(event.taskId, event.attempt, event.seq, body);
      return true;
    }
    const st = this.load(event.taskId);
    if (!takeInOrder(st, event.attempt, event.seq)) return false;
    const { stream, bytes } = measure(event);
    const { head, tail } = admit(st, stream, bytes, event.type === 'log', limit);
    this.stmts.insertEvent.run(event.taskId, event.attempt, event.seq, body);
    if (tail > 0) this.stmts.insertTail.run(event.taskId, event.attempt, event.seq, stream, head, tail);
    let kept = true;
    for (;;) {
      const oldest = this.stmts.oldestTail.get(event.taskId) as TailRow | undefined;
      if (!oldest) break;
      const cut = evict(st, { stream: oldest.stream, bytes: oldest.bytes, splittable: oldest.stream !== 'chunks' }, limit);
      if (cut === null) break;
      this.cutTail(event.taskId, oldest, cut);
      if (oldest.attempt === event.attempt && oldest.seq === event.seq && cut === oldest.bytes && oldest.prefix === 0) kept = false;
    }
    this.save(event.taskId, st);
    return kept;
  }

  /**
   * Drops the first `cut` bytes of an event's tail part: the event itself when nothing of it stays,
   * else only its count of kept tail bytes (an event that holds head bytes stays, read as them).
   */
  private cutTail(taskId: string, row: TailRow, cut: number): void {
    const key = [taskId, row.attempt, row.seq] as const;
    if (cut === row.bytes && row.prefix === 0) {
      this.stmts.deleteTail.run(...key);
      this.stmts.deleteEvent.run(...key);
    } else this.stmts.setTail.run(row.bytes - cut, ...key);
  }

  /** Counts output events dropped before storage (commits failing, see PENDING_OUTPUT_BYTES) as lost. */
  lost(taskId: string, counts: Partial<Record<KeptStream, number>>): void {
    const st = this.load(taskId);
    for (const s of KEPT_STREAMS) if (counts[s]) lose(st, s, counts[s]);
    this.save(taskId, st);
  }

  /** What of a task's output is kept and dropped (the `output` of a task.logs reply). @param limit maxLogBytes now. */
  output(taskId: string, limit: number): KeptOutput {
    return keptOutput(this.load(taskId), limit);
  }

  /** Forgets a task's account and tail list (its events are deleted by the caller). */
  delete(taskId: string): void {
    this.stmts.deleteTaskTail.run(taskId);
    this.stmts.deleteUsage.run(taskId);
  }

  private save(taskId: string, st: CutState): void {
    const o = keptOutput(st, 0);
    this.stmts.setUsage.run(taskId, st.headBytes + st.tailBytes, outputCut(o) ? 1 : 0, JSON.stringify(st));
  }

  /** A task's account: stored, rebuilt from the kept events of a task an older server stored, or empty. */
  private load(taskId: string): CutState {
    const row = this.stmts.usage.get(taskId) as { bytes: number; truncated: number; cut: string | null } | undefined;
    if (!row) return newCut();
    if (row.cut !== null) return parseCut(row.cut);
    const st = newCut();
    for (const { body } of this.stmts.allEvents.iterate(taskId) as IterableIterator<{ body: string | Buffer }>) {
      const event = fromStoredForm(body);
      if (!isOutput(event)) continue;
      const { stream, bytes } = measure(event);
      st.streams[stream].written += bytes;
      st.streams[stream].head += bytes;
      st.headBytes += bytes;
      st.last = [event.attempt, event.seq];
    }
    st.headFull = st.uncounted = row.truncated === 1;
    return st;
  }
}

/**
 * An event as it reads back: whole, unless it is in the tail and lost some of its first bytes
 * there; then its first `prefix` bytes (head bytes) and its last `bytes` bytes.
 * @param tail its log_tail row, when it has one.
 */
export function keptPart(event: TaskEvent, tail: { prefix: number; bytes: number } | null): TaskEvent {
  if (!tail || event.type !== 'log' || tail.prefix + tail.bytes >= logSize(event)) return event;
  const data = logBytes(event);
  const kept = Buffer.concat([data.subarray(0, tail.prefix), data.subarray(data.length - tail.bytes)]);
  return frameEvent(headerOf(event), kept);
}
