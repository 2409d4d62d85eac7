/**
 * `putFile`: the CLI sends a local file (or an image tarball) to a node. When acks stop for
 * `stallMs` (a dropped connection, a frozen agent) it sends its `put` again with the same transfer
 * id, and the node answers with the offset it has: the transfer resumes from there, not from 0.
 */
import { stat } from 'node:fs/promises';
import { CutterError } from '../../shared/errors.js';
import { FRAME_HEADER_BYTES } from '../../shared/schemas/files.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { ChunkPump, TRANSFER_CHUNK_BYTES, TRANSFER_WINDOW_BYTES } from '../../shared/transfer/pump.js';
import { type FileLink, errorCode } from '../../shared/transfer/link.js';
import { newXfer, type TransferOptions, type TransferResult } from '../../shared/transfer/transfer.js';

/**
 * Sends `localPath` to the node: as a file at `remotePath` (`kind: 'put'`), or as an image
 * tarball the node `docker load`s (`kind: 'image.put'`, `image` its name).
 * @throws CutterError: the node's refusal (POLICY_DENIED, NOT_FOUND, EXECUTOR_DISABLED,
 *   INVALID_ARGUMENT), INTERNAL on a SHA-256 mismatch, TIMEOUT when nothing moves for `timeoutMs`.
 */
export async function putFile(
  link: FileLink,
  localPath: string,
  target: { kind: 'put'; remotePath: string; mode?: number } | { kind: 'image.put'; image: string },
  opts: TransferOptions = {},
): Promise<TransferResult> {
  const chunkBytes = opts.chunkBytes ?? TRANSFER_CHUNK_BYTES;
  const windowBytes = opts.windowBytes ?? TRANSFER_WINDOW_BYTES;
  const stallMs = opts.stallMs ?? 3000;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const st = await stat(localPath).catch(() => {
    throw new CutterError('NOT_FOUND', `no such local file: ${localPath}`);
  });
  if (!st.isFile()) throw new CutterError('INVALID_ARGUMENT', `${localPath} is not a regular file`);
  const size = st.size;
  const sha256 = await sha256File(localPath, size);
  const xfer = newXfer();
  const started = Date.now();
  const request =
    target.kind === 'put'
      ? ({
          type: 'put',
          xfer,
          path: target.remotePath,
          size,
          sha256,
          ...(target.mode !== undefined ? { mode: target.mode } : {}),
          ...(opts.volume !== undefined ? { volume: opts.volume } : {}),
          ...(opts.task ? { task: opts.task.id, attempt: opts.task.attempt } : {}),
        } as const)
      : ({ type: 'image.put', xfer, image: target.image, size, sha256 } as const);
  const pump = new ChunkPump({
    path: localPath,
    size,
    chunkBytes,
    windowBytes,
    headroom: FRAME_HEADER_BYTES,
    send: (offset, chunk) => link.sendChunk(xfer, offset, chunk),
  });
  const resumedFrom: number[] = [];
  let startOffset = -1;
  let remotePath = target.kind === 'put' ? target.remotePath : '';
  let lastMove = Date.now();
  let lastAsk = Date.now();
  let reopening = false;
  try {
    return await new Promise<TransferResult>((resolve, reject) => {
      const fail = (err: Error) => finish(() => reject(err));
      const off = link.onControl((m) => {
        if (m.xfer !== xfer) return;
        switch (m.type) {
          case 'ready':
            remotePath = m.path;
            lastMove = Date.now();
            if (startOffset < 0) {
              startOffset = m.offset;
              opts.onProgress?.(m.offset, size);
              pump.start(m.offset).catch(fail);
            } else {
              if (reopening) resumedFrom.push(m.offset);
              reopening = false;
              pump.rewind(m.offset);
            }
            return;
          case 'ack':
            if (m.offset > pump.acked) lastMove = Date.now();
            pump.ack(m.offset);
            opts.onProgress?.(m.offset, size);
            return;
          case 'done':
            if (!m.ok) return fail(new CutterError('INTERNAL', `node ${link.node}: ${m.message ?? 'transfer failed'}`));
            opts.onProgress?.(size, size);
            return finish(() =>
              resolve({
                direction: 'put',
                node: link.node,
                remotePath: m.path ?? remotePath,
                localPath,
                bytes: size,
                sha256: m.sha256 ?? sha256,
                ms: Date.now() - started,
                resumedFrom,
                startOffset: Math.max(0, startOffset),
                wireBytes: pump.sentBytes,
                ...(m.imageId ? { imageId: m.imageId } : {}),
              }),
            );
          case 'error':
            return fail(new CutterError(errorCode(m.code), `node ${link.node}: ${m.message}`));
          default:
            return;
        }
      });
      const timer = setInterval(() => {
        const now = Date.now();
        if (now - lastMove > timeoutMs)
          return fail(
            new CutterError(
              'TIMEOUT',
              `no progress for ${timeoutMs} ms sending to node ${link.node}: is its agent online (cutter nodes list)?`,
            ),
          );
        // No ack (or no answer) for a while: ask again; the node answers with its offset.
        if (now - Math.max(lastMove, lastAsk) > stallMs) {
          lastAsk = now;
          reopening = startOffset >= 0;
          void link.send(request).catch(() => undefined);
        }
      }, 250);
      const finish = (fn: () => void) => {
        clearInterval(timer);
        off();
        fn();
      };
      void link.send(request).catch(fail);
    });
  } catch (err) {
    void link.send({ type: 'abort', xfer }).catch(() => undefined);
    throw err;
  } finally {
    await pump.close();
  }
}
