/**
 * Leadership among servers sharing one PostgreSQL: a lease row (`cutter_leader`, one row) in the
 * style of Patroni's leader key. The leader renews `expires_at` every `renewMs`; a standby takes
 * over when the lease has run out, or at once when the leader's own database session is gone (its
 * process died: PostgreSQL ends the backend when the socket closes, and `pg_stat_activity` no
 * longer lists `holder_pid`). Each takeover adds one to `term`; the state store checks that term
 * in every write transaction (controller/pg-state-store.ts), so a deposed leader writes nothing.
 *
 * A leader that cannot renew gives up on its own: when `leaseMs - LEASE_MARGIN_MS` have passed
 * since the last renewal it sent and saw succeed (measured on the monotonic clock, from the moment
 * it was sent, so never later than the database's own expiry), `onLost` is called and the server
 * stops assigning; a renewal that finds another term calls it at once. Times use the database's
 * clock (`now()`) for the row, the process's monotonic clock for its own deadline.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { closePg, connectPg, ensureSchema } from './pg-schema.js';

/** Default lease, ms: a leader that cannot renew stops assigning within it. */
export const DEFAULT_LEASE_MS = 3_000;
/** Default renewal period, ms. */
export const DEFAULT_RENEW_MS = 1_000;
/** A leader gives up this long before its lease runs out, ms (time for the in-flight work to see it). */
export const LEASE_MARGIN_MS = 500;

/** Who leads now, as the lease row says. */
export interface LeaderInfo {
  term: number;
  holder: string | null;
  /** Where the leader serves HTTP (`http://host:port`), when it said. */
  address: string | null;
  /** Whether its lease is still running. */
  live: boolean;
}

export interface LeaseOptions {
  url: string;
  /** This server's name in the row (unique per process). */
  holder: string;
  /** This server's HTTP address, for standbys to point clients at. */
  address?: string;
  leaseMs?: number;
  renewMs?: number;
  log?: Logger;
}

export class LeaderLease {
  /** The term held, or null while standing by. */
  term: number | null = null;
  private client?: pg.Client;
  private renewTimer?: NodeJS.Timeout;
  private watchTimer?: NodeJS.Timeout;
  /** Monotonic time the last successful renewal was sent, ms. */
  private renewedAt = 0;
  private renewing = false;
  private onLost?: (why: string) => void;
  private stopped = false;
  readonly leaseMs: number;
  readonly renewMs: number;

  constructor(private readonly opts: LeaseOptions) {
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.renewMs = opts.renewMs ?? DEFAULT_RENEW_MS;
  }

  private async connection(): Promise<pg.Client> {
    if (!this.client) {
      this.client = await connectPg(this.opts.url, Math.max(500, this.renewMs), 'cutter-lease');
      await ensureSchema(this.client);
    }
    return this.client;
  }

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = await this.connection();
    try {
      return await client.query<R>(text, values);
    } catch (err) {
      this.client = undefined;
      void closePg(client);
      throw err;
    }
  }

  /** Who leads now; null when the database does not answer. */
  async leader(): Promise<LeaderInfo | null> {
    try {
      const r = await this.query<{ term: string; holder: string | null; address: string | null; live: boolean }>(
        'SELECT term, holder, address, expires_at > now() AS live FROM cutter_leader WHERE id = 1',
      );
      const row = r.rows[0];
      return row ? { term: Number(row.term), holder: row.holder, address: row.address, live: row.live } : null;
    } catch {
      return null;
    }
  }

  /** One try at the leadership. @returns the new term, or null when another server holds a live lease. */
  async tryAcquire(): Promise<number | null> {
    const sentAt = performance.now();
    const r = await this.query<{ term: string }>(
      `UPDATE cutter_leader SET term = term + 1, holder = $1, address = $2, holder_pid = pg_backend_pid(),
         expires_at = now() + make_interval(secs => $3::double precision / 1000)
       WHERE id = 1 AND (expires_at < now() OR holder_pid IS NULL
         OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = cutter_leader.holder_pid))
       RETURNING term`,
      [this.opts.holder, this.opts.address ?? null, this.leaseMs],
    );
    if (r.rowCount !== 1) return null;
    this.renewedAt = sentAt;
    this.term = Number(r.rows[0]!.term);
    return this.term;
  }

  /**
   * Stands by until this server leads, trying every quarter of `renewMs`.
   * @returns the term won; null when `stop()` was called first.
   */
  async acquire(): Promise<number | null> {
    let warned = false;
    while (!this.stopped) {
      try {
        const term = await this.tryAcquire();
        if (term !== null) return term;
      } catch (err) {
        if (!warned) this.opts.log?.warn({ err }, 'state database not reachable: standing by until it is');
        warned = true;
      }
      await new Promise((r) => setTimeout(r, Math.max(50, this.renewMs / 4)));
    }
    return null;
  }

  /** Renews every `renewMs`; calls `onLost` once, when the lease ends or another term is found. */
  hold(onLost: (why: string) => void): void {
    this.onLost = onLost;
    this.renewTimer = setInterval(() => void this.renew(), this.renewMs);
    this.watchTimer = setInterval(() => {
      const since = performance.now() - this.renewedAt;
      if (since > this.leaseMs - LEASE_MARGIN_MS) this.lost(`lease not renewed for ${Math.round(since)} ms`);
    }, 100);
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.term === null) return;
    this.renewing = true;
    const sentAt = performance.now();
    try {
      const r = await this.query(
        `UPDATE cutter_leader SET expires_at = now() + make_interval(secs => $3::double precision / 1000), holder_pid = pg_backend_pid()
         WHERE id = 1 AND term = $1 AND holder = $2 RETURNING term`,
        [this.term, this.opts.holder, this.leaseMs],
      );
      if (r.rowCount === 1) this.renewedAt = sentAt;
      else this.lost('another server took the leadership');
    } catch (err) {
      this.opts.log?.warn({ err }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
  }

  private lost(why: string): void {
    if (this.term === null) return;
    this.opts.log?.error({ term: this.term, why }, `leadership lost: ${why}`);
    this.term = null;
    clearInterval(this.renewTimer);
    clearInterval(this.watchTimer);
    const fn = this.onLost;
    this.onLost = undefined;
    fn?.(why);
  }

  /**
   * Stops standing by or renewing. A leader that still holds its term ends the lease at once so a
   * standby takes over without waiting for it to run out.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.renewTimer);
    clearInterval(this.watchTimer);
    const term = this.term;
    this.term = null;
    this.onLost = undefined;
    if (term !== null)
      await this.query("UPDATE cutter_leader SET expires_at = 'epoch' WHERE id = 1 AND term = $1", [term]).catch(() => undefined);
    await closePg(this.client);
    this.client = undefined;
  }
}
