/**
 * A throwaway PostgreSQL cluster (Debian's `postgresql` package) for the tests and the bench of the
 * PostgreSQL state store: `initdb` into a temporary directory, `pg_ctl start` on a loopback port
 * with its unix socket in that directory, then stop and remove. PostgreSQL refuses to run as root
 * (postgres(1): "root execution of the PostgreSQL server is not permitted"), so as root the
 * directory is handed to the `postgres` user and every command runs through `runuser -u postgres`.
 *
 * The binaries are looked up on the PATH, then under /usr/lib/postgresql/<version>/bin (Debian
 * keeps them off the PATH, see postgresql-common's pg_wrapper).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

/** The directory holding initdb and pg_ctl, or null when PostgreSQL is not installed. */
export function postgresBinDir(): string | null {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // not Debian's layout
  }
  for (const dir of dirs) {
    try {
      // The installed directory, not a link farm on the PATH: as root the binaries run as the
      // postgres user, who may not be allowed into the directory holding the links.
      const real = dirname(realpathSync(join(dir, 'initdb')));
      accessSync(join(real, 'initdb'), constants.X_OK);
      accessSync(join(real, 'pg_ctl'), constants.X_OK);
      return real;
    } catch {
      // not here
    }
  }
  return null;
}

export interface RunningPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication on loopback). */
  url: string;
  port: number;
  dir: string;
  /** Stops the cluster (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts a fresh cluster and waits until it accepts connections.
 * @throws Error with initdb's or pg_ctl's output when PostgreSQL is missing or does not start.
 */
export async function startPostgres(): Promise<RunningPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed (no initdb/pg_ctl): apt-get install -y postgresql');
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'cutter-pg-'));
  chmodSync(dir, 0o700);
  if (root) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (ids.status !== 0) throw new Error('running as root and there is no `postgres` user to run PostgreSQL as');
    chownSync(dir, Number(ids.stdout.trim()), Number(gid.stdout.trim()));
  }
  const run = (cmd: string, args: string[]) => {
    const argv = root ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(argv[0] as string, argv[1] as string[], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const data = join(dir, 'data');
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    "-c listen_addresses='127.0.0.1'",
    `-c unix_socket_directories='${dir}'`,
    '-c fsync=off',
    '-c max_connections=100',
    '-c shared_buffers=32MB',
  ].join(' ');
  run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-o', options, '-w', '-t', '60', 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    port,
    dir,
    createDatabase: async (name: string) => {
      // Loaded here: test/services.ts (read by vitest.config.ts) imports this file for its probe.
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
