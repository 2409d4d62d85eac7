/**
 * The node's side of a task's inputs and outputs (protocol: shared/schemas/io.ts). Layout under
 * `dir` (default `<data dir>/io/<node>`, mode 0700):
 * - `cas/<2 hex>/<sha256>`: every input content received, once, named by its SHA-256 (checked on
 *   arrival by the transfer's PartFile), so a second run with the same files sends nothing new;
 *   least recently used contents go when the disk is short, and unused ones after a week
 *   (./cache-evict.ts);
 * - `tasks/<task>~<attempt>/in/<k>/…`: input k, built from the cache when the submitter says
 *   `io.ready` (hard links for docker, whose mount is read-only; copies for exec, which could
 *   otherwise write through into the cache);
 * - `tasks/<task>~<attempt>/out/<k>/`: output k, empty at the start, written by the task.
 * Every path from the network is confined: manifest paths are normalised (no `..`, not absolute)
 * and must come back unchanged, an output file must be a regular file (never a symbolic link) whose
 * resolved path stays inside its output directory, and a content is accepted only when a manifest
 * of the waiting attempt named it, at most `maxFileBytes` and within the disk's free space.
 */
import { constants } from 'node:fs';
import { copyFile, link, lstat, mkdir, readdir, realpath, rm, stat, statfs, chmod, utimes } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { CutterError } from '../../shared/errors.js';
import { MAX_IO_FILES } from '../../shared/schemas/io.js';
import type { ManifestEntry } from '../../shared/schemas/volumes.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { PART_SUFFIX } from '../../shared/transfer/part-file.js';
import { normaliseVolumePath } from '../../shared/volumes.js';
import { makeDir } from '../../shared/make-dir.js';
import { AgeSweep, evictForSpace, touchContent } from './cache-evict.js';

/** Free disk the node keeps when it takes inputs, bytes. */
const DISK_MARGIN = 512 * 1024 * 1024;

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** Where a staged attempt's directories are. */
export interface IoDirs {
  inputs: string[];
  outputs: string[];
}

/** An attempt waiting for (or done with) its inputs. */
interface Staging {
  inputs: number;
  outputs: number;
  /** Build inputs by copying (exec) instead of hard links (docker). */
  copy: boolean;
  /** Per input: the manifest pages received, by request id (a page sent again replaces itself). */
  pages: Map<string, ManifestEntry[]>[];
  /** Contents the manifests named (only those are taken into the cache). */
  wanted: Set<string>;
  touched: number;
  /** Set once the inputs are built. */
  built?: { dirs: IoDirs; files: number; bytes: number };
  /** `io.done` came before the task runner let go of the attempt: its directories go at `ended`. */
  collected?: boolean;
  /** Why building failed (the task then fails), when it did. */
  failed?: Error;
  /** The task runner's wait (`wait`). */
  waiter?: { resolve(d: IoDirs): void; reject(err: Error): void };
}

/** The inputs cache and the attempts' directories of one node. */
export class IoStore {
  private readonly staging = new Map<string, Staging>();
  private readonly ageSweep = new AgeSweep();
  /** When the last chunk of an input content arrived (any task's), ms epoch. */
  private lastChunk = 0;

  /**
   * @param dir the node's io directory (created on first use, mode 0700)
   * @param maxFileBytes largest single file taken or given (the node's `--files-max-size`), bytes
   */
  constructor(
    readonly dir: string,
    private readonly node: string,
    private readonly maxFileBytes: number,
  ) {}

  private taskDir(task: string, attempt: number): string {
    return join(this.dir, 'tasks', `${task}~${attempt}`);
  }

  private get casDir(): string {
    return join(this.dir, 'cas');
  }

  /** Contents some waiting or running attempt's manifest named: never evicted. */
  private wantedNow(): Set<string> {
    const all = new Set<string>();
    for (const s of this.staging.values()) for (const sha of s.wanted) all.add(sha);
    return all;
  }

  /** The cache file of a content. */
  casPath(sha256: string): string {
    return join(this.casDir, sha256.slice(0, 2), sha256);
  }

  private waiting(task: string, attempt: number): Staging {
    const s = this.staging.get(`${task}~${attempt}`);
    if (!s) throw new CutterError('NOT_FOUND', `task ${task} attempt ${attempt} is not waiting for its inputs on node ${this.node}`);
    s.touched = Date.now();
    return s;
  }

  /** A chunk was written to `dest` (agent/files/service.ts): when it is a cache file, staging is not idle. */
  received(dest: string): void {
    if (dest.startsWith(join(this.dir, 'cas') + sep)) this.lastChunk = Date.now();
  }

