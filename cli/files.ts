/**
 * The CLI's end of file transfer (protocol: shared/schemas/files.ts): `putFile` sends a local
 * file to a node, `getFile` fetches one. The CLI drives both: when acks (put) or chunks (get)
 * stop for `stallMs` — a dropped connection, a frozen agent — it sends its `put`/`get` again with
 * the same transfer id, and the transfer resumes from the receiver's offset, not from 0.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { encode } from '../shared/codec.js';
import { decode } from '../shared/codec.js';
import { CutterError } from '../shared/errors.js';
import type { MqttClient } from '../shared/mqtt.js';
import { FileOutSchema, decodeFrame, encodeFrame, type FileIn, type FileOut } from '../shared/schemas/files.js';
import type { Topics } from '../shared/topics.js';
import { sha256File } from '../shared/transfer/hash.js';
import { PART_SUFFIX, PartFile } from '../shared/transfer/part-file.js';
import { ChunkPump } from '../shared/transfer/pump.js';
import { publishChunk } from '../shared/transfer/publish-chunk.js';

/** Tunables of one transfer. */
export interface TransferOptions {
  /** Bytes per chunk (default 512 KiB). */
  chunkBytes?: number;
  /** Most unacknowledged bytes (default 8 chunks). */
  windowBytes?: number;
  /** Silence after which the request is sent again (resume), ms (default 3000). */
  stallMs?: number;
  /** Silence after which the transfer fails, ms (default 120000). */
  timeoutMs?: number;
  /** Called with the bytes the receiver has written. */
  onProgress?: (bytes: number, total: number) => void;
}

/** What a finished transfer reports (`cutter cp --json`). */
export interface TransferResult {
  direction: 'put' | 'get';
  node: string;
  /** Path on the node, as the agent resolved it. */
  remotePath: string;
  localPath: string;
  bytes: number;
  sha256: string;
  ms: number;
  /** Offsets the transfer resumed from after a stall (empty when it never stalled); the first transfer's start is `startOffset`. */
  resumedFrom: number[];
  /** Offset the first request started from (> 0 when a partial file was kept from an earlier run). */
  startOffset: number;
  /** Chunk bytes sent over the wire by this side (put) or received and written (get). */
  wireBytes: number;
  /** For image pushes: the id the node's engine loaded. */
  imageId?: string;
}

/** The client's side of the topics for one node. */
export class FileLink {
  private readonly controlHandlers = new Set<(m: FileOut) => void>();
  private readonly dataHandlers = new Set<(frame: Buffer) => void>();
  private readonly onMessage = (topic: string, payload: Buffer) => {
    if (topic === this.t.filesOut(this.node, this.clientId)) {
      const d = decode(FileOutSchema, payload);
      if (d.ok) for (const h of this.controlHandlers) h(d.value);
    } else if (topic === this.t.filesOutData(this.node, this.clientId)) {
      for (const h of this.dataHandlers) h(payload);
    }
  };

  constructor(
    readonly mqtt: MqttClient,
    readonly t: Topics,
    readonly node: string,
    readonly clientId: string,
  ) {}

  /** Subscribes to the node's replies and chunks for this client. */
  async open(): Promise<void> {
    this.mqtt.on('message', this.onMessage);
    await this.mqtt.subscribeAsync(this.t.filesOut(this.node, this.clientId), { qos: 1 });
    await this.mqtt.subscribeAsync(this.t.filesOutData(this.node, this.clientId), { qos: 0 });
  }

  async close(): Promise<void> {
    this.mqtt.off('message', this.onMessage);
    await this.mqtt
      .unsubscribeAsync([this.t.filesOut(this.node, this.clientId), this.t.filesOutData(this.node, this.clientId)])
      .catch(() => undefined);
  }

