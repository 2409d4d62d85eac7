/**
 * `mkdir -p` that always ends. Node's own recursive mkdir (`mkdirSync(p, { recursive: true })`, Node
 * 20 here) never returns for a path whose parent exists but cannot hold children, such as
 * `/proc/nope`: it steps back on ENOENT and forward on EEXIST without end (the same walk bun fixed
 * in oven-sh/bun#40600). A user's `--data-dir /proc/…` then hung the server without a word. This
 * walk finds the nearest existing ancestor first, then creates each missing directory once, so the
 * failing mkdir's own error (ENOENT, EACCES, EROFS, ENOSPC…) is thrown.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** The directories of `path` that do not exist yet, outermost first. @throws ENOTDIR when an existing ancestor is no directory. */
function missingDirs(path: string, isDir: (p: string) => boolean | null): string[] {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    const dir = isDir(p);
    if (dir === true) break;
    if (dir === false) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', path: p });
    missing.unshift(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  return missing;
}

/** null when nothing is at `p`; other stat errors (EACCES…) are thrown. */
function statDir(p: string): boolean | null {
  try {
    return statSync(p).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Creates `path` and its missing parents (each with `mode`, as `mkdir -p -m`); an existing
 * directory is fine. @throws the failing mkdir's error (ENOENT under /proc, EACCES, EROFS, ENOSPC)
 * or ENOTDIR when a component is a file.
 */
export function makeDirSync(path: string, mode?: number): void {
  for (const dir of missingDirs(path, statDir)) {
    try {
      mkdirSync(dir, mode === undefined ? undefined : { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** The same as makeDirSync, without blocking the event loop on the mkdirs themselves. */
export async function makeDir(path: string, mode?: number): Promise<void> {
  // The stats are cheap and few (the path's depth); the creates are awaited one by one.
  const todo = missingDirs(path, statDir);
  for (const dir of todo) {
    try {
      await mkdir(dir, mode === undefined ? undefined : { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
