/**
 * The contract of the controller's durable state (design.md, "State store as an interface"): what
 * the controller, the task store and the request handlers use, whatever holds the state. Two
 * implementations: controller/state-store.ts (SQLite under the data dir, the embedded default) and
 * controller/pg-state-store.ts (PostgreSQL, for several servers under one leader).
 *
 * The guarantees both keep:
 *  - Commit before acknowledge: writes (`saveTask`, `deleteTasks`, `appendEvent`, `setDrained`) are
 *    made at once in memory and committed together soon after (a group commit); `afterCommit(fn)`
 *    runs `fn` only once every write made before the call is committed. The controller publishes
 *    replies, assignments, task states and acks through it, so nothing is said that the store does
 *    not have. A commit may be asynchronous (PostgreSQL); callbacks run in the order given.
 *  - Every transition durable: a commit that fails keeps its writes (and what waits on them) and is
 *    retried; meanwhile `failing` is true and `guard` refuses new work.
 *  - Recovery: `loadTasks()` and `drainedNodes()` return what was committed before a restart (or
 *    before another server's leadership ended).
 */
import type { CutterError } from '../shared/errors.js';
import type { KeptOutput, TaskEvent } from '../shared/schemas/index.js';
import type { StorageState } from './storage.js';
import type { TaskRecord } from './task-record.js';

/** A value now (SQLite) or later (PostgreSQL): callers `await` it either way. */
export type MaybePromise<T> = T | Promise<T>;

/** One page of a task's kept events (see StateStoreContract.events). */
export interface EventPage {
  events: TaskEvent[];
  /** Output was not kept whole (see `output`). */
  truncated: boolean;
  /** More events follow this page. */
  more: boolean;
}

/** Whether the store takes writes now; the shape of controller/storage.ts StorageGuard that the controller uses. */
export interface StateGuard {
  readonly state: StorageState;
  readonly ok: boolean;
  /** Starts its periodic checks (unref'd timers). */
  start(): void;
  stop(): void;
  /** A write failed. @returns whether it was a storage error (else a bug, which the caller logs). */
  failed(err: unknown): boolean;
  /** The error a write request gets while degraded; null when ok. */
  refusal(): CutterError | null;
}

/** The controller's durable state; see the file comment for the guarantees. */
export interface StateStoreContract {
  readonly guard: StateGuard;
  /** Whether commits fail now (writes wait in memory and are retried). */
  readonly failing: boolean;
  /** Called when a commit fails for another reason than storage (a bug); default: logged. */
  onCommitError: (err: unknown) => void;
  /** Runs `fn` once every write made so far is committed: at once when none is pending. */
  afterCommit(fn: () => void): void;
  /** Starts committing what is pending now (the SQLite store commits synchronously). */
  commit(): void;
  /** Every stored task (read at start; the PostgreSQL store reads them when it opens). */
  loadTasks(): TaskRecord[];
  /** Writes a task (insert or replace); `terminal`: its state is final. @throws when the record cannot be serialised. */
  saveTask(record: TaskRecord, terminal: boolean): void;
  /** Forgets tasks, their events and their output accounts. */
  deleteTasks(ids: string[]): void;
  /**
   * Keeps an event; output (log, chunks) within `maxLogBytes` per task, head and tail kept
   * (controller/log-keeper.ts). @returns false when the event was dropped at once (a limit, a redelivery).
   */
  appendEvent(event: TaskEvent, maxLogBytes: number): boolean;
  /** What of a task's output is kept and dropped, per stream. */
  output(taskId: string, maxLogBytes: number): KeptOutput;
  /** A page of a task's kept events after `after` (attempt, seq), at most `maxBytes` of JSON (at least one event). */
  events(taskId: string, after?: { attempt: number; seq: number }, maxBytes?: number): MaybePromise<EventPage>;
  /** Nodes drained by an operator (kept across restarts). */
  drainedNodes(): Set<string>;
  setDrained(node: string, drained: boolean): void;
  /** Commits what it can and closes; never throws. */
  close(): MaybePromise<void>;
}
