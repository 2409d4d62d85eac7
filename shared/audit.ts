/**
 * The audit log: an append-only JSON-lines file of every submission, placement, cancel, drain,
 * token change and denial — who, what, where, when, outcome. One line per record:
 * `{"ts": ms epoch, "who": identity or client id, "action", "outcome", …details}`.
 *
 * A full or read-only disk never takes the process down (a failed login writes a line, and Node
 * ends a process on a WriteStream's unhandled 'error'): lines that cannot be written wait in a
 * bounded ring (oldest dropped first, counted) and are written once space returns; the failure is
 * reported at most once a minute.
 */
import { close as closeFd, open, write } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirSync } from './make-dir.js';

export type AuditAction =
  | 'submit'
  | 'placement'
  | 'cancel'
  | 'finish'
  | 'drain'
  | 'resume'
  | 'forget'
  | 'token.create'
  | 'token.revoke'
  | 'connect.refused'
  | 'publish.denied'
  | 'subscribe.denied'
  | 'rate.limited'
  | 'file.put'
  | 'file.get'
  | 'image.push'
  | 'volume.create'
  | 'volume.rm'
  | 'port.forward'
  | 'mcp.call'
  | 'wake'
  /** A lending policy change sent to a node by the server (Home Assistant's lending switch or mode select; issue 17). */
  | 'lending.set';

export interface AuditRecord {
  who: string;
  action: AuditAction;
  /** ok, denied, failed, or the task's final state. */
  outcome: string;
  taskId?: string;
  node?: string;
  topic?: string;
  detail?: string;
}

/** Lines kept while the file cannot be written; older ones are dropped (and counted). */
export const AUDIT_RING_LINES = 10_000;
/** Bytes kept while the file cannot be written. */
export const AUDIT_RING_BYTES = 4 * 1024 * 1024;
/** How often a failed write is retried, ms. */
const AUDIT_RETRY_MS = 2_000;
/** At most one warning per this interval about failing writes, ms. */
const AUDIT_WARN_MS = 60_000;
/**
 * The file stays open while records keep coming and is closed after this long without one, ms: a
 * busy server does not open and close it for every record (that cost a few % of its CPU under a
 * stream of requests), and a log moved away by logrotate is let go of within a second.
 */
export const AUDIT_IDLE_CLOSE_MS = 1_000;

/** Where the audit log says that it cannot write (default: nowhere; the server passes its logger's warn). */
export type AuditWarn = (fields: { err: unknown; path: string; waiting: number; dropped: number }, msg: string) => void;

export class AuditLog {
  /** Lines not written yet, oldest first. */
  private pending: string[] = [];
  private pendingBytes = 0;
  /** Lines dropped because the ring was full since the last warning. */
  private dropped = 0;
  private writing?: Promise<void>;
  private retry?: NodeJS.Timeout;
  private failingSince: number | null = null;
  private warnedAt = 0;
  private closed = false;
  /** The open file while records keep coming, else null. */
  private fd: number | null = null;
  private idle?: NodeJS.Timeout;

  /**
   * Opens `path` for appending (mode 0600), creating its directory (a failure to create it is
   * reported like a failed write, never thrown).
   * @param warn told (rate-limited) when lines cannot be written and when they can again.
   */
  constructor(
    readonly path: string,
    private readonly warn: AuditWarn = () => undefined,
  ) {
    try {
      makeDirSync(dirname(path), 0o700);
    } catch (err) {
      this.failed(err);
    }
  }

  /** Whether lines wait because the file cannot be written now. */
  get failing(): boolean {
    return this.failingSince !== null;
  }

  /** Appends one record (buffered; written in order; kept in a bounded ring while the disk refuses). */
  record(r: AuditRecord, now = Date.now()): void {
    const line = `${JSON.stringify({ ts: now, ...r })}\n`;
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.trim();
    if (!this.failing) void this.flush();
  }

  /** Writes what waits (one write at a time, in order). */
  private flush(): Promise<void> {
    if (this.writing || this.pending.length === 0) return this.writing ?? Promise.resolve();
    const lines = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.writing = new Promise<void>((resolve) =>
      this.append(Buffer.from(lines.join('')), (err) => {
        this.writing = undefined;
        if (err) {
          // Back in front of what came meanwhile, within the ring's bounds.
          this.pending = [...lines, ...this.pending];
          this.pendingBytes = this.pending.reduce((n, l) => n + l.length, 0);
          this.trim();
          this.failed(err);
        } else {
          if (this.failingSince !== null) {
            this.warn(
              { err: null, path: this.path, waiting: this.pending.length, dropped: this.dropped },
              `audit log writable again after ${Math.round((Date.now() - this.failingSince) / 1000)} s`,
            );
            this.failingSince = null;
            this.dropped = 0;
          }
          if (this.pending.length > 0) void this.flush();
          else this.idleClose();
        }
        resolve();
      }),
    );
    return this.writing;
  }

  /** Appends all of `data` to the file, opening it (mode 0600) when not open; a failure closes it. */
  private append(data: Buffer, done: (err: NodeJS.ErrnoException | null) => void): void {
    const fail = (err: NodeJS.ErrnoException) => {
      this.release();
      done(err);
    };
    const writeFrom = (fd: number, offset: number): void =>
      write(fd, data, offset, data.length - offset, null, (err, n) => {
        if (err) return fail(err);
        if (offset + n < data.length) return writeFrom(fd, offset + n);
        done(null);
      });
    if (this.fd !== null) {
      writeFrom(this.fd, 0);
      return;
    }
    open(this.path, 'a', 0o600, (err, fd) => {
      if (err) return done(err);
      this.fd = fd;
      writeFrom(fd, 0);
    });
  }

  /** Closes the file after AUDIT_IDLE_CLOSE_MS without a record. */
  private idleClose(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (!this.writing) this.release();
    }, AUDIT_IDLE_CLOSE_MS);
    this.idle.unref();
  }

  /** Closes the file now (the next write opens it again). */
  private release(): void {
    clearTimeout(this.idle);
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeFd(fd, () => undefined);
  }

  /** Drops the oldest lines beyond the ring's bounds. */
  private trim(): void {
    while (this.pending.length > AUDIT_RING_LINES || (this.pendingBytes > AUDIT_RING_BYTES && this.pending.length > 1)) {
      this.pendingBytes -= this.pending.shift()!.length;
      this.dropped++;
    }
  }

  /** A write failed: keep the lines, warn (rate-limited), retry later. */
  private failed(err: unknown): void {
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.warnedAt >= AUDIT_WARN_MS) {
      this.warnedAt = now;
      this.warn(
        { err, path: this.path, waiting: this.pending.length, dropped: this.dropped },
        'cannot write the audit log: lines wait in memory (oldest dropped past the limit) until it can be written',
      );
    }
    if (!this.closed && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.flush();
      }, AUDIT_RETRY_MS);
      this.retry.unref();
    }
  }

  /** Tries once more to write what waits, then stops retrying. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    await this.flush();
    this.release();
  }
}
