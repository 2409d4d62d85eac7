/**
 * The controller's SQLite database (controller/state-store.ts): opened under the data dir in WAL
 * mode with synchronous=NORMAL, its tables created when missing, and the statements the store runs.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';

/**
 * Opens (creating if needed) `<dataDir>/controller.db` with the tasks, events and drained_nodes
 * tables. The dir must exist.
 * @throws what better-sqlite3 throws when the file cannot be opened or written (SqliteError).
 */
export function openStateDb(dataDir: string): Database.Database {
  const db = new Database(join(dataDir, 'controller.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`
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
    CREATE TABLE IF NOT EXISTS drained_nodes (node TEXT PRIMARY KEY);
  `);
  return db;
}

/** Prepares the store's statements; the log keeper's tables (controller/log-keeper.ts) must exist. */
export function stateStatements(db: Database.Database) {
  return {
    upsert: db.prepare(
      'INSERT INTO tasks (task_id, record, terminal, finished_at) VALUES (?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET record = excluded.record, terminal = excluded.terminal, finished_at = excluded.finished_at',
    ),
    all: db.prepare('SELECT record FROM tasks'),
    deleteTask: db.prepare('DELETE FROM tasks WHERE task_id = ?'),
    deleteEvents: db.prepare('DELETE FROM events WHERE task_id = ?'),
    events: db.prepare(
      `SELECT e.body, t.prefix, t.bytes FROM events e LEFT JOIN log_tail t ON t.task_id = e.task_id AND t.attempt = e.attempt AND t.seq = e.seq
       WHERE e.task_id = ? AND (e.attempt > ? OR (e.attempt = ? AND e.seq > ?)) ORDER BY e.attempt, e.seq`,
    ),
    truncated: db.prepare('SELECT truncated FROM log_usage WHERE task_id = ?'),
    drained: db.prepare('SELECT node FROM drained_nodes'),
    drain: db.prepare('INSERT OR IGNORE INTO drained_nodes (node) VALUES (?)'),
    resume: db.prepare('DELETE FROM drained_nodes WHERE node = ?'),
  };
}

/** The statements of the state store. */
export type StateStatements = ReturnType<typeof stateStatements>;
