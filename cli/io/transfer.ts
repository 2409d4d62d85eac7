/**
 * Moving a task's inputs and outputs (protocol: shared/schemas/io.ts) between this CLI and the node
 * its attempt runs on: `stageInputs` sends each input's manifest and only the contents the node's
 * cache lacks, then says `io.ready`; `collectOutputs` lists each output, fetches only the files that
 * differ from the local directory (SHA-256 checked on arrival and against the listing), then says
 * `io.done`. Files move with the windowed, resumable single-file transfer (cli/files/put.ts, get.ts).
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CutterError } from '../../shared/errors.js';
import type { FileOut } from '../../shared/schemas/files.js';
import { MAX_IO_FILES } from '../../shared/schemas/io.js';
import type { ManifestEntry } from '../../shared/schemas/volumes.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { normaliseVolumePath } from '../../shared/volumes.js';
import { getFile } from '../../shared/transfer/get.js';
import type { FileLink } from '../../shared/transfer/link.js';
import { putFile } from '../files/put.js';
import { newXfer, type TransferOptions } from '../../shared/transfer/transfer.js';
import { page, walk } from '../files/tree.js';
import type { IoDir } from './args.js';
import { makeDir } from '../../shared/make-dir.js';

/** What one direction moved (`cutter run --json`, `io.inputs` / `io.outputs`). Bytes are file bytes; `wireBytes` chunk bytes moved. */
export interface IoSummary {
  node: string;
  files: number;
  bytes: number;
  /** Files (contents, for inputs) that moved, and their bytes. */
  filesSent: number;
  bytesSent: number;
  /** Files already there with the same SHA-256, and their bytes. */
  filesSkipped: number;
  bytesSkipped: number;
  wireBytes: number;
  ms: number;
}

/** Identifies the attempt the transfer is for. */
export interface IoAttempt {
  id: string;
  attempt: number;
}

/** Asks and waits for the reply of type `type` (an `error` reply is thrown as CutterError). */
function ask<T extends FileOut['type']>(link: FileLink, body: Parameters<FileLink['send']>[0], type: T, timeoutMs = 120_000) {
  return link.ask(body, (m): m is Extract<FileOut, { type: T }> => m.type === type, 10_000, timeoutMs);
}

/**
 * Sends the inputs of attempt `task` to its node and has it stage them.
 * @throws CutterError: a local read error, the node's refusals (disk, size, path), TIMEOUT.
 */
export async function stageInputs(link: FileLink, task: IoAttempt, inputs: IoDir[], opts: TransferOptions = {}): Promise<IoSummary> {
  const started = Date.now();
  const counts: { files: number; bytes: number }[] = [];
  /** Contents to send, by SHA-256 (the same content twice is sent once). */
  const send = new Map<string, { abs: string; size: number }>();
  let files = 0;
  let bytes = 0;
  let filesNeeded = 0;
  for (const [k, input] of inputs.entries()) {
    const local = await walk(input.local);
    if (local.length > MAX_IO_FILES) throw new CutterError('INVALID_ARGUMENT', `${input.local} has more than ${MAX_IO_FILES} files`);
    const manifest: ManifestEntry[] = [];
    for (const f of local) manifest.push({ path: f.path, size: f.size, sha256: await sha256File(f.abs, f.size) });
    for (let i = 0; i < manifest.length || i === 0; ) {
      const batch = page(manifest, i);
      const r = await ask(
        link,
        { type: 'io.diff', xfer: newXfer(), task: task.id, attempt: task.attempt, input: k, files: batch },
        'vol.need',
      );
      for (const n of r.need) {
        if (n >= batch.length) continue;
        filesNeeded++;
        send.set(batch[n].sha256, { abs: local[i + n].abs, size: batch[n].size });
      }
      i += Math.max(1, batch.length);
    }
    const total = manifest.reduce((n, f) => n + f.size, 0);
    counts.push({ files: manifest.length, bytes: total });
    files += manifest.length;
    bytes += total;
  }
  const bytesSent = [...send.values()].reduce((n, f) => n + f.size, 0);
  let done = 0;
  let wireBytes = 0;
  for (const [sha256, f] of send) {
    const r = await putFile(
      link,
      f.abs,
      { kind: 'put', remotePath: sha256 },
      { ...opts, task, onProgress: (d) => opts.onProgress?.(done + d, bytesSent) },
    );
    if (r.sha256 !== sha256) throw new CutterError('INTERNAL', `${f.abs} changed while it was sent: run again`);
    wireBytes += r.wireBytes;
    done += f.size;
  }
  await ask(link, { type: 'io.ready', xfer: newXfer(), task: task.id, attempt: task.attempt, inputs: counts }, 'io.ok', 600_000);
  return {
    node: link.node,
    files,
    bytes,
    filesSent: send.size,
    bytesSent,
    filesSkipped: files - filesNeeded,
    bytesSkipped: bytes - bytesSent,
    wireBytes,
    ms: Date.now() - started,
  };
}