  /** Registers an attempt that waits for `inputs` directories and will have `outputs` (agent/io/stage.ts, before `accepted`). */
  expect(task: string, attempt: number, inputs: number, outputs: number, copy: boolean): void {
    this.staging.set(`${task}~${attempt}`, {
      inputs,
      outputs,
      copy,
      pages: Array.from({ length: inputs }, () => new Map()),
      wanted: new Set(),
      touched: Date.now(),
    });
  }

  /**
   * Waits until the inputs are built (at once when there are none; output directories are created).
   * @returns the directories, or null when `stopped()` became true first (a cancel).
   * @throws CutterError STAGING_FAILED when nothing arrived for `idleMs`, or why the build failed.
   */
  async wait(task: string, attempt: number, stopped: () => boolean, idleMs: number): Promise<IoDirs | null> {
    const s = this.waiting(task, attempt);
    if (s.inputs === 0) return (await this.build(task, attempt, s)).dirs;
    return new Promise<IoDirs | null>((resolve, reject) => {
      const timer = setInterval(() => {
        if (stopped()) finish(() => resolve(null));
        else if (Date.now() - Math.max(s.touched, this.lastChunk) > idleMs)
          finish(() =>
            reject(
              new CutterError(
                'STAGING_FAILED',
                `no input arrived from the submitter for ${Math.round(idleMs / 1000)} s (did its cutter run end?): the task was not started`,
              ),
            ),
          );
      }, 250);
      const finish = (fn: () => void) => {
        clearInterval(timer);
        s.waiter = undefined;
        fn();
      };
      s.waiter = { resolve: (d) => finish(() => resolve(d)), reject: (e) => finish(() => reject(e)) };
      if (s.built) s.waiter.resolve(s.built.dirs);
      else if (s.failed) s.waiter.reject(s.failed);
    });
  }

