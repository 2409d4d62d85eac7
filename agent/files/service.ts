/**
 * The agent's end of file transfer and image sync (protocol: shared/schemas/files.ts).
 *
 * - `put`: receives chunks into `<dest>.cutter-part` (PartFile), acks each written chunk, checks
 *   the SHA-256 and renames onto the destination; a `put` sent again with the same transfer id
 *   (after a dropped connection) is answered with the offset reached, and a new transfer id with
 *   the same destination, size and SHA-256 resumes from the kept part file.
 * - `get`: hashes the file (./hash-cache.ts: cached by path, size and mtime, and filled by a `put`),
 *   answers `meta`, and sends chunks with a window (ChunkPump); a `get` sent again rewinds to the
 *   client's offset.
 * - `image.inspect` / `image.put`: see agent/files/images.ts.
 * Paths go through PathPolicy (allow/deny, realpath); files larger than `maxBytes` are refused.
 */
import { stat } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { encode } from '../../shared/codec.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MessageRouter, MqttClient } from '../../shared/mqtt.js';
import { FileInSchema, FRAME_HEADER_BYTES, decodeFrame, frameInPlace, type FileIn, type FileOut } from '../../shared/schemas/files.js';
import type { Topics } from '../../shared/topics.js';
import { PartFile } from '../../shared/transfer/part-file.js';
import { HashCache } from './hash-cache.js';
import { ChunkPump, TRANSFER_CHUNK_BYTES, TRANSFER_WINDOW_BYTES } from '../../shared/transfer/pump.js';
import { publishChunk } from '../../shared/transfer/publish-chunk.js';
import type { AgentService } from '../service.js';
import type { ImageStore } from './images.js';
import { PathPolicy } from './paths.js';
import { answerStoreRequest, type IoStore, isStoreRequest, pathOf, type VolumeStore } from '../io/requests.js';

/** A transfer nobody touched for this long is closed (a `put`'s part file stays for a resume), ms. */
const IDLE_MS = 5 * 60_000;
const DONE_KEEP = 1000;
/** Most transfers open at once on a node (each holds a file open). */
const MAX_SESSIONS = 32;

export interface FileServiceOptions {
  node: string;
  t: Topics;
  log: Logger;
  allow: string[];
  deny: string[];
  /** Largest file sent or received, bytes. */
  maxBytes: number;
  /** Docker image load/inspect; absent = image sync refused. */
  images?: ImageStore;
  /** Why the node's policy refuses an image name (its allowedImages), or null. */
  imagePolicy?(image: string): string | null;
  /** Where image tarballs are received (default: `$TMPDIR/cutter-images-<node>`). */
  spoolDir?: string;
  /** The node's volumes (`vol.*` requests, `put`/`get` with `volume`); absent = volumes off. */
  volumes?: VolumeStore;
  io?: IoStore; // task inputs and outputs (`io.*` requests, `put`/`get` with `task`; agent/io/); absent = refused
}

interface PutSession {
  kind: 'put';
  client: string;
  part: PartFile;
  /** Set for `image.put`: the image to load once the tarball is complete. */
  image?: string;
  finishing: boolean;
  touched: number;
  started: number;
  startOffset: number;
}

interface GetSession {
  kind: 'get';
  client: string;
  pump: ChunkPump;
  size: number;
  path: string;
  touched: number;
}

type OutBody = FileOut extends infer O ? (O extends FileOut ? Omit<O, 'v'> : never) : never;

/** Maps a thrown error onto an `error` reply's code. */
function codeOf(err: unknown): string {
  if (err instanceof CutterError) {
    return (
      { POLICY_DENIED: 'PATH_DENIED', NOT_FOUND: 'NOT_FOUND', EXECUTOR_DISABLED: 'FILES_DISABLED', INVALID_ARGUMENT: 'BAD_REQUEST' }[
        err.code as string
      ] ?? err.code
    );
  }
  return 'IO_ERROR';
}

