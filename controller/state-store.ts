/**
 * The controller's durable state, in SQLite (better-sqlite3) under the data dir: tasks, the
 * events kept for each task (logs bounded per task), and drained nodes. Every change is written
 * before it is acted on, so a server killed with SIGKILL loses no accepted task.
 *
 * Why SQLite through better-sqlite3: a single-file embedded database with transactions and WAL,
 * synchronous calls (no interleaving between a change and its write), and the most used SQLite
 * binding for Node. Version 12 because 13 needs Node 22. WAL with synchronous=NORMAL survives a
 * killed process (the OS has the pages); only a power cut can lose the last transactions.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { TaskEvent } from '../shared/schemas/index.js';
import type { TaskRecord } from './task-record.js';

export class StateStore {
  private readonly db: Database.Database;
  private readonly stmts;
  /** A transaction is open: the writes of this turn of the event loop, committed together (see `afterCommit`). */
  private open = false;
  /** What waits for the open transaction to commit (the controller's publishes), in order. */
  private waiting: (() => void)[] = [];
  /** Called when a group commit fails (its writes are rolled back and what waited on it dropped). Default: thrown. */
  onCommitError: (err: unknown) => void = (err) => {
    throw err;
  };

  /**
   * Opens (creating when missing) `<dataDir>/controller.db`.
   * @throws the SQLite error when the directory cannot be created or the file opened.
   */
  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dataDir, 'controller.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS tasks (
        task_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        terminal INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE TABLE IF NOT EXISTS events (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (task_id, attempt, seq)
      );
      CREATE TABLE IF NOT EXISTS log_usage (
        task_id TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL,
        truncated INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS drained_nodes (node TEXT PRIMARY KEY);
    `);
    this.stmts = {
      upsert: this.db.prepare(
        'INSERT INTO tasks (task_id, record, terminal, finished_at) VALUES (?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET record = excluded.record, terminal = excluded.terminal, finished_at = excluded.finished_at',
      ),
      all: this.db.prepare('SELECT record FROM tasks'),
      deleteTask: this.db.prepare('DELETE FROM tasks WHERE task_id = ?'),
      deleteEvents: this.db.prepare('DELETE FROM events WHERE task_id = ?'),
      deleteUsage: this.db.prepare('DELETE FROM log_usage WHERE task_id = ?'),
      insertEvent: this.db.prepare('INSERT OR IGNORE INTO events (task_id, attempt, seq, body) VALUES (?, ?, ?, ?)'),
      events: this.db.prepare(
        'SELECT body FROM events WHERE task_id = ? AND (attempt > ? OR (attempt = ? AND seq > ?)) ORDER BY attempt, seq',
      ),
      usage: this.db.prepare('SELECT bytes, truncated FROM log_usage WHERE task_id = ?'),
      setUsage: this.db.prepare(
        'INSERT INTO log_usage (task_id, bytes, truncated) VALUES (?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET bytes = excluded.bytes, truncated = excluded.truncated',
      ),
      drained: this.db.prepare('SELECT node FROM drained_nodes'),
      drain: this.db.prepare('INSERT OR IGNORE INTO drained_nodes (node) VALUES (?)'),
      resume: this.db.prepare('DELETE FROM drained_nodes WHERE node = ?'),
    };
  }

  /**
   * Group commit. The first write of a turn of the event loop opens a transaction that commits at
   * the end of the turn (setImmediate), so a burst of changes costs one commit, not one per row —
   * SQLite's commits were a quarter of the server's CPU in the throughput benchmark. The guarantee
   * stays: whatever must only be said once a change is stored (a reply, an assignment, a task
   * state) goes through `afterCommit`, and runs after the commit that stores it. A process killed
   * before the commit loses only changes nobody was told about.
   */
  private write(): void {
    if (this.open) return;
    this.db.exec('BEGIN');
    this.open = true;
    setImmediate(() => this.commit());
  }

  /** Commits the open transaction (if any), then runs what waited for it, in order. */
  commit(): void {
    if (!this.open) return;
    this.open = false;
    const waiting = this.waiting;
    this.waiting = [];
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.onCommitError(err);
      return;
    }
    for (const fn of waiting) fn();
  }

  /** Runs `fn` once every write made so far is committed: now when none is pending. */
  afterCommit(fn: () => void): void {
    if (this.open) this.waiting.push(fn);
    else fn();
  }

  /** Every stored task. */
  loadTasks(): TaskRecord[] {
    return (this.stmts.all.all() as { record: string }[]).map((r) => JSON.parse(r.record) as TaskRecord);
  }

  /** Writes a task (insert or replace). */
  saveTask(record: TaskRecord, terminal: boolean): void {
    this.write();
    this.stmts.upsert.run(record.state.taskId, JSON.stringify(record), terminal ? 1 : 0, record.state.finishedAt);
  }

  /** Forgets tasks and their events. */
  deleteTasks(ids: string[]): void {
    this.write();
    this.db.transaction(() => {
      for (const id of ids) {
        this.stmts.deleteTask.run(id);
        this.stmts.deleteEvents.run(id);
        this.stmts.deleteUsage.run(id);
      }
    })();
  }

  /**
   * Keeps an event. Log and chunks events (output) count against `maxLogBytes` per task; past it they are dropped and
   * the task is marked truncated. Other events are always kept.
   * @returns false when the event was dropped for the log limit.
   */
  appendEvent(event: TaskEvent, maxLogBytes: number): boolean {
    this.write();
    return this.db.transaction(() => {
      if (event.type === 'log' || event.type === 'chunks') {
        const usage = (this.stmts.usage.get(event.taskId) as { bytes: number; truncated: number } | undefined) ?? {
          bytes: 0,
          truncated: 0,
        };
        const bytes = event.type === 'log' ? Buffer.byteLength(event.data) : JSON.stringify(event.chunks).length;
        if (usage.bytes + bytes > maxLogBytes) {
          if (!usage.truncated) this.stmts.setUsage.run(event.taskId, usage.bytes, 1);
          return false;
        }
        this.stmts.setUsage.run(event.taskId, usage.bytes + bytes, usage.truncated);
      }
      this.stmts.insertEvent.run(event.taskId, event.attempt, event.seq, JSON.stringify(event));
      return true;
    })();
  }

  /**
   * A page of a task's kept events, oldest attempt and seq first, after `after` when given, of at
   * most `maxBytes` of JSON (at least one event); `more` says whether events follow; `truncated`
   * whether log output beyond the per-task limit was dropped.
   */
  events(
    taskId: string,
    after: { attempt: number; seq: number } = { attempt: 0, seq: -1 },
    maxBytes = 1024 * 1024,
  ): { events: TaskEvent[]; truncated: boolean; more: boolean } {
    const events: TaskEvent[] = [];
    let bytes = 0;
    let more = false;
    for (const row of this.stmts.events.iterate(taskId, after.attempt, after.attempt, after.seq) as IterableIterator<{ body: string }>) {
      if (events.length > 0 && bytes + row.body.length > maxBytes) {
        more = true;
        break;
      }
      bytes += row.body.length;
      events.push(JSON.parse(row.body) as TaskEvent);
    }
    const usage = this.stmts.usage.get(taskId) as { truncated: number } | undefined;
    return { events, truncated: Boolean(usage?.truncated), more };
  }

  drainedNodes(): Set<string> {
    return new Set((this.stmts.drained.all() as { node: string }[]).map((r) => r.node));
  }

  setDrained(node: string, drained: boolean): void {
    this.write();
    (drained ? this.stmts.drain : this.stmts.resume).run(node);
  }

  close(): void {
    this.commit();
    this.db.close();
  }
}
