/**
 * Whether the controller's data dir can take writes now. `ok`, or `degraded` with why: a storage
 * error of SQLite or the file system (the disk is full, read-only, over quota or failing), or free
 * space below `minFreeBytes` (checked with statfs every STATFS_MS, so the WAL can still be
 * checkpointed before the disk is full to the last byte: a checkpoint needs room in the main file).
 *
 * While degraded the controller keeps answering reads and refuses new work (STORAGE_UNAVAILABLE,
 * see `refusal()`); what was not committed waits in the StateStore and is retried.
 *
 * Error codes: better-sqlite3 sets `code` to SQLite's extended result code name (SQLITE_FULL,
 * SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED …); Node's fs sets errno names (ENOSPC, EROFS,
 * EDQUOT, EIO).
 */
import { statfsSync } from 'node:fs';
import { CutterError } from '../shared/errors.js';
import { formatBytes } from '../shared/units.js';

/** Default free space below which the data dir counts as full, bytes. */
export const DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024;
/** How often free space is checked, ms. */
export const STATFS_MS = 5_000;

/** Storage is fine, or degraded since `since` (ms epoch) for `code` (`LOW_SPACE` for the statfs check). */
export type StorageState =
  | { state: 'ok' }
  | { state: 'degraded'; code: string; path: string; freeBytes: number | null; since: number; message: string };

const FS_CODES = ['ENOSPC', 'EROFS', 'EDQUOT', 'EIO'];

/** The storage code of an error (SQLite or fs), or null when it is not a storage error (a bug). */
export function storageCode(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (
    code === 'SQLITE_FULL' ||
    code === 'SQLITE_CANTOPEN' ||
    code.startsWith('SQLITE_IOERR') ||
    code.startsWith('SQLITE_READONLY') ||
    FS_CODES.includes(code)
  )
    return code;
  return null;
}

/** Free bytes for unprivileged users on the file system of `path`, or null when statfs fails. */
export function freeBytes(path: string): number | null {
  try {
    const s = statfsSync(path);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/** Tracks whether the data dir takes writes; see the file comment. */
export class StorageGuard {
  private current: StorageState = { state: 'ok' };
  /** The code of the last storage error, until a commit succeeds. */
  private errorCode: string | null = null;
  private timer?: NodeJS.Timeout;

  /**
   * @param path the data dir.
   * @param minFreeBytes below this much free space the dir counts as full (0 = no check).
   * @param onChange told when the state changes (for logs).
   * @param statfs free bytes of `path` (tests inject it).
   */
  constructor(
    readonly path: string,
    readonly minFreeBytes = DEFAULT_MIN_FREE_BYTES,
    private readonly onChange: (s: StorageState, previous: StorageState) => void = () => undefined,
    private readonly statfs: (path: string) => number | null = freeBytes,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): StorageState {
    return this.current;
  }

  get ok(): boolean {
    return this.current.state === 'ok';
  }

  /** Checks free space now and every STATFS_MS (unref'd). */
  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), STATFS_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A write failed. @returns whether it was a storage error (else a bug: the caller logs it as one). */
  failed(err: unknown): boolean {
    const code = storageCode(err);
    if (!code) return false;
    this.errorCode = code;
    this.set(code);
    return true;
  }

  /** A commit succeeded: the error is over; ok again unless free space is still low. */
  committed(): void {
    if (this.errorCode === null && this.current.state === 'ok') return;
    this.errorCode = null;
    this.check();
  }

  /** Re-evaluates the state from the last error and free space now. */
  check(): void {
    const free = this.minFreeBytes > 0 || this.errorCode ? this.statfs(this.path) : null;
    if (this.errorCode) this.set(this.errorCode, free);
    else if (free !== null && free < this.minFreeBytes) this.set('LOW_SPACE', free);
    else if (this.current.state !== 'ok') {
      const previous = this.current;
      this.current = { state: 'ok' };
      this.onChange(this.current, previous);
    }
  }

  /** The error a write request gets while degraded. @throws nothing; returns null when ok. */
  refusal(): CutterError | null {
    const s = this.current;
    if (s.state === 'ok') return null;
    return new CutterError('STORAGE_UNAVAILABLE', s.message);
  }

  private set(code: string, free = this.statfs(this.path)): void {
    const previous = this.current;
    const since = previous.state === 'degraded' ? previous.since : this.now();
    const what =
      code === 'LOW_SPACE'
        ? `is almost full (${formatBytes(free ?? 0)} free, below the ${formatBytes(this.minFreeBytes)} minimum)`
        : code.startsWith('SQLITE_READONLY') || code === 'EROFS'
          ? `is read-only (${free === null ? 'free space unknown' : `${formatBytes(free)} free`}; ${code})`
          : code.startsWith('SQLITE_IOERR') || code === 'EIO' || code === 'SQLITE_CANTOPEN'
            ? `cannot be written (${free === null ? 'free space unknown' : `${formatBytes(free)} free`}; ${code})`
            : `is full (${formatBytes(free ?? 0)} free; ${code})`;
    const fix = code.startsWith('SQLITE_READONLY') || code === 'EROFS' ? 'make it writable' : 'free space there';
    const message = `data dir ${this.path} ${what}: ${fix}; new work is refused until then`;
    this.current = { state: 'degraded', code, path: this.path, freeBytes: free, since, message };
    if (previous.state !== 'degraded' || previous.code !== code) this.onChange(this.current, previous);
  }
}
