/**
 * Where the CLI finds the admin token a server on this machine wrote (`<data dir>/admin.json`,
 * mode 0600, on its first start), in this order:
 * 1. `$CUTTER_DATA_DIR/admin.json` (the same variable `cutter server` reads its data dir from);
 * 2. the default data dir's `admin.json` (`$XDG_DATA_HOME/cutter`, `~/.local/share/cutter`);
 * 3. the data dir named by the hint file `<default data dir>/server-data-dir`, which `cutter
 *    server --data-dir DIR` writes when DIR is not the default (and removes when it stops). The
 *    hint also names the ports that server listens on, and its token is used only for a broker URL
 *    on this machine (a loopback host) with one of those ports: the admin password of the server
 *    started last is never sent to another broker.
 * When none exists, the CLI's refusal says each path it looked at.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultDataDir } from './common.js';
import { makeDirSync } from '../make-dir.js';

/** Name of the hint file in the default data dir. */
export const DATA_DIR_HINT = 'server-data-dir';

/** The path of the hint file for this user. */
export function dataDirHintPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultDataDir(env), DATA_DIR_HINT);
}

/** Whether `broker` (a URL, or a comma-separated list of them) names a loopback host with one of `ports`. */
function onThisServer(broker: string, ports: number[]): boolean {
  return broker.split(',').some((u) => {
    try {
      const url = new URL(u.trim());
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
      const port = Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883));
      return loopback && ports.includes(port);
    } catch {
      return false;
    }
  });
}

/**
 * Every place looked at, in order, with the one found (undefined when none exists).
 * @param broker the broker URL(s) the CLI will connect to: a hinted server's token is taken only
 *   for that server (see the module comment); without it, for any.
 */
export function findAdminToken(env: NodeJS.ProcessEnv = process.env, broker?: string): { file?: string; looked: string[] } {
  const looked: string[] = [];
  const candidates: string[] = [];
  if (env.CUTTER_DATA_DIR) candidates.push(join(env.CUTTER_DATA_DIR, 'admin.json'));
  candidates.push(join(defaultDataDir(env), 'admin.json'));
  for (const file of candidates) {
    looked.push(file);
    if (existsSync(file)) return { file, looked };
  }
  const hint = dataDirHintPath(env);
  let lines: string[] = [];
  try {
    lines = readFileSync(hint, 'utf8').split('\n', 2);
  } catch {
    // no server with --data-dir wrote one
  }
  const named = lines[0]?.trim() || undefined;
  if (named) {
    const file = join(named, 'admin.json');
    const ports = (lines[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
    // A hint names its server's ports; one that names none is not trusted for any broker.
    if (ports.length === 0 || (broker && !onThisServer(broker, ports))) {
      looked.push(
        `${file} (named by ${hint}, for the server on port ${ports.join(', ') || '(none named)'} of this machine, not ${broker})`,
      );
      return { looked };
    }
    looked.push(`${file} (named by ${hint})`);
    if (existsSync(file)) return { file, looked };
  } else looked.push(`${hint} (absent: no cutter server --data-dir running)`);
  return { looked };
}

/**
 * Writes the hint file naming `dataDir` and the ports the server listens on (see the module
 * comment); a no-op for the default data dir.
 * @returns the hint's path when written. Errors are the caller's to log (the server runs without the hint).
 */
export function writeDataDirHint(dataDir: string, ports: number[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (resolve(dataDir) === resolve(defaultDataDir(env))) return undefined;
  const path = dataDirHintPath(env);
  makeDirSync(defaultDataDir(env), 0o700);
  writeFileSync(path, `${resolve(dataDir)}\n${ports.join(' ')}\n`, { mode: 0o600 });
  return path;
}

/** Removes the hint file if it still names `dataDir` (another server may have written it since). */
export function removeDataDirHint(dataDir: string, env: NodeJS.ProcessEnv = process.env): void {
  const path = dataDirHintPath(env);
  try {
    if (readFileSync(path, 'utf8').split('\n', 1)[0].trim() === resolve(dataDir)) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}
