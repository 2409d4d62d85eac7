/**
 * Task output as a binary frame on `tasks/T/events`: the `log` event's fields as a small JSON
 * header, then the output bytes as the task wrote them. Against a JSON event with base64 `data`
 * it spares the agent the base64 and JSON of every batch, each reader the JSON parse and base64
 * decode, and the broker a third of the bytes (profile: bench/profile.md, "100 MB of stdout").
 *
 * Frame: byte 0 = 0x00 (never the first byte of a JSON text, so a reader tells the two apart by
 * it); byte 1 = frame version 1; bytes 2-3 = the header's length H, unsigned 16-bit big-endian
 * (at most LOG_FRAME_MAX_HEADER); bytes 4 to 4+H = the header, UTF-8 JSON of the event without
 * `data` and `encoding` (`{"v":1,"taskId":…,"attempt":…,"node":…,"seq":…,"ts":…,"type":"log",
 * "stream":"stdout"}`); the rest = the output bytes, at most MAX_LOG_EVENT_BYTES.
 *
 * An agent sends frames only for an attempt whose assignment says the controller reads them
 * (`outputFrames`); JSON events (base64 `data`) stay valid everywhere. A decoded frame is a
 * `LogEvent` like any other: `encoding: 'base64'`, and `data` computed from the bytes only when
 * something reads it (JSON for a reply, `--json`); `logBytes` and `logSize` take the bytes as
 * they came, without encoding them.
 */
import { type Decoded, decode } from './codec.js';
import { type LogEvent, MAX_LOG_EVENT_BYTES } from './log-data.js';
import { type JsonLimits, LIMITS } from './limits.js';
import { LogEventSchema, type TaskEvent, TaskEventSchema } from './schemas/task.js';

/** Most bytes of a frame's JSON header. */
export const LOG_FRAME_MAX_HEADER = 1_024;
/** Bytes of a frame before its header. */
const PREFIX = 4;
const HEADER_LIMITS: JsonLimits = { maxBytes: LOG_FRAME_MAX_HEADER, maxDepth: 2, maxArray: 0, maxString: 256, maxKeys: 16 };

/** A frame's header: the log event without its output. */
const LogHeaderSchema = LogEventSchema.omit({ data: true, encoding: true });

/** The output bytes of a decoded frame's event (or one built by `frameEvent`), and the frame itself when decoded from one. */
const rawBytes = new WeakMap<object, { bytes: Buffer; frame?: Buffer }>();

/** The bytes a log event was built from without base64 (a frame), if it was. */
export function frameBytes(e: object): Buffer | undefined {
  return rawBytes.get(e)?.bytes;
}

/** The envelope and stream of a log event: what a frame's header holds. */
export type LogHeader = Omit<LogEvent, 'data' | 'encoding'>;

/**
 * A `log` event holding `bytes` as they are: `data` (base64) is computed when read, so JSON of
 * the event is the same as for a JSON event; `logBytes` returns `bytes` itself.
 */
export function frameEvent(header: LogHeader, bytes: Buffer, frame?: Buffer): LogEvent {
  const e = { ...header, encoding: 'base64' } as LogEvent;
  let data: string | undefined;
  Object.defineProperty(e, 'data', {
    enumerable: true,
    get: () => (data ??= bytes.toString('base64')),
  });
  rawBytes.set(e, { bytes, frame });
  return e;
}

/**
 * Builds the frame of one batch of output: `bytes`, or the parts it is made of, joined (the frame's
 * one copy of them).
 * @throws RangeError when the output exceeds MAX_LOG_EVENT_BYTES or the header LOG_FRAME_MAX_HEADER.
 */