/** Tells the node the inputs will not come (the attempt fails STAGING_FAILED with `message`); errors are ignored. */
export async function abortStaging(link: FileLink, task: IoAttempt, message: string): Promise<void> {
  await ask(
    link,
    { type: 'io.abort', xfer: newXfer(), task: task.id, attempt: task.attempt, message: message.slice(0, 2000) },
    'io.ok',
    15_000,
  ).catch(() => undefined);
}

/** SHA-256 of a local file, or null when it is missing or not a regular file of `size` bytes. */
async function localSha(abs: string, size: number): Promise<string | null> {
  const st = await stat(abs).catch(() => null);
  if (!st?.isFile() || st.size !== size) return null;
  return sha256File(abs, size).catch(() => null);
}

/**
 * Fetches the outputs of attempt `task` into their local directories (created), only the files
 * missing or different here, then lets the node delete them.
 * @throws CutterError: a listing that leaves the directory (INTERNAL), a checksum that differs from
 *   the listing, the node's refusals, TIMEOUT.
 */
export async function collectOutputs(link: FileLink, task: IoAttempt, outputs: IoDir[], opts: TransferOptions = {}): Promise<IoSummary> {
  const started = Date.now();
  const s: IoSummary = {
    node: link.node,
    files: 0,
    bytes: 0,
    filesSent: 0,
    bytesSent: 0,
    filesSkipped: 0,
    bytesSkipped: 0,
    wireBytes: 0,
    ms: 0,
  };
  for (const [k, output] of outputs.entries()) {
    const remote: ManifestEntry[] = [];
    for (let offset: number | null = 0; offset !== null; ) {
      const p: Extract<FileOut, { type: 'vol.files' }> = await ask(
        link,
        { type: 'io.manifest', xfer: newXfer(), task: task.id, attempt: task.attempt, output: k, offset },
        'vol.files',
      );
      for (const f of p.files) {
        if (normaliseVolumePath(f.path) !== f.path || !f.path)
          throw new CutterError('INTERNAL', `node ${link.node} listed an output path that leaves the directory: ${f.path}`);
        remote.push(f);
      }
      if (remote.length > MAX_IO_FILES)
        throw new CutterError('INVALID_ARGUMENT', `output ${output.target} has more than ${MAX_IO_FILES} files`);
      offset = p.next !== null && p.next > offset && p.files.length > 0 ? p.next : null;
    }
    await makeDir(output.local);
    for (const f of remote) {
      const local = join(output.local, f.path);
      s.files++;
      s.bytes += f.size;
      if ((await localSha(local, f.size)) === f.sha256) {
        s.filesSkipped++;
        s.bytesSkipped += f.size;
        continue;
      }
      await mkdir(dirname(local), { recursive: true });
      const r = await getFile(link, f.path, local, { ...opts, task: { ...task, output: k } });
      if (r.sha256 !== f.sha256)
        throw new CutterError('INTERNAL', `output ${f.path} changed on node ${link.node} while it was collected (SHA-256 ${r.sha256})`);
      s.filesSent++;
      s.bytesSent += f.size;
      s.wireBytes += r.wireBytes;
    }
  }
  await ask(link, { type: 'io.done', xfer: newXfer(), task: task.id, attempt: task.attempt }, 'io.ok', 30_000).catch(() => undefined);
  s.ms = Date.now() - started;
  return s;
}
