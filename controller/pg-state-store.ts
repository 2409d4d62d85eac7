/**
 * The controller's durable state in PostgreSQL (node-postgres 8): the state-store contract
 * (controller/state-contract.ts) with the SQLite store's tables and guarantees, for servers that
 * share one database and take turns leading (controller/leader-lease.ts).
 *
 * Writes are made in memory at once and committed in groups: the first write of a turn of the
 * event loop opens a batch, committed in one transaction soon after (one at a time, in order).
 * `afterCommit` callbacks run once their batch (and every earlier one) committed, so a reply or an
 * assignment is published only once PostgreSQL has the change (commit before acknowledge).
 *
 * Fencing: every transaction first reads `cutter_leader.term` FOR SHARE and goes on only when it
 * is the term this store was opened with. A takeover updates that row, so it waits for a write in
 * flight, and every write after it sees the new term and is refused (FencedError): a deposed
 * leader's late writes never land. Once fenced the store writes nothing more and `onFenced` is told.
 *
 * When a commit fails (PostgreSQL unreachable), its writes and what waits on them are kept and
 * tried again every COMMIT_RETRY_MS, with the writes made since; the guard refuses new work meanwhile.
 */
import type pg from 'pg';
import { logSize } from '../shared/log-data.js';
import type { Logger } from '../shared/logger.js';
import type { KeptOutput, KeptStream, TaskEvent } from '../shared/schemas/index.js';
import { CutterError } from '../shared/errors.js';
import { isOutput, keptPart } from './log-keeper.js';
import { closePg, connectPg, ensureSchema, FencedError, isUnavailable, redactUrl } from './pg-schema.js';
import { PgLogKeeper, type Stmt } from './pg-log-keeper.js';
import type { EventPage, StateGuard, StateStoreContract } from './state-contract.js';
import { COMMIT_RETRY_MS, PENDING_OUTPUT_BYTES } from './state-store.js';
import type { StorageState } from './storage.js';
import type { TaskRecord } from './task-record.js';

/** Writes not committed yet, and what waits for them. */
interface Batch {
  tasks: Map<string, { record: TaskRecord; terminal: boolean }>;
  deleted: Set<string>;
  ops: Stmt[];
  outputBytes: number;
  waiting: (() => void)[];
}

const emptyBatch = (): Batch => ({ tasks: new Map(), deleted: new Set(), ops: [], outputBytes: 0, waiting: [] });

/** The guard of the PostgreSQL store: degraded while commits fail or once fenced. */
export class PgGuard implements StateGuard {
  state: StorageState = { state: 'ok' };

  constructor(private readonly where: string) {}

  get ok(): boolean {
    return this.state.state === 'ok';
  }

  start(): void {}

  stop(): void {}

  failed(err: unknown): boolean {
    if (!isUnavailable(err) && !(err instanceof FencedError)) return false;
    const fenced = err instanceof FencedError;
    const since = this.state.state === 'degraded' ? this.state.since : Date.now();
    const message = fenced
      ? `${(err as Error).message}: this server no longer leads; new work goes to the leader`
      : `state database ${this.where} cannot be written (${(err as Error).message}): check that PostgreSQL is up and reachable; new work is refused until then`;
    this.state = { state: 'degraded', code: fenced ? 'FENCED' : 'STATE_DB_UNAVAILABLE', path: this.where, freeBytes: null, since, message };
    return true;
  }

  committed(): void {
    this.state = { state: 'ok' };
  }

  refusal(): CutterError | null {
    return this.state.state === 'ok' ? null : new CutterError('STORAGE_UNAVAILABLE', this.state.message);
  }
}

export interface PgStoreOptions {
  /** The leadership term this server holds (controller/leader-lease.ts); writes under another term are refused. */
  term: number;
  log?: Logger;
  /** Told once when a write was refused for a stale term (another server leads). */
  onFenced?: (err: FencedError) => void;
}

export class PgStateStore implements StateStoreContract {
  readonly guard: PgGuard;
  onCommitError: (err: unknown) => void = (err) => this.log?.error({ err }, 'state commit failed');
  private client?: pg.Client;
  private pending: Batch | null = null;
  private inflight: Batch | null = null;
  private scheduled = false;
  private failingSince: number | null = null;
  private retryTimer?: NodeJS.Timeout;
  private fenced: FencedError | null = null;
  private closed = false;
  private readonly logs = new PgLogKeeper();

  private constructor(
    private readonly url: string,
    private readonly opts: PgStoreOptions,
    private readonly tasks: TaskRecord[],
    private readonly drained: Set<string>,
    private readonly log?: Logger,
  ) {
    this.guard = new PgGuard(redactUrl(url));
  }

