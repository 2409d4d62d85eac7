/**
 * `cutter cp -r`: a directory to or from a node's volume, moving only what differs. A SHA-256
 * manifest per file is compared with the other side (to the node: `vol.diff` answers which
 * files it lacks or has different; from the node: `vol.manifest` lists its files, compared here),
 * and each file that differs moves with the single-file transfer (put.ts, get.ts: windowed,
 * resumable, SHA-256 checked), so an interrupted copy run again skips what arrived and resumes
 * the file it was in. Whole files move (no rsync-style deltas inside a file).
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CutterError } from '../../shared/errors.js';
import type { FileOut } from '../../shared/schemas/files.js';
import { MANIFEST_PAGE, MANIFEST_PAGE_BYTES, type ManifestEntry } from '../../shared/schemas/volumes.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { PART_SUFFIX } from '../../shared/transfer/part-file.js';
import { normaliseVolumePath } from '../../shared/volumes.js';
import { getFile } from '../../shared/transfer/get.js';
import type { FileLink } from '../../shared/transfer/link.js';
import { putFile } from './put.js';
import { newXfer, type TransferOptions } from '../../shared/transfer/transfer.js';
import { makeDir } from '../../shared/make-dir.js';

/** Most files one `cp -r` moves. */
export const MAX_TREE_FILES = 100_000;
/** Most paths a summary lists in `sentPaths`. */
const MAX_LISTED = 1_000;

/** What `cutter cp -r --json` prints. Bytes are file bytes; `wireBytes` chunk bytes actually moved. */
export interface TreeResult {
  direction: 'put' | 'get';
  node: string;
  volume: string;
  /** Directory inside the volume ('' = its root). */
  path: string;
  localDir: string;
  files: number;
  filesSent: number;
  filesSkipped: number;
  bytes: number;
  bytesSent: number;
  bytesSkipped: number;
  wireBytes: number;
  /** Bytes of sent files that a partial file from an interrupted earlier copy already held (not sent again). */
  bytesResumed: number;
  ms: number;
  /** Paths (relative to the directory) of the files that moved, at most 1,000. */
  sentPaths: string[];
}

