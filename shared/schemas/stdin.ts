/**
 * A task's stdin over MQTT (`cutter run -i`): the client streams its stdin to the agent that runs
 * the task's attempt, the agent writes it to the container's attached stdin (docker) or the
 * process's stdin pipe (exec), in order, and closes it at EOF.
 *
 * Topics (shared/topics.ts), for node N and task T:
 * - `nodes/N/stdin/T`      client → agent, binary frames (QoS 1). Only T's submitter (or the
 *   controller) may publish there (broker/acl.ts, SECURITY.md).
 * - `nodes/N/stdin/T/ack`  agent → client, JSON `StdinAck` (QoS 1).
 *
 * Frame (binary, not JSON): byte 0 = frame version 1; byte 1 = flags (bit 0: EOF after this
 * frame's data; bit 1: a window size, not stream data — see below); bytes 2-5 = the attempt, unsigned 32-bit big-endian; bytes 6-13 = the offset of
 * the frame's first byte in the stdin stream, unsigned 64-bit big-endian (the sequence number:
 * frames are taken strictly in order); the rest = at most `MAX_STDIN_CHUNK` bytes of data. An EOF
 * frame may carry no data; its offset is then the stream's length. A window-size frame (`-t`, the
 * terminal was resized) carries 4 bytes, rows then columns, each unsigned 16-bit big-endian; it
 * takes no place in the stream (its offset is the stream offset it was sent at, and is not checked).
 *
 * Flow control: the client keeps at most `STDIN_WINDOW` bytes sent beyond the last `written` the
 * agent acknowledged, so the agent holds at most a window (plus one frame) per task however fast the
 * producer is; the agent drops a frame beyond that, and a frame at any offset but the next one, and
 * then asks once (`resend`) for the bytes from `next` again. Bytes already taken are skipped when
 * they come again.
 */
import { z } from 'zod';

/** Largest data a stdin frame may carry, bytes. */
export const MAX_STDIN_CHUNK = 64 * 1024;
/** Bytes of a stdin frame before the data. */
export const STDIN_HEADER_BYTES = 14;
/** Most bytes a client keeps in flight beyond the agent's `written`, bytes. */
export const STDIN_WINDOW = 1024 * 1024;

const Offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Why an agent takes no (more) stdin for an attempt. */
export const StdinClosedSchema = z.enum([
  /** The attempt is not running on this node, or was not started with -i. */
  'not-attached',
  /** The task's process closed its stdin or exited (EPIPE); what it did not read is gone. */
  'closed-by-task',
  /** The attempt ended. */
  'ended',
]);

/** Agent → client on `nodes/N/stdin/T/ack`. */
export const StdinAckSchema = z.object({
  v: z.literal(1),
  attempt: z.number().int().positive(),
  /** Bytes the task's stdin has taken (handed to the process or container), from the start. */
  written: Offset,
  /** The offset the agent takes next (≥ written: the rest is queued for writing). */
  next: Offset,
  /** A frame was dropped (out of order, or beyond the window): send again from `next`. */
  resend: z.boolean().optional(),
  /** EOF reached the task: its stdin is closed after `written` bytes. */
  eof: z.boolean().optional(),
  /** The agent takes no (more) stdin for this attempt, and why (`message` says it for a user). */
  closed: StdinClosedSchema.optional(),
  message: z.string().max(500).optional(),
});
export type StdinAck = z.infer<typeof StdinAckSchema>;
export type StdinClosed = z.infer<typeof StdinClosedSchema>;

/** One decoded stdin frame. */
export interface StdinFrame {
  attempt: number;
  /** Offset of `data`'s first byte in the stream. */
  offset: number;
  /** The stream ends after this frame's data. */
  eof: boolean;
  data: Buffer;
  /** A window-size frame (`-t`): the terminal's size, not stream data (`data` is empty then). */
  size?: { rows: number; cols: number };
}

/**
 * Builds a stdin frame (see the file comment).
 * @throws RangeError when `data` is longer than MAX_STDIN_CHUNK or the attempt or offset is out of range.
 */
export function encodeStdinFrame(f: StdinFrame): Buffer {
  if (f.data.length > MAX_STDIN_CHUNK) throw new RangeError(`stdin frame of ${f.data.length} bytes > ${MAX_STDIN_CHUNK}`);
  const data = f.size ? Buffer.alloc(4) : f.data;
  if (f.size) {
    data.writeUInt16BE(f.size.rows, 0);
    data.writeUInt16BE(f.size.cols, 2);
  }
  const frame = Buffer.allocUnsafe(STDIN_HEADER_BYTES + data.length);
  frame[0] = 1;
  frame[1] = f.size ? 2 : f.eof ? 1 : 0;
  frame.writeUInt32BE(f.attempt, 2);
  frame.writeBigUInt64BE(BigInt(f.offset), 6);
  data.copy(frame, STDIN_HEADER_BYTES);
  return frame;
}

/** Parses a stdin frame. @returns null when it is not a valid version-1 frame (never throws). */
export function decodeStdinFrame(frame: Buffer): StdinFrame | null {
  if (frame.length < STDIN_HEADER_BYTES || frame[0] !== 1 || frame[1] > 2) return null;
  if (frame.length - STDIN_HEADER_BYTES > MAX_STDIN_CHUNK) return null;
  const attempt = frame.readUInt32BE(2);
  const offset = frame.readBigUInt64BE(6);
  if (attempt < 1 || offset > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  if (frame[1] === 2) {
    if (frame.length !== STDIN_HEADER_BYTES + 4) return null;
    const size = { rows: frame.readUInt16BE(STDIN_HEADER_BYTES), cols: frame.readUInt16BE(STDIN_HEADER_BYTES + 2) };
    return { attempt, offset: Number(offset), eof: false, data: Buffer.alloc(0), size };
  }
  return { attempt, offset: Number(offset), eof: frame[1] === 1, data: frame.subarray(STDIN_HEADER_BYTES) };
}
