/**
 * Where the CLI finds the admin token a server on this machine wrote (`<data dir>/admin.json`,
 * mode 0600, on its first start), in this order:
 * 1. `$CUTTER_DATA_DIR/admin.json` (the same variable `cutter server` reads its data dir from);
 * 2. the data dir named by the hint of the server on the broker URL's port: `cutter server
 *    --data-dir DIR` (DIR not the default) writes `<default data dir>/servers/port-N` holding DIR
 *    for each port N it listens on, and removes them when it stops. Hints are looked up only for a
 *    broker URL on this machine (a loopback host), by its port, so the admin password of one
 *    server is never sent to another broker, and servers started side by side (tests, a staging
 *    server beside the real one) each keep their own hint. A hint says which server holds that
 *    port, so it decides: its data dir's `admin.json`, or no token when that dir has none (an
 *    `--insecure` server), never another server's;
 * 3. the default data dir's `admin.json` (`$XDG_DATA_HOME/cutter`, `~/.local/share/cutter`). A
 *    server on the default data dir removes the hints of its ports when it starts: they name a
 *    server that held the port before and did not stop cleanly.
 * When none exists, the CLI's refusal says each path it looked at.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultDataDir } from './common.js';
import { brokerPort, brokerUrls } from '../broker-urls.js';
import { makeDirSync } from '../make-dir.js';

/** Name of the hint directory in the default data dir. */
export const DATA_DIR_HINTS = 'servers';

/** The directory of this user's hints (one file per server port). */
export function dataDirHintDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultDataDir(env), DATA_DIR_HINTS);
}

/** The hint file of the server listening on `port` of this machine. */
export function dataDirHintPath(port: number, env: NodeJS.ProcessEnv = process.env): string {
  return join(dataDirHintDir(env), `port-${port}`);
}

/** The ports of the loopback URLs among `broker` (a URL, or a comma-separated list of them), in order. */
function loopbackPorts(broker: string): number[] {
  const ports: number[] = [];
  for (const u of brokerUrls(broker)) {
    try {
      const url = new URL(u);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      if (host === 'localhost' || host === '::1' || /^127\./.test(host)) ports.push(brokerPort(url));
    } catch {
      // not a URL: no hint for it
    }
  }
  return ports;
}

/** The data dir a hint file names, or undefined when it is absent or empty. */
function hintedDir(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').split('\n', 1)[0].trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every place looked at, in order, with the one found (undefined when none exists).
 * @param broker the broker URL(s) the CLI will connect to (default `mqtt://localhost:1883`): a
 *   hint is looked up by the port of each loopback URL among them (see the module comment).
 */
export function findAdminToken(
  env: NodeJS.ProcessEnv = process.env,
  broker = 'mqtt://localhost:1883',
): { file?: string; looked: string[] } {
  const looked: string[] = [];
  if (env.CUTTER_DATA_DIR) {
    const file = join(env.CUTTER_DATA_DIR, 'admin.json');
    looked.push(file);
    if (existsSync(file)) return { file, looked };
  }
  const ports = loopbackPorts(broker);
  if (ports.length === 0) looked.push(`${dataDirHintDir(env)} (its hints are for servers on this machine; ${broker} is not on it)`);
  for (const port of ports) {
    const hint = dataDirHintPath(port, env);
    const named = hintedDir(hint);
    if (!named) {
      looked.push(`${hint} (absent: no cutter server --data-dir on port ${port})`);
      continue;
    }
    const file = join(named, 'admin.json');
    if (existsSync(file)) {
      looked.push(`${file} (named by ${hint})`);
      return { file, looked };
    }
    // The server on that port keeps no admin token (--insecure): none, not another server's.
    looked.push(`${file} (named by ${hint}; absent: the server on port ${port} keeps no admin token)`);
    return { looked };
  }
  const file = join(defaultDataDir(env), 'admin.json');
  looked.push(file);
  return existsSync(file) ? { file, looked } : { looked };
}

/**
 * Writes the hints naming `dataDir`, one per port the server listens on (see the module comment).
 * For the default data dir it writes none and removes those of its ports: they are stale.
 * @returns the hint directory when written. Errors are the caller's to log (the server runs without hints).
 */
export function writeDataDirHint(dataDir: string, ports: number[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (resolve(dataDir) === resolve(defaultDataDir(env))) {
    for (const port of ports) rmSync(dataDirHintPath(port, env), { force: true });
    return undefined;
  }
  if (ports.length === 0) return undefined;
  makeDirSync(dataDirHintDir(env), 0o700);
  for (const port of ports) writeFileSync(dataDirHintPath(port, env), `${resolve(dataDir)}\n`, { mode: 0o600 });
  return dataDirHintDir(env);
}

/** Removes the hints that still name `dataDir` (another server may have taken a port since). */
export function removeDataDirHint(dataDir: string, env: NodeJS.ProcessEnv = process.env): void {
  let names: string[] = [];
  try {
    names = readdirSync(dataDirHintDir(env)).filter((n) => n.startsWith('port-'));
  } catch {
    return; // no hints
  }
  for (const name of names) {
    const path = join(dataDirHintDir(env), name);
    try {
      if (hintedDir(path) === resolve(dataDir)) rmSync(path, { force: true });
    } catch {
      // not ours to remove (permissions): the next server on that port overwrites it
    }
  }
}