  /** Sends a control message (QoS 1; QoS 0 for acks, which are superseded by the next). */
  send(body: FileIn extends infer I ? (I extends FileIn ? Omit<I, 'v'> : never) : never): Promise<unknown> {
    if (!this.mqtt.connected && body.type === 'ack') return Promise.resolve();
    return this.mqtt.publishAsync(this.t.filesIn(this.node, this.clientId), encode({ v: 1, ...body }), {
      qos: body.type === 'ack' ? 0 : 1,
    });
  }

  /** Sends a chunk frame (QoS 0). @returns false while disconnected (nothing sent). */
  sendChunk(xfer: string, offset: number, data: Buffer): Promise<boolean> {
    return publishChunk(this.mqtt, this.t.filesInData(this.node, this.clientId), encodeFrame(xfer, offset, data));
  }

  onControl(h: (m: FileOut) => void): () => void {
    this.controlHandlers.add(h);
    return () => this.controlHandlers.delete(h);
  }

  onData(h: (frame: Buffer) => void): () => void {
    this.dataHandlers.add(h);
    return () => this.dataHandlers.delete(h);
  }

  /**
   * Asks once (retrying every `stallMs` up to `timeoutMs`) and resolves with the first reply of
   * `xfer` that `accept` takes. @throws CutterError for an `error` reply or the timeout.
   */
  async ask<T extends FileOut>(
    body: Parameters<FileLink['send']>[0],
    accept: (m: FileOut) => m is T,
    stallMs = 3000,
    timeoutMs = 30_000,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const off = this.onControl((m) => {
        if (m.xfer !== body.xfer) return;
        if (m.type === 'error') finish(() => reject(new CutterError(errorCode(m.code), `node ${this.node}: ${m.message}`)));
        else if (accept(m)) finish(() => resolve(m));
      });
      const timer = setInterval(() => {
        if (Date.now() > deadline)
          finish(() =>
            reject(
              new CutterError(
                'TIMEOUT',
                `node ${this.node} did not answer within ${timeoutMs} ms: is its agent online (cutter nodes list)?`,
              ),
            ),
          );
        else void this.send(body).catch(() => undefined);
      }, stallMs);
      const finish = (fn: () => void) => {
        clearInterval(timer);
        off();
        fn();
      };
      void this.send(body).catch(() => undefined);
    });
  }
}

/** Maps an agent's error code onto a CLI error code. */
export function errorCode(
  code: string,
): 'POLICY_DENIED' | 'NOT_FOUND' | 'EXECUTOR_DISABLED' | 'INVALID_ARGUMENT' | 'EXECUTOR_UNAVAILABLE' | 'INTERNAL' {
  switch (code) {
    case 'PATH_DENIED':
      return 'POLICY_DENIED';
    case 'NOT_FOUND':
      return 'NOT_FOUND';
    case 'FILES_DISABLED':
      return 'EXECUTOR_DISABLED';
    case 'BAD_REQUEST':
    case 'TOO_LARGE':
      return 'INVALID_ARGUMENT';
    case 'EXECUTOR_UNAVAILABLE':
      return 'EXECUTOR_UNAVAILABLE';
    default:
      return 'INTERNAL';
  }
}

const newXfer = () => randomBytes(16).toString('hex');

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
  const chunkBytes = opts.chunkBytes ?? 512 * 1024;
  const windowBytes = opts.windowBytes ?? 8 * chunkBytes;
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
      ? ({ type: 'put', xfer, path: target.remotePath, size, sha256, ...(target.mode !== undefined ? { mode: target.mode } : {}) } as const)
      : ({ type: 'image.put', xfer, image: target.image, size, sha256 } as const);
  const pump = new ChunkPump({
    path: localPath,
    size,
    chunkBytes,
    windowBytes,
    send: (offset, data) => link.sendChunk(xfer, offset, data),
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
      .send({ type: 'get', xfer, path: remotePath, offset: at, ...(meta ? { ifSha256: meta.sha256 } : ifSha256 ? { ifSha256 } : {}) })
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
