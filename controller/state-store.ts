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
import type Database from 'better-sqlite3';
import { logSize } from '../shared/log-data.js';
import { fromStoredForm, storedForm } from '../shared/log-frame.js';
import type { Logger } from '../shared/logger.js';
import type { KeptOutput, KeptStream, TaskEvent } from '../shared/schemas/index.js';
import { isOutput, keptPart, LogKeeper } from './log-keeper.js';
import type { StateStoreContract } from './state-contract.js';
import { StorageGuard } from './storage.js';
import type { TaskRecord } from './task-record.js';
import { makeDirSync } from '../shared/make-dir.js';
import { openStateDb, type StateStatements, stateStatements } from './state-db.js';
import { emptyJournal } from './state-journal.js';

/** How often a failed commit is tried again, ms. */
export const COMMIT_RETRY_MS = 2_000;
/** Longest a write of output (log, chunks events) waits for its commit when nothing else is written, ms (see `write`). */
export const OUTPUT_COMMIT_MS = 200;
/** Output written since the last commit (bytes as stored) past which it commits at the end of the turn. */
export const OUTPUT_COMMIT_BYTES = 4 * 1024 * 1024;
/** Output events (log, chunks) kept in memory while commits fail, bytes of JSON; past it they are dropped and counted as lost. */
export const PENDING_OUTPUT_BYTES = 16 * 1024 * 1024;

/** The SQLite implementation of the state-store contract (controller/state-contract.ts). */
export class StateStore implements StateStoreContract {
  private readonly db: Database.Database;
  private readonly stmts: StateStatements;
  private readonly logs: LogKeeper;
  /** Stores one event in its own savepoint (all or nothing): LogKeeper.store. */
  private readonly storeTx: (event: TaskEvent, body: Buffer | string, maxLogBytes: number) => boolean;
  /** Deletes tasks' rows, all or none. */
  private readonly deleteTx: (ids: string[]) => void;
  /** Tasks saved since the last commit, upserted just before it (`writeTasks`). */
  private readonly unwritten = new Set<string>();
  /** A transaction is open: the writes of this turn of the event loop, committed together (see `afterCommit`). */
  private open = false;
  /** What waits for the open transaction to commit (the controller's publishes), in order. */
  private waiting: (() => void)[] = [];
  /** What was written since the last successful commit. */
  private journal = emptyJournal();
  /** Commits fail (storage): writes go to the journal only, retried every COMMIT_RETRY_MS. */
  private failingSince: number | null = null;
  private retryTimer?: NodeJS.Timeout;
  /** Whether the data dir takes writes (see controller/storage.ts). */
  readonly guard: StorageGuard;
  private readonly log?: Logger;
  /** Called when a commit fails for another reason than storage (a bug); the changes are retried. Default: logged. */
  onCommitError: (err: unknown) => void = (err) => this.log?.error({ err }, 'state commit failed');

  /**
   * Opens (creating when missing) `<dataDir>/controller.db`.
   * @param opts.minFreeBytes free space below which the data dir counts as full (StorageGuard).
   * @throws the SQLite error when the directory cannot be created or the file opened.
   */
  constructor(dataDir: string, opts: { log?: Logger; minFreeBytes?: number; statfs?: (path: string) => number | null } = {}) {
    this.log = opts.log;
    this.guard = new StorageGuard(
      dataDir,
      opts.minFreeBytes,
      (s, previous) => {
        if (s.state === 'degraded')
          this.log?.warn({ code: s.code, path: s.path, freeBytes: s.freeBytes }, `storage degraded: ${s.message}`);
        else if (previous.state === 'degraded') this.log?.info({ path: dataDir, afterMs: Date.now() - previous.since }, 'storage ok again');
      },
      opts.statfs,
    );
    makeDirSync(dataDir, 0o700);
    this.db = openStateDb(dataDir);
    this.logs = new LogKeeper(this.db);
    this.stmts = stateStatements(this.db);
    // Made once: better-sqlite3 builds four wrapper functions and their properties per
    // `db.transaction()`, which per event was 5 % of the controller's time.
    this.storeTx = this.db.transaction((event: TaskEvent, body: Buffer | string, maxLogBytes: number) =>
      this.logs.store(event, body, maxLogBytes),
    );
    this.deleteTx = this.db.transaction((ids: string[]) => {
      for (const id of ids) this.deleteRows(id);
    });
  }

