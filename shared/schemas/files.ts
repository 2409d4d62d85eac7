/**
 * File transfer between a client (the CLI) and one agent, directly over MQTT (the controller is
 * not in the data path; it only audits the control messages).
 *
 * Topics (shared/topics.ts), for node N and client C (the CLI's MQTT client id):
 * - `nodes/N/files/in/C`       client → agent, JSON `FileIn` (QoS 1)
 * - `nodes/N/files/in/C/data`  client → agent, binary chunk frames (QoS 0), for `put`
 * - `nodes/N/files/out/C`      agent → client, JSON `FileOut` (QoS 1)
 * - `nodes/N/files/out/C/data` agent → client, binary chunk frames (QoS 0), for `get`
 *
 * Chunk frame (binary, not JSON): byte 0 = frame version 1; bytes 1-16 = the transfer id (16 raw
 * bytes, the 32 hex characters of `xfer`); bytes 17-24 = the chunk's offset in the file, unsigned
 * 64-bit big-endian; the rest = the chunk's bytes (at most `MAX_CHUNK_BYTES`, well under the
 * broker's 4 MiB packet limit).
 *
 * Flow control: the sender keeps at most a window of unacknowledged bytes in flight; the receiver
 * writes chunks strictly in order and acknowledges the contiguous offset it has written (`ack`).
 * A chunk at any other offset is dropped. When acks stop (a dropped connection), the driving side
 * (the CLI) sends its `put`/`get` again with the same `xfer`, and the transfer resumes from the
 * receiver's offset: for `put` the agent keeps `<path>.cutter-part` (and a `.json` sidecar with
 * the size and SHA-256) across reconnects and restarts; for `get` the CLI keeps its own.
 * When all bytes are written the receiver checks the SHA-256 of the whole file and answers `done`.
 */
import { z } from 'zod';
import { VolumeNameSchema } from '../volumes.js';
import { VolumeInSchemas, VolumeOutSchemas } from './volumes.js';
import { IoFileFields, IoInSchemas, IoOutSchemas } from './io.js';

/** Transfer id: 32 lowercase hex characters (16 random bytes). */
export const XferIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters');
const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');
/** A path on the node: absolute, or relative to the node's first allowed directory. */
const PathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\0'), 'must not contain NUL');
const Offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Largest chunk a frame may carry, bytes. */
export const MAX_CHUNK_BYTES = 1024 * 1024;
/** Bytes of a chunk frame before the data. */
export const FRAME_HEADER_BYTES = 25;

/** Client → agent control messages. */
export const FileInSchema = z.discriminatedUnion('type', [
  /** Start or resume sending a file to the node; answered `ready` (offset to send from), `done` or `error`. */
  z.object({
    v: z.literal(1),
    type: z.literal('put'),
    xfer: XferIdSchema,
    path: PathSchema,
    size: Offset,
    sha256: Sha256Schema,
    mode: z.number().int().min(0).max(0o7777).optional(),
    /** Into this volume of the node: `path` is then relative to the volume (no `..`), parent directories are created. */
    volume: VolumeNameSchema.optional(),
    /** A task's input content (shared/schemas/io.ts): into the node's cache under `sha256`; `path` is then ignored. */
    ...IoFileFields,
  }),
  /** Start or resume reading a file from the node from `offset` (kept only when `ifSha256` still matches); answered `meta` or `error`. */
  z.object({
    v: z.literal(1),
    type: z.literal('get'),
    xfer: XferIdSchema,
    path: PathSchema,
    offset: Offset,
    ifSha256: Sha256Schema.optional(),
    /** From this volume of the node: `path` is then relative to the volume. */
    volume: VolumeNameSchema.optional(),
    /** A task's output file (shared/schemas/io.ts): `path` is then inside output `output` of that attempt. */
    ...IoFileFields,
  }),
  /** Receiver's contiguous written offset (for `get`, the client is the receiver). */
  z.object({ v: z.literal(1), type: z.literal('ack'), xfer: XferIdSchema, offset: Offset }),
  /** The client checked a `get` file's SHA-256: the agent may forget the transfer. */
  z.object({ v: z.literal(1), type: z.literal('done'), xfer: XferIdSchema, ok: z.boolean(), message: z.string().max(500).optional() }),
  /** The client gives up; a `put`'s partial file is kept for a later resume. */
  z.object({ v: z.literal(1), type: z.literal('abort'), xfer: XferIdSchema }),
  /** Image sync: which image id the node's Docker engine has for `image` (answered `image`). */
  z.object({ v: z.literal(1), type: z.literal('image.inspect'), xfer: XferIdSchema, image: z.string().min(1).max(512) }),
  /** Image sync: receive a `docker save` tarball and `docker load` it (answered like `put`; `done` carries the loaded image id). */
  z.object({
    v: z.literal(1),
    type: z.literal('image.put'),
    xfer: XferIdSchema,
    image: z.string().min(1).max(512),
    size: Offset,
    sha256: Sha256Schema,
  }),
  ...VolumeInSchemas,
  ...IoInSchemas,
]);
export type FileIn = z.infer<typeof FileInSchema>;