/** Regular files under `dir`, relative paths with `/` (symlinks and unfinished transfers skipped). */
export async function walk(dir: string, rel = '', out: { path: string; abs: string; size: number }[] = []) {
  for (const e of (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await walk(dir, r, out);
    else if (e.isFile() && !e.name.endsWith(PART_SUFFIX) && !e.name.endsWith(`${PART_SUFFIX}.json`))
      out.push({ path: r, abs: join(dir, r), size: (await stat(join(dir, r))).size });
    if (out.length > MAX_TREE_FILES) throw new CutterError('INVALID_ARGUMENT', `more than ${MAX_TREE_FILES} files under ${dir}`);
  }
  return out;
}

/** `volume/sub/dir` → the volume and the normalised directory inside it. @throws CutterError INVALID_ARGUMENT for `..`. */
export function splitVolumePath(spec: string): { volume: string; path: string } {
  const slash = spec.indexOf('/');
  const volume = slash < 0 ? spec : spec.slice(0, slash);
  const path = normaliseVolumePath(slash < 0 ? '' : spec.slice(slash + 1));
  if (path === null) throw new CutterError('INVALID_ARGUMENT', `"${spec}": a path inside a volume cannot contain ".."`);
  return { volume, path };
}

/** Entries from `from` while the page stays within MANIFEST_PAGE files and MANIFEST_PAGE_BYTES of JSON (at least one). */
export function page(entries: ManifestEntry[], from: number): ManifestEntry[] {
  let bytes = 0;
  let end = from;
  while (end < entries.length && end - from < MANIFEST_PAGE) {
    bytes += JSON.stringify(entries[end]).length + 1;
    if (bytes > MANIFEST_PAGE_BYTES && end > from) break;
    end++;
  }
  return entries.slice(from, end);
}

const under = (base: string, rel: string) => (base ? `${base}/${rel}` : rel);

/** Asks and waits for the reply of type `type` (an `error` reply is thrown). */
function ask<T extends FileOut['type']>(link: FileLink, body: Parameters<FileLink['send']>[0], type: T) {
  return link.ask(body, (m): m is Extract<FileOut, { type: T }> => m.type === type, 10_000, 120_000);
}

/** @throws CutterError NOT_FOUND naming `cutter volume create` when the node has no such volume. */
async function inspect(link: FileLink, volume: string): Promise<void> {
  await ask(link, { type: 'vol.inspect', xfer: newXfer(), volume }, 'vol.info');
}

/** Sums per-file progress into one count of bytes for the whole copy. */
function progress(opts: TransferOptions, total: number) {
  let base = 0;
  return {
    file: (): TransferOptions => ({
      ...opts,
      onProgress: (done) => opts.onProgress?.(base + done, total),
    }),
    done: (size: number) => {
      base += size;
      opts.onProgress?.(base, total);
    },
  };
}

/**
 * Copies `localDir` into `volume`/`path` on the node, sending only the files it lacks or has different.
 * @throws CutterError: NOT_FOUND (no such local directory or volume), the node's refusals, TIMEOUT.
 */
export async function putTree(
  link: FileLink,
  localDir: string,
  volume: string,
  path: string,
  opts: TransferOptions = {},
): Promise<TreeResult> {
  const started = Date.now();
  if (!(await stat(localDir).catch(() => null))?.isDirectory())
    throw new CutterError('NOT_FOUND', `no such local directory: ${localDir} (cp -r copies a directory)`);
  await inspect(link, volume);
  const files = await walk(localDir);
  const manifest: ManifestEntry[] = [];
  for (const f of files) manifest.push({ path: under(path, f.path), size: f.size, sha256: await sha256File(f.abs, f.size) });
  const need: number[] = [];
  for (let i = 0; i < manifest.length; ) {
    const batch = page(manifest, i);
    const r = await ask(link, { type: 'vol.diff', xfer: newXfer(), volume, files: batch }, 'vol.need');
    for (const k of r.need) if (k < batch.length) need.push(i + k);
    i += batch.length;
  }
  const bytesSent = need.reduce((n, k) => n + files[k].size, 0);
  const bar = progress(opts, bytesSent);
  let wireBytes = 0;
  let bytesResumed = 0;
  for (const k of need) {
    const r = await putFile(link, files[k].abs, { kind: 'put', remotePath: manifest[k].path }, { ...bar.file(), volume });
    wireBytes += r.wireBytes;
    bytesResumed += r.startOffset;
    bar.done(files[k].size);
  }
  const bytes = files.reduce((n, f) => n + f.size, 0);
  return {
    direction: 'put',
    node: link.node,
    volume,
    path,
    localDir,
    files: files.length,
    filesSent: need.length,
    filesSkipped: files.length - need.length,
    bytes,
    bytesSent,
    bytesSkipped: bytes - bytesSent,
    wireBytes,
    bytesResumed,
    ms: Date.now() - started,
    sentPaths: need.slice(0, MAX_LISTED).map((k) => files[k].path),
  };
}

/** SHA-256 of a local file, or null when it is missing or not a regular file. */
async function localSha(abs: string, size: number): Promise<string | null> {
  const st = await stat(abs).catch(() => null);
  if (!st?.isFile() || st.size !== size) return null;
  return sha256File(abs, size).catch(() => null);
}

/**
 * Copies `volume`/`path` on the node into `localDir` (created), fetching only the files missing
 * here or different. Paths the node lists are checked again here (no `..`, not absolute).
 * @throws CutterError: NOT_FOUND (no such volume or directory on the node), INTERNAL for a bad listing, TIMEOUT.
 */
export async function getTree(
  link: FileLink,
  volume: string,
  path: string,
  localDir: string,
  opts: TransferOptions = {},
): Promise<TreeResult> {
  const started = Date.now();
  const remote: ManifestEntry[] = [];
  for (let offset: number | null = 0; offset !== null; ) {
    const page: Extract<FileOut, { type: 'vol.files' }> = await ask(
      link,
      { type: 'vol.manifest', xfer: newXfer(), volume, path, offset },
      'vol.files',
    );
    for (const f of page.files) {
      if (normaliseVolumePath(f.path) !== f.path || !f.path)
        throw new CutterError('INTERNAL', `node ${link.node} listed a path that leaves the directory: ${f.path}`);
      remote.push(f);
    }
    if (remote.length > MAX_TREE_FILES)
      throw new CutterError('INVALID_ARGUMENT', `more than ${MAX_TREE_FILES} files under ${volume}/${path}`);
    offset = page.next !== null && page.next > offset && page.files.length > 0 ? page.next : null;
  }
  await makeDir(localDir);
  const need: number[] = [];
  for (const [i, f] of remote.entries()) if ((await localSha(join(localDir, f.path), f.size)) !== f.sha256) need.push(i);
  const bytesSent = need.reduce((n, k) => n + remote[k].size, 0);
  const bar = progress(opts, bytesSent);
  let wireBytes = 0;
  let bytesResumed = 0;
  for (const k of need) {
    const f = remote[k];
    const local = join(localDir, f.path);
    await mkdir(join(local, '..'), { recursive: true });
    const r = await getFile(link, under(path, f.path), local, { ...bar.file(), volume });
    wireBytes += r.wireBytes;
    bytesResumed += r.startOffset;
    bar.done(f.size);
  }
  const bytes = remote.reduce((n, f) => n + f.size, 0);
  return {
    direction: 'get',
    node: link.node,
    volume,
    path,
    localDir,
    files: remote.length,
    filesSent: need.length,
    filesSkipped: remote.length - need.length,
    bytes,
    bytesSent,
    bytesSkipped: bytes - bytesSent,
    wireBytes,
    bytesResumed,
    ms: Date.now() - started,
    sentPaths: need.slice(0, MAX_LISTED).map((k) => remote[k].path),
  };
}
