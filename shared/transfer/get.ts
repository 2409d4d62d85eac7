/**
 * `getFile`: a client fetches a file from a node's agent (the CLI's `cutter cp`, and an agent
 * pulling another node's volume, agent/volumes/pull.ts). When chunks stop for `stallMs` it sends its `get`
 * again from the offset its part file has reached, so the transfer resumes instead of restarting;
 * a part file left by an earlier run is resumed too when the node's SHA-256 still matches.
 */
import { readFile, stat } from 'node:fs/promises';
import { CutterError } from '../errors.js';
import { decodeFrame, type FileOut } from '../schemas/files.js';
import { PART_SUFFIX, PartFile } from './part-file.js';
import { type FileLink, errorCode } from './link.js';
import { newXfer, type TransferOptions, type TransferResult } from './transfer.js';

/**
 * Fetches `remotePath` from the node into `localPath` (via `localPath.cutter-part`, kept for a
 * later run when it fails; a matching part file from an earlier run is resumed).
 * @throws CutterError like putFile; INTERNAL on a SHA-256 mismatch (the part file is deleted).
 */
export async function getFile(link: FileLink, remotePath: string, localPath: string, opts: TransferOptions = {}): Promise<TransferResult> {
  const stallMs = opts.stallMs ?? 3000;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const xfer = newXfer();
  const started = Date.now();
  // A part file from an earlier run: offer its length, valid only if the node's SHA-256 still matches.
  let offset = 0;
  let ifSha256: string | undefined;
  try {
    const side = JSON.parse(await readFile(`${localPath + PART_SUFFIX}.json`, 'utf8')) as { size: number; sha256: string };
    offset = Math.min((await stat(localPath + PART_SUFFIX)).size, side.size);
    ifSha256 = side.sha256;
  } catch {
    offset = 0;
  }
  let part: PartFile | undefined;
  let meta: Extract<FileOut, { type: 'meta' }> | undefined;
  const resumedFrom: number[] = [];
  let startOffset = -1;
  let lastMove = Date.now();
  let lastAsk = Date.now();
  let reopening = false;
  let wireBytes = 0;
  let finishing = false;
  const ask = () => {
    lastAsk = Date.now();
    const at = part?.offset ?? offset;
    void link
      .send({
        type: 'get',
        xfer,
        path: remotePath,
        offset: at,
        ...(meta ? { ifSha256: meta.sha256 } : ifSha256 ? { ifSha256 } : {}),
        ...(opts.volume !== undefined ? { volume: opts.volume } : {}),
        ...(opts.task ? { task: opts.task.id, attempt: opts.task.attempt, output: opts.task.output } : {}),
      })
      .catch(() => undefined);
  };
  try {
    return await new Promise<TransferResult>((resolve, reject) => {
      const fail = (err: Error) => finish(() => reject(err));
      const complete = async () => {
        finishing = true;
        const { ok, sha256 } = await part!.finish();
        await link.send({ type: 'done', xfer, ok, ...(ok ? {} : { message: `SHA-256 mismatch: ${sha256}` }) }).catch(() => undefined);
        if (!ok)
          return fail(
            new CutterError(
              'INTERNAL',
              `SHA-256 mismatch fetching ${remotePath} from ${link.node}: got ${sha256}, the node has ${meta!.sha256}; the partial file was deleted, run cutter cp again`,
            ),
          );
        opts.onProgress?.(meta!.size, meta!.size);
        finish(() =>
          resolve({
            direction: 'get',
            node: link.node,
            remotePath: meta!.path,
            localPath,
            bytes: meta!.size,
            sha256,
            ms: Date.now() - started,
            resumedFrom,
            startOffset: Math.max(0, startOffset),
            wireBytes,
          }),
        );
      };
      // Chunks are written one after another; a promise chain keeps them in arrival order.
      let writes: Promise<unknown> = Promise.resolve();
      const offData = link.onData((payload) => {
        const frame = decodeFrame(payload);
        if (!frame || frame.xfer !== xfer || finishing) return;
        // Queued behind the `meta` handler, which opens the part file: early chunks are not lost.
        writes = writes
          .then(async () => {
            if (finishing || !part) return;
            const at = await part!.write(frame.offset, frame.data);
            if (at === null) return;
            wireBytes += frame.data.length;
            lastMove = Date.now();
            opts.onProgress?.(at, part!.size);
            void link.send({ type: 'ack', xfer, offset: at }).catch(() => undefined);
            if (part!.complete) await complete();
          })
          .catch((err) => fail(err as Error));
      });
      const offControl = link.onControl((m) => {
        if (m.xfer !== xfer) return;
        if (m.type === 'error') return fail(new CutterError(errorCode(m.code), `node ${link.node}: ${m.message}`));
        if (m.type !== 'meta' || finishing) return;
        writes = writes
          .then(async () => {
            lastMove = Date.now();
            if (!part) {
              if (opts.maxBytes !== undefined && m.size > opts.maxBytes)
                return fail(
                  new CutterError(
                    'INVALID_SIZE',
                    `${m.path} on node ${link.node} is ${m.size} bytes, over the ${opts.maxBytes} allowed here`,
                  ),
                );
              meta = m;
              part = await PartFile.open(localPath, m.size, m.sha256);
              if (startOffset < 0) startOffset = m.offset;
            } else if (reopening) {
              resumedFrom.push(m.offset);
            }
            reopening = false;
            // The node starts elsewhere than our part file ends: ask again from our offset.
            if (m.offset !== part.offset) return ask();
            if (part.complete) await complete();
          })
          .catch((err) => fail(err as Error));
      });
      const timer = setInterval(() => {
        const now = Date.now();
        if (finishing) return;
        if (now - lastMove > timeoutMs)
          return fail(
            new CutterError(
              'TIMEOUT',
              `no progress for ${timeoutMs} ms fetching from node ${link.node}: is its agent online (cutter nodes list)?`,
            ),
          );
        if (now - Math.max(lastMove, lastAsk) > stallMs) {
          reopening = Boolean(part);
          ask();
        }
      }, 250);
      const finish = (fn: () => void) => {
        clearInterval(timer);
        offData();
        offControl();
        fn();
      };
      ask();
    });
  } catch (err) {
    await part?.close();
    void link.send({ type: 'abort', xfer }).catch(() => undefined);
    throw err;
  }
}