  /**
   * Group commit. The first write of a turn of the event loop opens a transaction that commits at
   * the end of the turn (setImmediate), so a burst of changes costs one commit, not one per row —
   * SQLite's commits were a quarter of the server's CPU in the throughput benchmark. The guarantee
   * stays: whatever must only be said once a change is stored (a reply, an assignment, a task
   * state, an ack) goes through `afterCommit`, and runs after the commit that stores it. A process
   * killed before the commit loses only changes nobody was told about.
   *
   * When a commit fails (SQLITE_FULL at COMMIT rolls the transaction back), what it held stays in
   * the journal and what waited on it keeps waiting: nothing is said that the disk does not have.
   * From then on writes only add to the journal, and the whole journal is tried again every
   * COMMIT_RETRY_MS until it commits.
   *
   * Output (`lazy`: log and chunks events, which nobody waits on) may wait up to OUTPUT_COMMIT_MS
   * or OUTPUT_COMMIT_BYTES for its commit, sharing it with the next write that cannot wait: a task
   * streaming fast then has most of the events that pass through the tail of its kept output
   * inserted and deleted within one transaction, and SQLite writes none of their pages (bench/profile.md).
   */
  private write(lazy = false): void {
    if (this.failingSince !== null) return;
    if (!this.open) {
      this.db.exec('BEGIN');
      this.open = true;
    }
    if (lazy) this.commitLater();
    else this.commitSoon();
  }

  /** A commit at the end of this turn of the event loop is scheduled. */
  private soon = false;
  /** A commit for output that can wait is scheduled. */
  private laterTimer?: NodeJS.Timeout;

  private commitSoon(): void {
    if (this.soon) return;
    this.soon = true;
    setImmediate(() => this.commit());
  }

  private commitLater(): void {
    if (this.soon || this.laterTimer) return;
    this.laterTimer = setTimeout(() => this.commit(), OUTPUT_COMMIT_MS);
  }

  /** Whether commits fail now (writes wait in memory; see `write`). */
  get failing(): boolean {
    return this.failingSince !== null;
  }

  /** Runs one statement of the open transaction; a storage error only marks the turn failed (its writes stay in the journal). */
  private run(fn: () => void): void {
    // After a failed statement SQLite may have rolled the transaction back: nothing more runs this turn.
    if (!this.open || this.turnFailed !== undefined) return;
    try {
      fn();
    } catch (err) {
      if (!this.guard.failed(err)) throw err;
      this.turnFailed ??= err;
    }
  }

  /** The first storage error of the open transaction's statements (it will not commit). */
  private turnFailed?: unknown;

  /** Commits the open transaction (if any), then runs what waited for it, in order. */
  commit(): void {
    this.soon = false;
    clearTimeout(this.laterTimer);
    this.laterTimer = undefined;
    if (!this.open) return;
    this.writeTasks();
    this.open = false;
    const failed = this.turnFailed;
    this.turnFailed = undefined;
    try {
      if (failed) throw failed;
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.commitFailed(err);
      return;
    }
    this.committed();
  }

  /** A commit failed: keep everything, go degraded (storage) or log (a bug), retry later. */
  private commitFailed(err: unknown): void {
    const storage = this.guard.failed(err);
    if (!storage) this.onCommitError(err);
    if (this.failingSince === null) {
      this.failingSince = Date.now();
      this.log?.warn(
        { err, waiting: this.waiting.length, tasks: this.journal.tasks.size },
        'state commit failed: changes kept in memory and retried',
      );
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retry(), COMMIT_RETRY_MS);
    this.retryTimer.unref();
  }