export function encodeLogFrame(header: LogHeader, bytes: Uint8Array | readonly Uint8Array[]): Buffer {
  const parts = bytes instanceof Uint8Array ? [bytes] : bytes;
  const size = parts.reduce((n, p) => n + p.length, 0);
  if (size > MAX_LOG_EVENT_BYTES) throw new RangeError(`log frame of ${size} bytes > ${MAX_LOG_EVENT_BYTES}`);
  const head = Buffer.from(JSON.stringify(header));
  if (head.length > LOG_FRAME_MAX_HEADER) throw new RangeError(`log frame header of ${head.length} bytes > ${LOG_FRAME_MAX_HEADER}`);
  const frame = Buffer.allocUnsafe(PREFIX + head.length + size);
  frame[0] = 0;
  frame[1] = 1;
  frame.writeUInt16BE(head.length, 2);
  head.copy(frame, PREFIX);
  let at = PREFIX + head.length;
  for (const p of parts) {
    frame.set(p, at);
    at += p.length;
  }
  return frame;
}

/** Whether a payload is a log frame (not JSON). */
export function isLogFrame(payload: Buffer): boolean {
  return payload.length > 0 && payload[0] === 0;
}

/**
 * The event a frame carries. The header is bounded and validated like a JSON event (it must be a
 * `log` event), the output bytes are a view of `frame`, not a copy.
 * @returns the event, or an error saying what is wrong with the frame.
 */
export function decodeLogFrame(frame: Buffer): Decoded<LogEvent> {
  if (frame.length < PREFIX || frame[0] !== 0) return { ok: false, error: 'not a log frame' };
  if (frame[1] !== 1) return { ok: false, error: `log frame version ${frame[1]} is not 1` };
  const h = frame.readUInt16BE(2);
  if (h > LOG_FRAME_MAX_HEADER || PREFIX + h > frame.length)
    return { ok: false, error: `log frame header of ${h} bytes (frame of ${frame.length})` };
  const data = frame.subarray(PREFIX + h);
  if (data.length > MAX_LOG_EVENT_BYTES) return { ok: false, error: `log frame of ${data.length} bytes > ${MAX_LOG_EVENT_BYTES}` };
  const d = decode(LogHeaderSchema, frame.subarray(PREFIX, PREFIX + h), HEADER_LIMITS);
  if (!d.ok) return { ok: false, error: `log frame header: ${d.error}` };
  return { ok: true, value: frameEvent(d.value as LogHeader, data, frame) };
}

/**
 * Decodes a payload of `tasks/T/events`: a log frame or a JSON event.
 * @param limits the JSON limits (shared/limits.ts LIMITS.taskEvents or .quarantine).
 */
export function decodeTaskEvent(payload: Buffer, limits: JsonLimits = LIMITS.taskEvents): Decoded<TaskEvent> {
  if (payload.length > limits.maxBytes) return { ok: false, error: `payload of ${payload.length} bytes exceeds ${limits.maxBytes}` };
  return isLogFrame(payload) ? decodeLogFrame(payload) : decode(TaskEventSchema, payload, limits);
}

/**
 * What to store for an event: a log event built from a frame as its frame again (a Buffer: SQLite
 * keeps it as a BLOB), any other as its JSON.
 * @throws RangeError for a value nested too deep for JSON.stringify (a bug).
 */
export function storedForm(e: TaskEvent): Buffer | string {
  const raw = e.type === 'log' ? rawBytes.get(e) : undefined;
  if (!raw || e.type !== 'log') return JSON.stringify(e);
  return raw.frame ?? encodeLogFrame(headerOf(e), raw.bytes);
}

/** The header fields of a log event (read one by one: `data` of a frame's event is not computed). */
export function headerOf(e: LogEvent): LogHeader {
  return { v: e.v, taskId: e.taskId, attempt: e.attempt, node: e.node, seq: e.seq, ts: e.ts, type: 'log', stream: e.stream };
}

/** An event read back from `storedForm` (its JSON, or a frame). @throws SyntaxError on a corrupt row. */
export function fromStoredForm(body: Buffer | string): TaskEvent {
  if (typeof body === 'string') return JSON.parse(body) as TaskEvent;
  const d = decodeLogFrame(body);
  if (!d.ok) throw new SyntaxError(d.error);
  return d.value;
}
