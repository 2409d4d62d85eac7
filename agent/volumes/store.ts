/**
 * The node's volumes: one directory per volume under the agent's volumes directory
 * (`--volumes-dir`, default `<data dir>/volumes/<node>`). Every path from the network goes
 * through here: names are checked (shared/volumes.ts), paths inside a volume are normalised
 * (no `..`) and, after symlinks are resolved, must stay inside the volume's directory.
 */
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { lstat, mkdir, readdir, realpath, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { CutterError } from '../../shared/errors.js';
import { MAX_VOLUMES, type ManifestEntry, type VolumeInfo } from '../../shared/schemas/volumes.js';
import type { FileIn, FileOut } from '../../shared/schemas/files.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { PART_SUFFIX } from '../../shared/transfer/part-file.js';
import { normaliseVolumePath, volumeNameProblem } from '../../shared/volumes.js';
import { makeDirSync } from '../../shared/make-dir.js';

/** Most files one volume's manifest lists (a larger tree is refused, not truncated). */
export const MAX_MANIFEST_FILES = 100_000;

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
/** Files of an unfinished transfer, never part of a manifest. */
const isPart = (name: string) => name.endsWith(PART_SUFFIX) || name.endsWith(`${PART_SUFFIX}.json`);

/** The volumes of one node. */
export class VolumeStore {
  private readonly hashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();
  /** The volumes each task attempt here mounts, by `taskId:attempt` (agent/tasks.ts), so `vol.rm` can refuse one in use. */
  private readonly users = new Map<string, string[]>();

  /** @param dir the volumes directory (created on first use, mode 0700). */
  constructor(
    readonly dir: string,
    private readonly node: string,
  ) {}

  /** @throws CutterError INVALID_ARGUMENT for a bad name. */
  private check(name: string): void {
    const problem = volumeNameProblem(name);
    if (problem) throw new CutterError('INVALID_ARGUMENT', problem);
  }

  /** The volumes' names, sorted (at most MAX_VOLUMES); [] when the directory does not exist yet. Synchronous: the heartbeat reads it. */
  names(): string[] {
    // Asked at every beat: without volumes the directory is absent, and readdir's ENOENT costs an
    // exception with a stack each time; a stat that does not throw answers that case.
    if (!statSync(this.dir, { throwIfNoEntry: false })?.isDirectory()) return [];
    try {
      return readdirSync(this.dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && volumeNameProblem(d.name) === null)
        .map((d) => d.name)
        .sort()
        .slice(0, MAX_VOLUMES);
    } catch {
      return [];
    }
  }

  /** The absolute, symlink-free directory of an existing volume, or null. Synchronous: task admission uses it. */
  pathOf(name: string): string | null {
    if (volumeNameProblem(name)) return null;
    try {
      const root = realpathSync(this.dir);
      const real = realpathSync(join(root, name));
      return inside(real, root) && statSync(real).isDirectory() ? real : null;
    } catch {
      return null;
    }
  }

  /** @throws CutterError NOT_FOUND naming the command that creates it. */
  private existing(name: string): string {
    this.check(name);
    const path = this.pathOf(name);
    if (!path)
      throw new CutterError(
        'NOT_FOUND',
        `no volume "${name}" on node ${this.node}: create it with cutter volume create ${this.node}:${name}`,
      );
    return path;
  }

  /** Creates the volume (an existing one is kept as it is). @returns its info. */
  async create(name: string): Promise<VolumeInfo> {
    this.check(name);
    makeDirSync(this.dir, 0o700);
    if (!this.pathOf(name) && this.names().length >= MAX_VOLUMES)
      throw new CutterError('INVALID_ARGUMENT', `node ${this.node} has ${MAX_VOLUMES} volumes, the most it keeps: remove one first`);
    await mkdir(join(this.dir, name), { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    return this.info(name);
  }

  /** Other nodes' agents allowed to read a directory of a volume (`vol.grant`), until `until` (ms epoch). */
  private readonly grants: { peer: string; volume: string; path: string; until: number }[] = [];
  /** Runs node-to-node copies into this node's volumes (agent/volumes/pull.ts); absent: `vol.pull` is refused. */
  puller?: { pull(msg: Extract<FileIn, { type: 'vol.pull' }>, client: string): Omit<Extract<FileOut, { type: 'vol.pulled' }>, 'v'> };

  /** Lets agent `peer` read `volume`/`path` and below for `ms` (at most 64 grants are kept). */
  grant(peer: string, volume: string, path: string, ms: number): void {
    this.check(volume);
    this.grants.push({ peer, volume, path, until: Date.now() + ms });
    while (this.grants.length > 64 || (this.grants[0] && this.grants[0].until < Date.now())) this.grants.shift();
  }

  /** Whether agent `peer` holds a live grant covering `volume`/`path` (normalised first). */
  granted(peer: string, volume: string, path: string): boolean {
    const rel = normaliseVolumePath(path);
    if (rel === null) return false;
    return this.grants.some(
      (g) =>
        g.peer === peer && g.volume === volume && g.until > Date.now() && (g.path === '' || rel === g.path || rel.startsWith(`${g.path}/`)),
    );
  }

  /** Records that task attempt `key` mounts `names` (until `release(key)`). */
  use(key: string, names: string[]): void {
    if (names.length) this.users.set(key, names);
  }

  /** The attempt `key` ended: its volumes are no longer in use by it. */
  release(key: string): void {
    this.users.delete(key);
  }

  /** The task attempts (`taskId:attempt`) accepted or running here that mount volume `name`. */
  usersOf(name: string): string[] {
    return [...this.users].filter(([, names]) => names.includes(name)).map(([key]) => key);
  }

  /** Deletes the volume and everything in it. @throws CutterError NOT_FOUND. */
  async remove(name: string): Promise<void> {
    const path = this.existing(name);
    await rm(path, { recursive: true, force: true });
  }

  /** Name, absolute path, file count and bytes of one volume. @throws CutterError NOT_FOUND. */
  async info(name: string): Promise<VolumeInfo> {
    const path = this.existing(name);
    const files = await this.walk(path, '');
    const st = await stat(path);
    return {
      name,
      path,
      files: files.length,
      bytes: files.reduce((n, f) => n + f.size, 0),
      createdAt: Math.round(st.birthtimeMs || st.mtimeMs),
    };
  }

  /** Every volume's info. */
  async list(): Promise<VolumeInfo[]> {
    const out: VolumeInfo[] = [];
    for (const name of this.names()) out.push(await this.info(name).catch(() => ({ name, path: '', files: 0, bytes: 0, createdAt: 0 })));
    return out;
  }

  /** Regular files under `dir` (relative paths with `/`), symlinks and part files skipped. */
  private async walk(dir: string, rel: string, out: { path: string; abs: string; size: number }[] = []) {
    const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await this.walk(dir, r, out);
      else if (e.isFile() && !isPart(e.name)) {
        const abs = join(dir, r);
        out.push({ path: r, abs, size: (await stat(abs)).size });
      }
      if (out.length > MAX_MANIFEST_FILES)
        throw new CutterError(
          'INVALID_ARGUMENT',
          `more than ${MAX_MANIFEST_FILES} files under ${rel || 'the volume'}: copy a subdirectory`,
        );
    }
    return out;
  }

  /**
   * A path inside the volume, confined: normalised (no `..`), and its deepest existing ancestor
   * must resolve (symlinks followed) inside the volume.
   * @throws CutterError POLICY_DENIED for `..` or an escape through a symlink, NOT_FOUND for a missing volume.
   */
  private async confine(name: string, requested: string): Promise<{ root: string; rel: string; abs: string }> {
    const root = this.existing(name);
    const rel = normaliseVolumePath(requested);
    if (rel === null) throw new CutterError('POLICY_DENIED', `path "${requested.slice(0, 200)}" in volume ${name} contains ".." or a NUL`);
    const abs = rel ? join(root, rel) : root;
    let probe = abs;
    for (;;) {
      try {
        const real = await realpath(probe);
        if (!inside(real, root))
          throw new CutterError('POLICY_DENIED', `path "${requested}" leaves volume ${name} through a symbolic link`);
        break;
      } catch (err) {
        if (err instanceof CutterError) throw err;
        if (probe === root) break;
        probe = join(probe, '..');
      }
    }
    return { root, rel, abs };
  }

  /** A file to read: must exist, be a regular file (after symlinks) inside the volume. @throws like confine(), NOT_FOUND. */
  async forRead(name: string, requested: string): Promise<string> {
    const { abs } = await this.confine(name, requested);
    const real = await realpath(abs).catch(() => {
      throw new CutterError('NOT_FOUND', `no file "${requested}" in volume ${name} on node ${this.node}`);
    });
    return real;
  }

  /**
   * A file to write: its parent directories are created inside the volume; a symlink at the file's
   * own name is replaced by the rename, never written through.
   * @throws like confine(); INVALID_ARGUMENT for the volume's root or a directory.
   */
  async forWrite(name: string, requested: string): Promise<string> {
    const { rel, abs } = await this.confine(name, requested);
    if (!rel) throw new CutterError('INVALID_ARGUMENT', `give a file name inside volume ${name}`);
    const parent = join(abs, '..');
    await mkdir(parent, { recursive: true, mode: 0o755 });
    // The parent chain may have been planted meanwhile: check again once it exists.
    await this.confine(name, rel);
    const st = await lstat(abs).catch(() => null);
    if (st?.isDirectory()) throw new CutterError('INVALID_ARGUMENT', `"${rel}" is a directory in volume ${name}`);
    return abs;
  }

  /** SHA-256 of a file, cached by path, size and mtime. */
  private async hashOf(abs: string, size: number): Promise<string> {
    const st = await stat(abs);
    const cached = this.hashes.get(abs);
    if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs) return cached.sha256;
    const sha256 = await sha256File(abs, size);
    this.hashes.set(abs, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
    if (this.hashes.size > MAX_MANIFEST_FILES) this.hashes.delete(this.hashes.keys().next().value!);
    return sha256;
  }

  /** Indices of `files` the volume lacks or has with another size or SHA-256, and the bytes it already has. */
  async diff(name: string, files: ManifestEntry[]): Promise<{ need: number[]; haveBytes: number }> {
    const need: number[] = [];
    let haveBytes = 0;
    for (const [i, f] of files.entries()) {
      const { abs } = await this.confine(name, f.path);
      const st = await lstat(abs).catch(() => null);
      if (st?.isFile() && st.size === f.size && (await this.hashOf(abs, st.size)) === f.sha256) haveBytes += f.size;
      else need.push(i);
    }
    return { need, haveBytes };
  }

  /** One page (at most `limit` files and `maxBytes` of JSON, from `offset`) of the files under `path`, paths relative to `path`. */
  async manifest(
    name: string,
    path: string,
    offset: number,
    limit: number,
    maxBytes = Number.MAX_SAFE_INTEGER,
  ): Promise<{ files: ManifestEntry[]; total: number }> {
    const { abs } = await this.confine(name, path);
    const st = await stat(abs).catch(() => null);
    if (!st?.isDirectory()) throw new CutterError('NOT_FOUND', `no directory "${path}" in volume ${name} on node ${this.node}`);
    const all = await this.walk(abs, '');
    const page = all.slice(offset, offset + limit);
    const files: ManifestEntry[] = [];
    let bytes = 0;
    for (const f of page) {
      const entry = { path: f.path, size: f.size, sha256: await this.hashOf(f.abs, f.size) };
      bytes += JSON.stringify(entry).length + 1;
      if (bytes > maxBytes && files.length > 0) break;
      files.push(entry);
    }
    return { files, total: all.length };
  }
}