/** Agent → client control messages. */
export const FileOutSchema = z.discriminatedUnion('type', [
  /** Send `put` bytes from `offset` (> 0 when a partial file was kept). `path` is the resolved destination. */
  z.object({ v: z.literal(1), type: z.literal('ready'), xfer: XferIdSchema, offset: Offset, path: z.string().max(4096) }),
  /** The file a `get` reads: its size and SHA-256, and the offset chunks start from. */
  z.object({
    v: z.literal(1),
    type: z.literal('meta'),
    xfer: XferIdSchema,
    size: Offset,
    sha256: Sha256Schema,
    offset: Offset,
    path: z.string().max(4096),
  }),
  /** Receiver's contiguous written offset (for `put`, the agent is the receiver). */
  z.object({ v: z.literal(1), type: z.literal('ack'), xfer: XferIdSchema, offset: Offset }),
  /** A `put` is complete: SHA-256 checked (`ok`), file in place; for `image.put`, loaded (`imageId`). */
  z.object({
    v: z.literal(1),
    type: z.literal('done'),
    xfer: XferIdSchema,
    ok: z.boolean(),
    sha256: Sha256Schema.optional(),
    path: z.string().max(4096).optional(),
    imageId: z.string().max(200).optional(),
    message: z.string().max(2000).optional(),
  }),
  /** The image id the node has for `image`, or null. */
  z.object({
    v: z.literal(1),
    type: z.literal('image'),
    xfer: XferIdSchema,
    image: z.string().max(512),
    id: z.string().max(200).nullable(),
    docker: z.boolean(),
  }),
  /** Refused or failed: `code` FILES_DISABLED, PATH_DENIED, NOT_FOUND, TOO_LARGE, BAD_REQUEST, IO_ERROR, CHECKSUM_MISMATCH, DOCKER_ERROR. */
  z.object({ v: z.literal(1), type: z.literal('error'), xfer: XferIdSchema, code: z.string().max(64), message: z.string().max(2000) }),
  ...VolumeOutSchemas,
  ...IoOutSchemas,
]);
export type FileOut = z.infer<typeof FileOutSchema>;

/** Builds a chunk frame (see the file comment), copying `data` after the header. */
export function encodeFrame(xfer: string, offset: number, data: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + data.length);
  data.copy(frame, FRAME_HEADER_BYTES);
  return frameInPlace(xfer, offset, frame);
}

/**
 * Makes a chunk frame of `frame` without copying its data: writes the header into its first
 * FRAME_HEADER_BYTES bytes, which the caller left free (ChunkPump's `headroom`), the data
 * already following them.
 * @returns `frame` itself.
 */
export function frameInPlace(xfer: string, offset: number, frame: Buffer): Buffer {
  frame[0] = 1;
  frame.write(xfer, 1, 16, 'hex');
  frame.writeBigUInt64BE(BigInt(offset), 17);
  return frame;
}

/** Parses a chunk frame. @returns null when it is not a valid version-1 frame. */
export function decodeFrame(frame: Buffer): { xfer: string; offset: number; data: Buffer } | null {
  if (frame.length < FRAME_HEADER_BYTES || frame[0] !== 1) return null;
  if (frame.length - FRAME_HEADER_BYTES > MAX_CHUNK_BYTES) return null;
  const offset = frame.readBigUInt64BE(17);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { xfer: frame.toString('hex', 1, 17), offset: Number(offset), data: frame.subarray(FRAME_HEADER_BYTES) };
}