  /**
   * Connects, creates the schema when missing and reads the state (tasks, drained nodes, output accounts).
   * @throws pg's error when PostgreSQL cannot be reached or the login is refused.
   */
  static async open(url: string, opts: PgStoreOptions): Promise<PgStateStore> {
    const client = await connectPg(url, undefined, 'cutter-state');
    try {
      await ensureSchema(client);
      const tasks = (await client.query<{ record: string }>('SELECT record FROM tasks')).rows.map(
        (r) => JSON.parse(r.record) as TaskRecord,
      );
      const drained = new Set((await client.query<{ node: string }>('SELECT node FROM drained_nodes')).rows.map((r) => r.node));
      const store = new PgStateStore(url, opts, tasks, drained, opts.log);
      store.logs.load(
        (await client.query('SELECT task_id, cut FROM log_usage')).rows,
        (await client.query('SELECT task_id, attempt, seq, stream, prefix, bytes FROM log_tail')).rows,
      );
      store.client = client;
      return store;
    } catch (err) {
      await closePg(client);
      throw err;
    }
  }

  get failing(): boolean {
    return this.failingSince !== null || this.fenced !== null;
  }

  /** The open batch, opened (and its commit scheduled) by the first write of a turn. */
  private batch(): Batch {
    if (!this.pending) this.pending = emptyBatch();
    if (!this.scheduled && !this.inflight && this.failingSince === null && !this.fenced) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
    return this.pending;
  }

  afterCommit(fn: () => void): void {
    if (this.pending) this.pending.waiting.push(fn);
    else if (this.inflight) this.inflight.waiting.push(fn);
    else if (this.fenced)
      return; // nothing more is said by a deposed leader
    else fn();
  }

  commit(): void {
    if (!this.inflight && this.pending && this.failingSince === null) void this.flush();
  }

  loadTasks(): TaskRecord[] {
    return this.tasks;
  }

  saveTask(record: TaskRecord, terminal: boolean): void {
    JSON.stringify(record); // throws (a bug) before anything is kept
    const b = this.batch();
    b.tasks.set(record.state.taskId, { record, terminal });
  }

  deleteTasks(ids: string[]): void {
    if (ids.length === 0) return;
    const b = this.batch();
    for (const id of ids) {
      b.tasks.delete(id);
      b.deleted.add(id);
      this.logs.delete(id);
      for (const table of ['tasks', 'events', 'log_tail', 'log_usage'])
        b.ops.push({ text: `DELETE FROM ${table} WHERE task_id = $1`, values: [id] });
    }
  }

  appendEvent(event: TaskEvent, maxLogBytes: number): boolean {
    const body = JSON.stringify(event); // throws (a bug) before anything is kept
    const b = this.batch();
    if (isOutput(event) && b.outputBytes + body.length > PENDING_OUTPUT_BYTES) {
      const stream: KeptStream = event.type === 'log' ? event.stream : 'chunks';
      const bytes = event.type === 'log' ? logSize(event) : JSON.stringify(event.chunks).length;
      this.logs.lost(event.taskId, { [stream]: bytes }, b.ops);
      return false;
    }
    if (isOutput(event)) b.outputBytes += body.length;
    return this.logs.store(event, body, maxLogBytes, b.ops);
  }

  output(taskId: string, maxLogBytes: number): KeptOutput {
    return this.logs.output(taskId, maxLogBytes);
  }

  async events(taskId: string, after = { attempt: 0, seq: -1 }, maxBytes = 1024 * 1024): Promise<EventPage> {
    const client = await this.connection();
    type Row = { body: string; prefix: number | null; bytes: number | null };
    const rows = await client.query<Row>(
      `SELECT e.body, t.prefix, t.bytes FROM events e LEFT JOIN log_tail t ON t.task_id = e.task_id AND t.attempt = e.attempt AND t.seq = e.seq
       WHERE e.task_id = $1 AND (e.attempt > $2 OR (e.attempt = $2 AND e.seq > $3)) ORDER BY e.attempt, e.seq LIMIT 10000`,
      [taskId, after.attempt, after.seq],
    );
    const events: TaskEvent[] = [];
    let bytes = 0;
    let more = false;
    for (const row of rows.rows) {
      if (events.length > 0 && bytes + row.body.length > maxBytes) {
        more = true;
        break;
      }
      bytes += row.body.length;
      const tail = row.prefix === null || row.bytes === null ? null : { prefix: row.prefix, bytes: row.bytes };
      events.push(keptPart(JSON.parse(row.body) as TaskEvent, tail));
    }
    if (!more && rows.rows.length === 10000) more = true;
    return { events, truncated: this.logs.truncated(taskId), more };
  }

