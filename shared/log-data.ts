/**
 * The bytes of `log` task events. An agent sends a stream's output as raw bytes, base64 in `data`
 * with `encoding: 'base64'`; events without `encoding` (older agents) carry UTF-8 text. Every reader
 * of log output goes through here: byte consumers (the CLI's stdout and stderr, the controller's
 * per-task byte accounting) take `logBytes`, display surfaces (dashboard, MCP, pipeline outputs)
 * decode to text only at the edge with `logText` or `logsText`. An event decoded from a binary
 * frame (shared/log-frame.ts) holds its bytes as they came: these read them without base64.
 */
import { frameBytes } from './log-frame.js';
import type { TaskEvent } from './schemas/index.js';

/** A `log` task event. */
export type LogEvent = Extract<TaskEvent, { type: 'log' }>;

/**
 * Most raw bytes in one log event: its base64 (4 characters per 3 bytes) is then exactly 1 MiB,
 * the schema's limit on `data` and the taskEvents topic's limit on one string (shared/limits.ts).
 */
export const MAX_LOG_EVENT_BYTES = 768 * 1024;

/**
 * The `encoding` and `data` fields of a log event carrying `bytes` (at most MAX_LOG_EVENT_BYTES).
 * @throws RangeError when `bytes` is larger (the event would be refused by every receiver).
 */
export function logFields(bytes: Uint8Array): { encoding: 'base64'; data: string } {
  if (bytes.length > MAX_LOG_EVENT_BYTES) throw new RangeError(`log batch of ${bytes.length} bytes > ${MAX_LOG_EVENT_BYTES}`);
  return { encoding: 'base64', data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64') };
}

/** The output bytes of a log event, exactly as the task wrote them (UTF-8 of the text for a legacy event). */
export function logBytes(e: LogEvent): Buffer {
  const raw = frameBytes(e);
  if (raw) return raw;
  return e.encoding === 'base64' ? Buffer.from(e.data, 'base64') : Buffer.from(e.data, 'utf8');
}

/**
 * The number of output bytes of a log event (what `logBytes(e).length` is), computed from the
 * length of its base64 without decoding it.
 */
export function logSize(e: LogEvent): number {
  const raw = frameBytes(e);
  if (raw) return raw.length;
  if (e.encoding !== 'base64') return Buffer.byteLength(e.data, 'utf8');
  return Buffer.byteLength(e.data, 'base64');
}

/**
 * A log event's output as text, for display only: UTF-8, with invalid bytes (and a character
 * split between two events) shown as U+FFFD. Use `logsText` for several events of one stream.
 */
export function logText(e: LogEvent): string {
  return e.encoding === 'base64' ? logBytes(e).toString('utf8') : e.data;
}

/**
 * The output of several log events as text, for display: the bytes of each run of consecutive
 * events of one stream are joined before they are decoded (a character split between batches stays
 * whole), and `label(stream, text)` turns each run into what is shown (default: the text alone).
 */
export function logsText(events: readonly LogEvent[], label: (stream: LogEvent['stream'], text: string) => string = (_, t) => t): string {
  let out = '';
  let i = 0;
  while (i < events.length) {
    const stream = events[i].stream;
    const run: Buffer[] = [];
    for (; i < events.length && events[i].stream === stream; i++) run.push(logBytes(events[i]));
    out += label(stream, Buffer.concat(run).toString('utf8'));
  }
  return out;
}