  /** Writes the whole journal again in one transaction. */
  retry(): void {
    this.retryTimer = undefined;
    if (this.failingSince === null) return;
    const j = this.journal;
    try {
      this.db.exec('BEGIN');
      for (const id of j.deleted) this.deleteRows(id);
      for (const id of [...j.tasks.keys()]) this.upsertTask(id, (row) => row());
      for (const e of j.events) this.storeEvent(e.event, e.maxLogBytes);
      for (const [id, counts] of j.lost) this.logs.lost(id, counts);
      for (const [node, drained] of j.drains) (drained ? this.stmts.drain : this.stmts.resume).run(node);
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.commitFailed(err);
      return;
    }
    const seconds = Math.round((Date.now() - this.failingSince) / 1000);
    const writes = j.tasks.size + j.events.length + j.deleted.size + j.drains.size;
    this.failingSince = null;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      this.log?.warn({ err }, 'WAL checkpoint failed after recovery');
    }
    this.log?.info({ seconds, writes, waiting: this.waiting.length }, `storage recovered after ${seconds} s (${writes} writes committed)`);
    this.committed();
  }

  /** The journal is on disk: forget it, tell the guard, run what waited. */
  private committed(): void {
    this.journal = emptyJournal();
    this.unwritten.clear();
    this.guard.committed();
    const waiting = this.waiting;
    this.waiting = [];
    for (const fn of waiting) fn();
  }

  /** Runs `fn` once every write made so far is committed: now when none is pending. */
  afterCommit(fn: () => void): void {
    if (this.open || this.failingSince !== null) {
      this.waiting.push(fn);
      if (this.open) this.commitSoon(); // a lazy commit of output is not kept waiting for
    } else fn();
  }

  /** Every stored task. */
  loadTasks(): TaskRecord[] {
    return (this.stmts.all.all() as { record: string }[]).map((r) => JSON.parse(r.record) as TaskRecord);
  }

  /**
   * Writes a task (insert or replace). The row is written once per commit, just before it, as the
   * record is then: a task changes several times in one turn (placed as it is submitted; accepted,
   * running and finished from one packet of events), and serialising and upserting it at each
   * change was a tenth of the controller's time. Serialised again at each retry.
   */
  saveTask(record: TaskRecord, terminal: boolean): void {
    const id = record.state.taskId;
    this.write();
    this.journal.deleted.delete(id);
    this.journal.tasks.set(id, { record, terminal });
    this.unwritten.add(id);
  }

  /** Upserts the tasks saved since the last commit into the open transaction. */
  private writeTasks(): void {
    for (const id of this.unwritten) this.upsertTask(id, (row) => this.run(row));
    this.unwritten.clear();
  }

  /**
   * Serialises the journal's record of task `id` as it is now and hands its upsert to `exec`. A
   * record that cannot be serialised (a bug) is logged and its change dropped; a task deleted since is skipped.
   */
  private upsertTask(id: string, exec: (row: () => void) => void): void {
    const t = this.journal.tasks.get(id);
    if (!t) return;
    let json: string;
    try {
      json = JSON.stringify(t.record);
    } catch (err) {
      this.log?.error({ err, taskId: id }, 'cannot serialise a task: its change is dropped');
      this.journal.tasks.delete(id);
      return;
    }
    exec(() => this.stmts.upsert.run(id, json, t.terminal ? 1 : 0, t.record.state.finishedAt));
  }

  /** Forgets tasks and their events. */
  deleteTasks(ids: string[]): void {
    if (ids.length === 0) return;
    this.write();
    const gone = new Set(ids);
    for (const id of ids) {
      this.journal.tasks.delete(id);
      this.journal.lost.delete(id);
      this.journal.deleted.add(id);
    }
    if (this.journal.events.some((e) => gone.has(e.event.taskId))) {
      this.journal.events = this.journal.events.filter((e) => !gone.has(e.event.taskId));
      this.journal.eventBytes = this.journal.events.reduce((n, e) => n + e.bytes, 0);
    }
    this.run(() => this.deleteTx(ids));
  }

  private deleteRows(id: string): void {
    this.stmts.deleteTask.run(id);
    this.stmts.deleteEvents.run(id);
    this.logs.delete(id);
  }

  /**
   * Keeps an event. Log and chunks events (output) are kept within `maxLogBytes` per task: the head
   * and the tail, the middle dropped and counted (controller/log-keeper.ts). Other events are always
   * kept. While commits fail, output events wait in memory up to PENDING_OUTPUT_BYTES (past it they
   * are dropped and counted as lost); results and the others always.
   * @returns false when the event was dropped at once (a limit, or a redelivery).
   */
  appendEvent(event: TaskEvent, maxLogBytes: number): boolean {
    const body = storedForm(event); // throws (a bug, e.g. too deep) before anything is kept
    const output = isOutput(event);
    if (output && this.journal.eventBytes + body.length > PENDING_OUTPUT_BYTES) {
      const stream: KeptStream = event.type === 'log' ? event.stream : 'chunks';
      const bytes = event.type === 'log' ? logSize(event) : JSON.stringify(event.chunks).length;
      const counts = this.journal.lost.get(event.taskId) ?? {};
      counts[stream] = (counts[stream] ?? 0) + bytes;
      this.journal.lost.set(event.taskId, counts);
      this.write();
      this.run(() => this.logs.lost(event.taskId, { [stream]: bytes }));
      return false;
    }
    this.write(output);
    this.journal.events.push({ event, maxLogBytes, bytes: output ? body.length : 0 });
    if (output) this.journal.eventBytes += body.length;
    if (this.journal.eventBytes >= OUTPUT_COMMIT_BYTES) this.commitSoon();
    let kept = true;
    this.run(() => {
      kept = this.storeEvent(event, maxLogBytes, body);
    });
    return kept;
  }

  /** Stores one event in its own savepoint (all or nothing). @returns what LogKeeper.store says. */
  private storeEvent(event: TaskEvent, maxLogBytes: number, body: Buffer | string = storedForm(event)): boolean {
    return this.storeTx(event, body, maxLogBytes);
  }

  /** What of a task's output is kept and dropped, per stream (the `output` of a task.logs reply). @param maxLogBytes the limit now. */
  output(taskId: string, maxLogBytes: number): KeptOutput {
    return this.logs.output(taskId, maxLogBytes);
  }

  /**
   * A page of a task's kept events, oldest attempt and seq first, after `after` when given, of at
   * most `maxBytes` of JSON (at least one event); `more` says whether events follow; `truncated`
   * whether output was not kept (see `output`). A log event that lost bytes to the tail's limit
   * reads as what is kept of it (log-keeper.ts `keptPart`).
   */
  events(
    taskId: string,
    after: { attempt: number; seq: number } = { attempt: 0, seq: -1 },
    maxBytes = 1024 * 1024,
  ): { events: TaskEvent[]; truncated: boolean; more: boolean } {
    const events: TaskEvent[] = [];
    let bytes = 0;
    let more = false;
    type Row = { body: string | Buffer; prefix: number | null; bytes: number | null };
    for (const row of this.stmts.events.iterate(taskId, after.attempt, after.attempt, after.seq) as IterableIterator<Row>) {
      if (events.length > 0 && bytes + row.body.length > maxBytes) {
        more = true;
        break;
      }
      bytes += row.body.length;
      const tail = row.prefix === null || row.bytes === null ? null : { prefix: row.prefix, bytes: row.bytes };
      events.push(keptPart(fromStoredForm(row.body), tail));
    }
    const usage = this.stmts.truncated.get(taskId) as { truncated: number } | undefined;
    return { events, truncated: Boolean(usage?.truncated), more };
  }

  drainedNodes(): Set<string> {
    return new Set((this.stmts.drained.all() as { node: string }[]).map((r) => r.node));
  }

  setDrained(node: string, drained: boolean): void {
    this.write();
    this.journal.drains.set(node, drained);
    this.run(() => (drained ? this.stmts.drain : this.stmts.resume).run(node));
  }

  /** Commits what it can (one last try when commits fail), stops retrying and closes. */
  close(): void {
    this.commit();
    if (this.failingSince !== null) this.retry();
    clearTimeout(this.retryTimer);
    this.guard.stop();
    this.db.close();
  }
}