  drainedNodes(): Set<string> {
    return new Set(this.drained);
  }

  setDrained(node: string, drained: boolean): void {
    const b = this.batch();
    b.ops.push(
      drained
        ? { text: 'INSERT INTO drained_nodes (node) VALUES ($1) ON CONFLICT DO NOTHING', values: [node] }
        : { text: 'DELETE FROM drained_nodes WHERE node = $1', values: [node] },
    );
  }

  /** The store's connection, reconnecting after a loss. */
  private async connection(): Promise<pg.Client> {
    if (!this.client) this.client = await connectPg(this.url, undefined, 'cutter-state');
    return this.client;
  }

  /** Commits the pending batch in one fenced transaction; see the file comment. */
  private async flush(): Promise<void> {
    if (this.inflight || this.fenced || !this.pending) return;
    const b = this.pending;
    this.pending = null;
    this.inflight = b;
    try {
      await this.run(b);
    } catch (err) {
      this.inflight = null;
      this.failed(b, err);
      return;
    }
    this.inflight = null;
    if (this.failingSince !== null) {
      this.log?.info({ seconds: Math.round((Date.now() - this.failingSince) / 1000) }, 'state database answers again: changes committed');
      this.failingSince = null;
    }
    this.guard.committed();
    for (const fn of b.waiting) fn();
    if (this.pending && !this.scheduled) void this.flush();
  }

  private async run(b: Batch): Promise<void> {
    let client: pg.Client;
    try {
      client = await this.connection();
    } catch (err) {
      this.client = undefined;
      throw err;
    }
    try {
      await client.query('BEGIN');
      const r = await client.query<{ term: string }>('SELECT term FROM cutter_leader WHERE id = 1 FOR SHARE');
      const current = Number(r.rows[0]?.term ?? 0);
      if (current !== this.opts.term) throw new FencedError(this.opts.term, current);
      for (const op of b.ops) await client.query(op.text, op.values);
      if (b.tasks.size > 0) {
        const ids: string[] = [];
        const records: string[] = [];
        const terminal: number[] = [];
        const finished: (number | null)[] = [];
        for (const [id, t] of b.tasks) {
          let json: string;
          try {
            json = JSON.stringify(t.record);
          } catch (err) {
            this.log?.error({ err, taskId: id }, 'cannot serialise a task: its change is dropped');
            continue;
          }
          ids.push(id);
          records.push(json);
          terminal.push(t.terminal ? 1 : 0);
          finished.push(t.record.state.finishedAt);
        }
        await client.query(
          `INSERT INTO tasks (task_id, record, terminal, finished_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[])
           ON CONFLICT (task_id) DO UPDATE SET record = excluded.record, terminal = excluded.terminal, finished_at = excluded.finished_at`,
          [ids, records, terminal, finished],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (isUnavailable(err)) {
        this.client = undefined;
        void closePg(client);
      }
      throw err;
    }
  }

  /** A batch did not commit: fenced (stop for good), or kept with the newer writes and retried. */
  private failed(b: Batch, err: unknown): void {
    if (err instanceof FencedError) {
      this.fenced = err;
      this.pending = null;
      this.guard.failed(err);
      this.log?.error({ err, term: err.term, current: err.current }, 'state write refused: another server leads now');
      this.opts.onFenced?.(err);
      return;
    }
    if (!this.guard.failed(err)) this.onCommitError(err);
    const n = this.pending ?? emptyBatch();
    for (const id of n.deleted) b.tasks.delete(id);
    for (const [id, t] of n.tasks) b.tasks.set(id, t);
    for (const id of n.deleted) b.deleted.add(id);
    b.ops.push(...n.ops);
    b.outputBytes += n.outputBytes;
    b.waiting.push(...n.waiting);
    this.pending = b;
    if (this.failingSince === null) {
      this.failingSince = Date.now();
      this.log?.warn({ err, waiting: b.waiting.length, tasks: b.tasks.size }, 'state commit failed: changes kept in memory and retried');
    }
    clearTimeout(this.retryTimer);
    if (this.closed) return;
    this.retryTimer = setTimeout(() => void this.flush(), COMMIT_RETRY_MS);
    this.retryTimer.unref();
  }

  /** Commits what is pending (one try, at most a few seconds) and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (!this.fenced) {
      const deadline = Date.now() + 3_000;
      while ((this.pending || this.inflight) && Date.now() < deadline) {
        if (!this.inflight) await this.flush();
        else await new Promise((r) => setTimeout(r, 10));
        if (this.failingSince !== null) break;
      }
    }
    await closePg(this.client);
    this.client = undefined;
  }
}
