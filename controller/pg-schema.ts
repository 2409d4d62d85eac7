/**
 * The PostgreSQL side of the state store: connecting (node-postgres 8, `pg`), the schema, and
 * how a PostgreSQL error is classified. The tables are the SQLite store's (controller/state-store.ts,
 * controller/log-keeper.ts) with PostgreSQL types, plus `cutter_leader`, the one-row lease every
 * server competes for (controller/leader-lease.ts): `term` grows by one at each takeover, and every
 * state write checks it in its own transaction (fencing).
 *
 * Error classes are PostgreSQL's SQLSTATE codes (PostgreSQL 15 docs, Appendix A "PostgreSQL Error
 * Codes"): class 08 connection exception, 53 insufficient resources, 57 operator intervention
 * (57P01 admin_shutdown, what pg_terminate_backend sends), 58 system error.
 */
import pg from 'pg';

/** How long one query may take before the connection counts as lost, ms (a cut network hangs, it does not fail). */
export const PG_QUERY_TIMEOUT_MS = 5_000;

/** A state URL names PostgreSQL (`postgres://` or `postgresql://`). */
export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:\/\//.test(url);
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/**
 * Opens one connection (a `pg.Client`; the store and the lease each hold their own, so a slow
 * batch never delays a lease renewal).
 * @param timeoutMs per query and for the connect itself, ms.
 * @throws pg's or the socket's error when PostgreSQL cannot be reached or refuses the login.
 */
export async function connectPg(url: string, timeoutMs = PG_QUERY_TIMEOUT_MS, applicationName = 'cutter'): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    query_timeout: timeoutMs,
    connectionTimeoutMillis: timeoutMs,
    keepAlive: true,
    application_name: applicationName,
  });
  // An idle connection that breaks emits 'error'; the next query on it fails and the owner reconnects.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Closes a connection without waiting long or throwing (it may be broken already). */
export async function closePg(client: pg.Client | undefined): Promise<void> {
  if (!client) return;
  await Promise.race([client.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
}

/**
 * Creates the tables when missing, under a transaction-scoped advisory lock so that servers
 * starting together do not race on CREATE TABLE. Idempotent.
 */
export async function ensureSchema(client: pg.Client): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('cutter-schema'))");
    await client.query(`
      CREATE TABLE IF NOT EXISTS tasks (
        task_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        terminal INTEGER NOT NULL,
        finished_at BIGINT
      );
      CREATE TABLE IF NOT EXISTS events (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (task_id, attempt, seq)
      );
      CREATE TABLE IF NOT EXISTS drained_nodes (node TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS log_usage (
        task_id TEXT PRIMARY KEY,
        bytes BIGINT NOT NULL,
        truncated INTEGER NOT NULL,
        cut TEXT
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
      CREATE TABLE IF NOT EXISTS cutter_leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        term BIGINT NOT NULL,
        holder TEXT,
        holder_pid INTEGER,
        address TEXT,
        expires_at TIMESTAMPTZ NOT NULL
      );
      INSERT INTO cutter_leader (id, term, expires_at) VALUES (1, 0, 'epoch') ON CONFLICT DO NOTHING;
    `);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** A write refused because another server took the leadership (its term is newer than the writer's). */
export class FencedError extends Error {
  constructor(
    readonly term: number,
    readonly current: number,
  ) {
    super(`state write refused: this server's leadership (term ${term}) ended, term ${current} leads now`);
    this.name = 'FencedError';
  }
}

/**
 * Whether an error means the database cannot be reached or written now (retry later), as opposed
 * to a bug (a malformed statement, a constraint): SQLSTATE classes 08, 53, 57, 58, and the
 * socket's and node-postgres' own connection errors (which carry no SQLSTATE).
 */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof FencedError) return false;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return /^(08|53|57|58)/.test(code);
  return true;
}
