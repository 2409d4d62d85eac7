/**
 * Confines file transfer paths to a node's allowed directories (`--files-allow`), minus its
 * denied ones (`--files-deny`; deny wins). Symlinks are resolved with realpath before the check,
 * so a link inside an allowed directory that points outside it is refused; a path containing a
 * `..` component is refused outright.
 */
import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { CutterError } from '../../shared/errors.js';

/** Why a path is refused: thrown with code POLICY_DENIED (`message` says which rule). */
export class PathDenied extends CutterError {
  constructor(message: string) {
    super('POLICY_DENIED', message);
  }
}

/** A directory given by the node's owner, resolved once at start (realpath when it exists). */
function canonical(dir: string): string {
  const abs = resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** The allow/deny rules of one node. */
export class PathPolicy {
  readonly allow: string[];
  readonly deny: string[];

  constructor(allow: string[], deny: string[]) {
    this.allow = allow.map(canonical);
    this.deny = deny.map(canonical);
  }

  get enabled(): boolean {
    return this.allow.length > 0;
  }

  /** Absolute, `..`-free form of a requested path (relative = under the first allowed directory). @throws PathDenied */
  private absolute(requested: string): string {
    if (!this.enabled)
      throw new CutterError('EXECUTOR_DISABLED', 'file transfer is off on this node (start its agent with --files-allow DIR)');
    if (requested.split(/[\\/]/).includes('..'))
      throw new PathDenied(`path "${requested}" contains "..": give a path inside an allowed directory`);
    return isAbsolute(requested) ? resolve(requested) : resolve(this.allow[0], requested);
  }

  /** @throws PathDenied unless `real` (already resolved) is in an allowed directory and in no denied one. */
  private check(real: string, requested: string): string {
    const denied = this.deny.find((d) => inside(real, d));
    if (denied) throw new PathDenied(`path "${requested}" (${real}) is in the denied directory ${denied}`);
    if (!this.allow.some((a) => inside(real, a)))
      throw new PathDenied(`path "${requested}" (${real}) is outside the allowed directories (${this.allow.join(', ')})`);
    return real;
  }

  /**
   * Resolves a file to read: every symlink followed, the result checked.
   * @throws PathDenied, or CutterError NOT_FOUND when it does not exist.
   */
  async forRead(requested: string): Promise<string> {
    const abs = this.absolute(requested);
    let real: string;
    try {
      real = await realpath(abs);
    } catch {
      throw new CutterError('NOT_FOUND', `no such file on this node: ${requested}`);
    }
    return this.check(real, requested);
  }

  /**
   * Resolves a file to write: its directory must exist and resolve (symlinks followed) inside an
   * allowed directory; when the file itself exists, its resolved target must be allowed too.
   * @returns the destination path (in the resolved directory).
   * @throws PathDenied, or CutterError NOT_FOUND when the directory does not exist.
   */
  async forWrite(requested: string): Promise<string> {
    const abs = this.absolute(requested);
    if (abs.endsWith(sep) || basename(abs) === '') throw new PathDenied(`path "${requested}" names a directory: give a file name`);
    let dir: string;
    try {
      dir = await realpath(dirname(abs));
    } catch {
      throw new CutterError('NOT_FOUND', `directory ${dirname(requested)} does not exist on this node`);
    }
    const dest = join(dir, basename(abs));
    this.check(dir, requested);
    try {
      this.check(await realpath(dest), requested);
    } catch (err) {
      if (err instanceof PathDenied) throw err;
      // Does not exist yet, or a dangling link: the rename onto it replaces the link itself.
    }
    return this.check(dest, requested);
  }
}