export class FileService implements AgentService {
  private client?: MqttClient;
  private readonly policy: PathPolicy;
  private readonly log: Logger;
  private readonly sessions = new Map<string, PutSession | GetSession>();
  /** Final `done` of recent puts, by transfer id: a `put` sent again after its `done` was lost gets it again. */
  private readonly finished = new Map<string, OutBody>();
  private readonly hashes = new HashCache();
  /** Control messages are handled one at a time (they are few; chunks bypass this queue). */
  private queue: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: FileServiceOptions) {
    this.policy = new PathPolicy(opts.allow, opts.deny);
    this.log = opts.log.child({ component: 'files' });
  }

  attach(client: MqttClient, router: MessageRouter): void {
    this.client = client;
    const { t, node } = this.opts;
    router.route(t.filesIn(node, '+'), FileInSchema, (msg, topic) => {
      const parsed = t.parse(topic);
      if (parsed?.kind !== 'filesIn') return;
      const from = parsed.client;
      this.queue = this.queue.then(() => this.onControl(msg, from)).catch((err) => this.log.error({ err }, 'file control failed'));
    });
    client.on('message', (topic, payload) => {
      const parsed = t.parse(topic);
      if (parsed?.kind === 'filesInData' && parsed.node === node)
        void this.onChunk(payload, parsed.client).catch((err) => this.log.warn({ err }, 'chunk failed'));
    });
    client.on('connect', () => {
      for (const s of this.sessions.values()) if (s.kind === 'get') s.pump.kick();
    });
  }

  async start(): Promise<void> {
    await this.client!.subscribeAsync(this.opts.t.filesInData(this.opts.node, '+'), { qos: 0 });
    this.timer = setInterval(() => void this.sweep(), 30_000);
    this.timer.unref();
    this.log.info(
      { allow: this.policy.allow, deny: this.policy.deny, maxBytes: this.opts.maxBytes },
      this.policy.enabled ? 'file transfer enabled' : 'file transfer disabled (no --files-allow)',
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const [xfer, s] of this.sessions) await this.close(xfer, s);
  }

  private reply(client: string, body: OutBody, qos: 0 | 1 = 1): Promise<unknown> {
    return this.client!.publishAsync(this.opts.t.filesOut(this.opts.node, client), encode({ v: 1, ...body }), { qos }).catch((err) =>
      this.log.warn({ err }, 'file reply failed'),
    );
  }

  private async close(xfer: string, s: PutSession | GetSession): Promise<void> {
    this.sessions.delete(xfer);
    if (s.kind === 'put') await s.part.close();
    else await s.pump.close();
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [xfer, s] of this.sessions) {
      if (now - s.touched > IDLE_MS && !(s.kind === 'put' && s.finishing)) {
        this.log.info({ xfer, kind: s.kind }, 'idle file transfer closed');
        await this.close(xfer, s);
      }
    }
  }

  private async onControl(msg: FileIn, from: string): Promise<unknown> {
    const fail = (err: unknown) => {
      const code = codeOf(err);
      this.log.warn({ xfer: msg.xfer, type: msg.type, client: from, code, err }, 'file request refused');
      return this.reply(from, { type: 'error', xfer: msg.xfer, code, message: errorMessage(err) });
    };
    const existing = this.sessions.get(msg.xfer);
    if (existing && existing.client !== from)
      return fail(new CutterError('INVALID_ARGUMENT', `transfer ${msg.xfer} belongs to another client`));
    try {
      if (isStoreRequest(msg)) return await this.reply(from, await answerStoreRequest(this.opts, msg, this.log, from));
      switch (msg.type) {
        case 'put':
        case 'image.put':
          return await this.onPut(msg, from, existing);
        case 'get':
          return await this.onGet(msg, from, existing);
        case 'ack':
          if (existing?.kind === 'get') {
            existing.touched = Date.now();
            existing.pump.ack(msg.offset);
          }
          return;
        case 'done':
          if (existing?.kind === 'get') {
            await this.close(msg.xfer, existing);
            this.log.info(
              {
                xfer: msg.xfer,
                path: existing.path,
                bytes: existing.size,
                ok: msg.ok,
                client: from,
                ...(msg.message ? { message: msg.message } : {}),
              },
              msg.ok ? 'file sent' : 'file send failed at the client',
            );
          }
          return;
        case 'abort':
          if (existing) await this.close(msg.xfer, existing);
          return;
        case 'image.inspect': {
          const id = this.opts.images ? await this.opts.images.inspect(msg.image) : null;
          await this.reply(from, { type: 'image', xfer: msg.xfer, image: msg.image, id, docker: Boolean(this.opts.images) });
          return;
        }
      }
    } catch (err) {
      return fail(err);
    }
  }

  private async onPut(
    msg: Extract<FileIn, { type: 'put' | 'image.put' }>,
    from: string,
    existing: PutSession | GetSession | undefined,
  ): Promise<void> {
    const done = this.finished.get(msg.xfer);
    if (done) {
      await this.reply(from, done);
      return;
    }
    if (existing?.kind === 'put') {
      existing.touched = Date.now();
      if (existing.finishing) return;
      await existing.part.settled();
      this.log.info({ xfer: msg.xfer, path: existing.part.dest, offset: existing.part.offset, client: from }, 'file transfer reopened');
      await this.reply(from, { type: 'ready', xfer: msg.xfer, offset: existing.part.offset, path: existing.part.dest });
      return;
    }
    if (msg.size > this.opts.maxBytes)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `${msg.size} bytes is over this node's limit of ${this.opts.maxBytes} bytes (--files-max-size)`,
      );
    let dest: string;
    if (msg.type === 'image.put') {
      if (!this.opts.images)
        throw new CutterError('EXECUTOR_UNAVAILABLE', `node ${this.opts.node} has no Docker engine to load images into`);
      const refused = this.opts.imagePolicy?.(msg.image);
      if (refused) throw new CutterError('POLICY_DENIED', `refused by node ${this.opts.node}'s policy: ${refused}`);
      const spool = this.opts.spoolDir ?? join(tmpdir(), `cutter-images-${this.opts.node}`);
      mkdirSync(spool, { recursive: true, mode: 0o700 });
      dest = join(spool, `${msg.sha256}.tar`);
    } else {
      dest = await pathOf('write', msg, this.opts, this.policy, from);
      if ((await stat(dest).catch(() => null))?.isDirectory())
        throw new CutterError('INVALID_ARGUMENT', `${msg.path} is a directory on this node: end the path with / to copy into it`);
    }
    if (this.sessions.size >= MAX_SESSIONS)
      throw new CutterError('NODE_BUSY', `node ${this.opts.node} has ${this.sessions.size} transfers open: try again later`);
    // The same content again (a copy run again after its CLI died) takes over the part file; other content is refused.
    for (const [other, s] of this.sessions) {
      if (s.kind !== 'put' || s.part.dest !== dest) continue;
      if (s.finishing || s.part.size !== msg.size || s.part.sha256 !== msg.sha256)
        throw new CutterError('INVALID_ARGUMENT', `${dest} is being received by another transfer`);
      await this.close(other, s);
    }
    const part = await PartFile.open(dest, msg.size, msg.sha256, msg.type === 'put' ? msg.mode : 0o600);
    const session: PutSession = {
      kind: 'put',
      client: from,
      part,
      finishing: false,
      touched: Date.now(),
      started: Date.now(),
      startOffset: part.offset,
      ...(msg.type === 'image.put' ? { image: msg.image } : {}),
    };
    this.sessions.set(msg.xfer, session);
    this.log.info(
      { xfer: msg.xfer, path: dest, size: msg.size, offset: part.offset, client: from, ...(session.image ? { image: session.image } : {}) },
      part.offset > 0 ? 'file transfer resumed from a partial file' : 'file transfer started',
    );
    await this.reply(from, { type: 'ready', xfer: msg.xfer, offset: part.offset, path: dest });
    if (part.complete) void this.finishPut(msg.xfer, session);
  }

  private async onChunk(payload: Buffer, from: string): Promise<void> {
    const frame = decodeFrame(payload);
    if (!frame) {
      this.log.warn({ bytes: payload.length, client: from }, 'dropped invalid chunk frame');
      return;
    }
    const s = this.sessions.get(frame.xfer);
    if (s?.kind !== 'put' || s.client !== from || s.finishing) return;
    s.touched = Date.now();
    this.opts.io?.received(s.part.dest);
    const offset = await s.part.write(frame.offset, frame.data);
    if (offset === null) return;
    void this.reply(from, { type: 'ack', xfer: frame.xfer, offset }, 0);
    if (s.part.complete) await this.finishPut(frame.xfer, s);
  }

  private async finishPut(xfer: string, s: PutSession): Promise<void> {
    if (s.finishing) return;
    s.finishing = true;
    let body: OutBody;
    try {
      const { ok, sha256 } = await s.part.finish();
      if (!ok) {
        body = {
          type: 'done',
          xfer,
          ok: false,
          sha256,
          message: `SHA-256 mismatch: received ${sha256}, expected ${s.part.sha256}; the partial file was deleted, send it again`,
        };
      } else if (s.image) {
        try {
          const imageId = await this.opts.images!.load(s.part.dest, s.image);
          body = { type: 'done', xfer, ok: true, sha256, imageId, path: s.part.dest };
        } catch (err) {
          body = { type: 'done', xfer, ok: false, sha256, message: `docker load failed: ${errorMessage(err)}` };
        }
        await this.opts.images!.discard(s.part.dest);
      } else {
        body = { type: 'done', xfer, ok: true, sha256, path: s.part.dest };
        await this.hashes.remember(s.part.dest, sha256);
      }
    } catch (err) {
      body = { type: 'done', xfer, ok: false, message: `cannot finish ${s.part.dest}: ${errorMessage(err)}` };
    }
    this.sessions.delete(xfer);
    this.finished.set(xfer, body);
    if (this.finished.size > DONE_KEEP) this.finished.delete(this.finished.keys().next().value!);
    const ms = Date.now() - s.started;
    this.log.info(
      {
        xfer,
        path: s.part.dest,
        size: s.part.size,
        resumedFrom: s.startOffset,
        ok: body.type === 'done' && body.ok,
        ms,
        client: s.client,
        ...(s.image ? { image: s.image } : {}),
      },
      'file received',
    );
    await this.reply(s.client, body);
  }

  private async onGet(msg: Extract<FileIn, { type: 'get' }>, from: string, existing: PutSession | GetSession | undefined): Promise<void> {
    if (existing?.kind === 'get') {
      existing.touched = Date.now();
      const { sha256 } = await this.hashes.of(existing.path);
      const offset = msg.ifSha256 === sha256 && msg.offset <= existing.size ? msg.offset : 0;
      await this.reply(from, { type: 'meta', xfer: msg.xfer, size: existing.size, sha256, offset, path: existing.path });
      this.log.info({ xfer: msg.xfer, path: existing.path, offset }, 'file send resumed');
      existing.pump.rewind(offset);
      return;
    }
    if (this.sessions.size >= MAX_SESSIONS)
      throw new CutterError('NODE_BUSY', `node ${this.opts.node} has ${this.sessions.size} transfers open: try again later`);
    const path = await pathOf('read', msg, this.opts, this.policy, from);
    const st = await stat(path);
    if (!st.isFile()) throw new CutterError('INVALID_ARGUMENT', `${msg.path} is not a regular file`);
    if (st.size > this.opts.maxBytes)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `${msg.path} is ${st.size} bytes, over this node's limit of ${this.opts.maxBytes} bytes (--files-max-size)`,
      );
    const { size, sha256 } = await this.hashes.of(path);
    const offset = msg.ifSha256 === sha256 && msg.offset <= size ? msg.offset : 0;
    const client = this.client!;
    const topic = this.opts.t.filesOutData(this.opts.node, from);
    const pump = new ChunkPump({
      path,
      size,
      chunkBytes: TRANSFER_CHUNK_BYTES,
      windowBytes: TRANSFER_WINDOW_BYTES,
      headroom: FRAME_HEADER_BYTES,
      // While disconnected nothing is sent (MQTT.js would queue QoS 0 chunks and replay stale ones).
      send: (off, chunk) => publishChunk(client, topic, frameInPlace(msg.xfer, off, chunk)),
    });
    this.sessions.set(msg.xfer, { kind: 'get', client: from, pump, size, path, touched: Date.now() });
    this.log.info({ xfer: msg.xfer, path, size, offset, client: from }, offset > 0 ? 'file send resumed' : 'file send started');
    await this.reply(from, { type: 'meta', xfer: msg.xfer, size, sha256, offset, path });
    await pump.start(offset);
  }
}
