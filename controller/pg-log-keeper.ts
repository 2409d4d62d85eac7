/**
 * controller/log-keeper.ts for the PostgreSQL store: the same head-and-tail keeping of a task's
 * output (controller/log-cut.ts) over the same tables (`events`, `log_tail`, `log_usage`), but the
 * accounts and tail lists live in memory (read when the store opens) so that deciding what to keep
 * stays synchronous; each decision becomes statements for the store's next commit.
 */
import { KEPT_STREAMS, type KeptOutput, type KeptStream, outputCut, type TaskEvent } from '../shared/schemas/index.js';
import { admit, type CutState, evict, keptOutput, lose, newCut, parseCut, takeInOrder } from './log-cut.js';
import { isOutput, measure } from './log-keeper.js';

/** One SQL statement with its parameters. */
export interface Stmt {
  text: string;
  values: unknown[];
}

interface TailRow {
  attempt: number;
  seq: number;
  stream: KeptStream;
  prefix: number;
  bytes: number;
}

/** One task's account and its tail events, oldest first. */
interface Account {
  st: CutState;
  tail: TailRow[];
}

const SQL = {
  insertEvent: 'INSERT INTO events (task_id, attempt, seq, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
  insertTail:
    'INSERT INTO log_tail (task_id, attempt, seq, stream, prefix, bytes) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task_id, attempt, seq) DO UPDATE SET stream = excluded.stream, prefix = excluded.prefix, bytes = excluded.bytes',
  setTail: 'UPDATE log_tail SET bytes = $1 WHERE task_id = $2 AND attempt = $3 AND seq = $4',
  deleteTail: 'DELETE FROM log_tail WHERE task_id = $1 AND attempt = $2 AND seq = $3',
  deleteEvent: 'DELETE FROM events WHERE task_id = $1 AND attempt = $2 AND seq = $3',
  setUsage:
    'INSERT INTO log_usage (task_id, bytes, truncated, cut) VALUES ($1, $2, $3, $4) ON CONFLICT (task_id) DO UPDATE SET bytes = excluded.bytes, truncated = excluded.truncated, cut = excluded.cut',
};

export class PgLogKeeper {
  private readonly accounts = new Map<string, Account>();

  /** Takes the stored accounts and tail rows (read by the store when it opens). */
  load(usage: { task_id: string; cut: string | null }[], tail: (TailRow & { task_id: string })[]): void {
    for (const u of usage) this.accounts.set(u.task_id, { st: u.cut ? parseCut(u.cut) : newCut(), tail: [] });
    for (const r of tail) {
      const acc = this.account(r.task_id);
      acc.tail.push({ attempt: r.attempt, seq: r.seq, stream: r.stream, prefix: r.prefix, bytes: r.bytes });
    }
    for (const acc of this.accounts.values()) acc.tail.sort((a, b) => a.attempt - b.attempt || a.seq - b.seq);
  }

  private account(taskId: string): Account {
    let acc = this.accounts.get(taskId);
    if (!acc) {
      acc = { st: newCut(), tail: [] };
      this.accounts.set(taskId, acc);
    }
    return acc;
  }

  /**
   * Keeps one event (LogKeeper.store's rules), adding the statements to `ops`.
   * @returns whether some of the event is kept (false: a redelivery, or dropped at once).
   */
  store(event: TaskEvent, body: string, limit: number, ops: Stmt[]): boolean {
    const insert: Stmt = { text: SQL.insertEvent, values: [event.taskId, event.attempt, event.seq, body] };
    if (!isOutput(event)) {
      ops.push(insert);
      return true;
    }
    const acc = this.account(event.taskId);
    const { st } = acc;
    if (!takeInOrder(st, event.attempt, event.seq)) return false;
    const { stream, bytes } = measure(event);
    const { head, tail } = admit(st, stream, bytes, event.type === 'log', limit);
    ops.push(insert);
    if (tail > 0) {
      ops.push({ text: SQL.insertTail, values: [event.taskId, event.attempt, event.seq, stream, head, tail] });
      acc.tail.push({ attempt: event.attempt, seq: event.seq, stream, prefix: head, bytes: tail });
    }
    let kept = true;
    for (;;) {
      const oldest = acc.tail.find((r) => r.bytes > 0);
      if (!oldest) break;
      const cut = evict(st, { stream: oldest.stream, bytes: oldest.bytes, splittable: oldest.stream !== 'chunks' }, limit);
      if (cut === null) break;
      const key = [event.taskId, oldest.attempt, oldest.seq];
      if (oldest.attempt === event.attempt && oldest.seq === event.seq && cut === oldest.bytes && oldest.prefix === 0) kept = false;
      if (cut === oldest.bytes && oldest.prefix === 0) {
        acc.tail.splice(acc.tail.indexOf(oldest), 1);
        ops.push({ text: SQL.deleteTail, values: key }, { text: SQL.deleteEvent, values: key });
      } else {
        oldest.bytes -= cut;
        ops.push({ text: SQL.setTail, values: [oldest.bytes, ...key] });
      }
    }
    ops.push(this.usage(event.taskId, st));
    return kept;
  }

  /** Counts output dropped before storage (commits failing) as lost. */
  lost(taskId: string, counts: Partial<Record<KeptStream, number>>, ops: Stmt[]): void {
    const { st } = this.account(taskId);
    for (const s of KEPT_STREAMS) if (counts[s]) lose(st, s, counts[s]);
    ops.push(this.usage(taskId, st));
  }

  /** What of a task's output is kept and dropped. */
  output(taskId: string, limit: number): KeptOutput {
    return keptOutput(this.accounts.get(taskId)?.st ?? newCut(), limit);
  }

  /** Whether output of the task was not kept whole. */
  truncated(taskId: string): boolean {
    const st = this.accounts.get(taskId)?.st;
    return st ? outputCut(keptOutput(st, 0)) : false;
  }

  /** Forgets a task's account (the caller deletes its rows). */
  delete(taskId: string): void {
    this.accounts.delete(taskId);
  }

  private usage(taskId: string, st: CutState): Stmt {
    return {
      text: SQL.setUsage,
      values: [taskId, st.headBytes + st.tailBytes, outputCut(keptOutput(st, 0)) ? 1 : 0, JSON.stringify(st)],
    };
  }
}