  /**
   * One page of input `input`'s manifest: records it and says which contents the cache lacks.
   * @returns indices into `files` to send, and the bytes the cache already has.
   * @throws CutterError NOT_FOUND (not waiting), INVALID_ARGUMENT (bad index, too many files, a file
   *   over the size limit, not enough disk).
   */
  async diff(
    task: string,
    attempt: number,
    input: number,
    xfer: string,
    files: ManifestEntry[],
  ): Promise<{ need: number[]; haveBytes: number }> {
    const s = this.waiting(task, attempt);
    if (input >= s.inputs) throw new CutterError('INVALID_ARGUMENT', `task ${task} has ${s.inputs} inputs, not ${input + 1}`);
    s.pages[input].set(xfer, files);
    const count = [...s.pages[input].values()].reduce((n, p) => n + p.length, 0);
    if (count > MAX_IO_FILES) throw new CutterError('INVALID_ARGUMENT', `input ${input} has more than ${MAX_IO_FILES} files`);
    const need: number[] = [];
    let haveBytes = 0;
    let needBytes = 0;
    for (const [i, f] of files.entries()) {
      if (f.size > this.maxFileBytes)
        throw new CutterError(
          'INVALID_ARGUMENT',
          `${f.path} is ${f.size} bytes, over node ${this.node}'s limit of ${this.maxFileBytes} bytes (--files-max-size)`,
        );
      s.wanted.add(f.sha256);
      const cached = this.casPath(f.sha256);
      const st = await lstat(cached).catch(() => null);
      if (st?.isFile() && st.size === f.size) {
        haveBytes += f.size;
        await touchContent(cached);
      } else {
        need.push(i);
        needBytes += f.size;
      }
    }
    await makeDir(this.dir, 0o700);
    const fs = await statfs(this.dir).catch(() => null);
    let free = fs ? fs.bavail * fs.bsize : Number.MAX_SAFE_INTEGER;
    // Short of disk: the cache's least recently used contents make room first (./cache-evict.ts).
    if (needBytes + DISK_MARGIN > free) free += await evictForSpace(this.casDir, needBytes + DISK_MARGIN - free, this.wantedNow());
    if (needBytes + DISK_MARGIN > free)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `node ${this.node} has ${free} bytes of free disk, the inputs need ${needBytes} more: free some space or run elsewhere`,
      );
    return { need, haveBytes };
  }

  /**
   * Where a `put` of an input content goes: its cache file.
   * @throws CutterError NOT_FOUND (not waiting), POLICY_DENIED (a content no manifest named).
   */
  async inputPath(task: string, attempt: number, sha256: string): Promise<string> {
    const s = this.waiting(task, attempt);
    if (!s.wanted.has(sha256))
      throw new CutterError('POLICY_DENIED', `content ${sha256} is in no manifest of task ${task}: send its io.diff first`);
    const path = this.casPath(sha256);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return path;
  }

  /**
   * `io.ready`: checks the announced counts against the manifests and builds the inputs (again
   * the same answer when sent again), then starts the task.
   * @throws CutterError INVALID_ARGUMENT (counts differ, duplicate or clashing paths), NOT_FOUND (a
   *   content never arrived), POLICY_DENIED (a path leaving its directory); the task then fails.
   */
  async ready(task: string, attempt: number, counts: { files: number; bytes: number }[]): Promise<{ files: number; bytes: number }> {
    const s = this.waiting(task, attempt);
    if (s.built) return { files: s.built.files, bytes: s.built.bytes };
    try {
      if (counts.length !== s.inputs)
        throw new CutterError('INVALID_ARGUMENT', `task ${task} has ${s.inputs} inputs, io.ready announced ${counts.length}`);
      for (const [k, c] of counts.entries()) {
        const entries = [...s.pages[k].values()].flat();
        const bytes = entries.reduce((n, e) => n + e.size, 0);
        if (entries.length !== c.files || bytes !== c.bytes)
          throw new CutterError(
            'INVALID_ARGUMENT',
            `input ${k}: the manifest pages name ${entries.length} files (${bytes} bytes), io.ready announced ${c.files} (${c.bytes} bytes)`,
          );
      }
      const built = await this.build(task, attempt, s);
      s.waiter?.resolve(built.dirs);
      return { files: built.files, bytes: built.bytes };
    } catch (err) {
      s.failed = new CutterError('STAGING_FAILED', `staging the inputs failed: ${(err as Error).message}`);
      s.waiter?.reject(s.failed);
      throw err;
    }
  }

  /** Builds the inputs from the cache and creates the empty outputs (mode 0777: the task may run as any user). */
  private async build(task: string, attempt: number, s: Staging): Promise<NonNullable<Staging['built']>> {
    const base = this.taskDir(task, attempt);
    await rm(base, { recursive: true, force: true });
    const dirs: IoDirs = { inputs: [], outputs: [] };
    let files = 0;
    let bytes = 0;
    for (let k = 0; k < s.inputs; k++) {
      const root = join(base, 'in', String(k));
      await mkdir(root, { recursive: true, mode: 0o755 });
      await chmod(root, 0o755);
      const seen = new Set<string>();
      for (const e of [...s.pages[k].values()].flat()) {
        const rel = normaliseVolumePath(e.path);
        if (rel === null || rel === '' || rel !== e.path)
          throw new CutterError('POLICY_DENIED', `input path "${e.path.slice(0, 200)}" leaves its directory (or is not normalised)`);
        if (seen.has(rel)) throw new CutterError('INVALID_ARGUMENT', `input ${k} names "${rel}" twice`);
        seen.add(rel);
        const src = this.casPath(e.sha256);
        const st = await lstat(src).catch(() => null);
        if (!st?.isFile() || st.size !== e.size)
          throw new CutterError('NOT_FOUND', `the content of ${rel} (${e.sha256}) never arrived on node ${this.node}`);
        const dest = join(root, rel);
        try {
          await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
          if (s.copy) await copyFile(src, dest, constants.COPYFILE_FICLONE);
          else
            await link(src, dest).catch((err: NodeJS.ErrnoException) => (err.code === 'EXDEV' ? copyFile(src, dest) : Promise.reject(err)));
        } catch (err) {
          throw new CutterError('INVALID_ARGUMENT', `cannot place input file ${rel}: ${(err as Error).message}`);
        }
        files++;
        bytes += e.size;
      }
      dirs.inputs.push(root);
    }
    for (let k = 0; k < s.outputs; k++) {
      const root = join(base, 'out', String(k));
      await mkdir(root, { recursive: true });
      await chmod(root, 0o777);
      dirs.outputs.push(root);
    }
    s.built = { dirs, files, bytes };
    return s.built;
  }

  /** The resolved output directory k of an attempt. @throws CutterError NOT_FOUND when it is gone or never was. */
  private async outputRoot(task: string, attempt: number, k: number): Promise<string> {
    try {
      return await realpath(join(this.taskDir(task, attempt), 'out', String(k)));
    } catch {
      throw new CutterError(
        'NOT_FOUND',
        `node ${this.node} has no output ${k} of task ${task} attempt ${attempt} (collected already, or deleted an hour after the task ended)`,
      );
    }
  }

  /** Regular files under `root` (symbolic links neither listed nor followed, part files skipped). */
  private async walk(root: string, rel = '', out: { path: string; abs: string; size: number }[] = []) {
    const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await this.walk(root, r, out);
      else if (e.isFile() && !e.name.endsWith(PART_SUFFIX))
        out.push({ path: r, abs: join(root, r), size: (await lstat(join(root, r))).size });
      if (out.length > MAX_IO_FILES) throw new CutterError('INVALID_ARGUMENT', `output has more than ${MAX_IO_FILES} files`);
    }
    return out;
  }

  /** One page of output k's files (at most `limit` and `maxBytes` of JSON, from `offset`). */
  async outputManifest(
    task: string,
    attempt: number,
    k: number,
    offset: number,
    limit: number,
    maxBytes: number,
  ): Promise<{ files: ManifestEntry[]; total: number }> {
    const root = await this.outputRoot(task, attempt, k);
    const all = await this.walk(root);
    const files: ManifestEntry[] = [];
    let bytes = 0;
    for (const f of all.slice(offset, offset + limit)) {
      if (f.size > this.maxFileBytes)
        throw new CutterError('INVALID_ARGUMENT', `output file ${f.path} is ${f.size} bytes, over the limit of ${this.maxFileBytes}`);
      const entry = { path: f.path, size: f.size, sha256: await sha256File(f.abs, f.size) };
      bytes += JSON.stringify(entry).length + 1;
      if (bytes > maxBytes && files.length > 0) break;
      files.push(entry);
    }
    return { files, total: all.length };
  }

  /**
   * An output file to send: a regular file (not a symbolic link) inside output k.
   * @throws CutterError POLICY_DENIED for a path leaving it, NOT_FOUND.
   */
  async outputPath(task: string, attempt: number, k: number, path: string): Promise<string> {
    const rel = normaliseVolumePath(path);
    if (rel === null || rel === '') throw new CutterError('POLICY_DENIED', `output path "${path.slice(0, 200)}" leaves its directory`);
    const root = await this.outputRoot(task, attempt, k);
    const abs = join(root, rel);
    const st = await lstat(abs).catch(() => null);
    if (!st) throw new CutterError('NOT_FOUND', `no output file ${rel} of task ${task}`);
    if (!st.isFile()) throw new CutterError('POLICY_DENIED', `output ${rel} is not a regular file (symbolic links are not collected)`);
    const real = await realpath(abs);
    if (!inside(real, root)) throw new CutterError('POLICY_DENIED', `output ${rel} leaves its directory through a symbolic link`);
    return real;
  }

  /** Forgets the attempt; deletes its directories unless outputs wait to be collected (then `sweep` deletes them later). */
  async ended(task: string, attempt: number, keep: boolean): Promise<void> {
    const s = this.staging.get(`${task}~${attempt}`);
    s?.waiter?.resolve({ inputs: [], outputs: [] });
    this.staging.delete(`${task}~${attempt}`);
    const dir = this.taskDir(task, attempt);
    if (!keep || s?.collected) await rm(dir, { recursive: true, force: true });
    else await utimes(dir, new Date(), new Date()).catch(() => undefined);
  }

  /** `io.abort`: the submitter gave up; the waiting attempt fails STAGING_FAILED with its reason. */
  abort(task: string, attempt: number, message: string): void {
    const s = this.waiting(task, attempt);
    if (s.built) return;
    s.failed = new CutterError('STAGING_FAILED', `staging the inputs failed: ${message}`);
    s.waiter?.reject(s.failed);
  }

  /** `io.done`: the outputs were collected; deletes the attempt's directories. */
  async done(task: string, attempt: number): Promise<void> {
    const s = this.staging.get(`${task}~${attempt}`);
    // The task runner has not let go of the attempt yet (its result is just out): deleted at `ended`.
    if (s) s.collected = true;
    if (s) return;
    await rm(this.taskDir(task, attempt), { recursive: true, force: true });
  }

  /** Deletes the directories of attempts that ended more than `maxAgeMs` ago (uncollected outputs), and stale cache contents. */
  async sweep(maxAgeMs: number): Promise<void> {
    await this.ageSweep.run(this.casDir, () => this.wantedNow());
    const root = join(this.dir, 'tasks');
    for (const name of await readdir(root).catch(() => [] as string[])) {
      const [task, attempt] = name.split('~');
      if (this.staging.has(`${task}~${attempt}`)) continue;
      const st = await stat(join(root, name)).catch(() => null);
      if (st && Date.now() - st.mtimeMs > maxAgeMs) await rm(join(root, name), { recursive: true, force: true });
    }
  }
}
