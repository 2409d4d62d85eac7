/**
 * Decoding of MQTT payloads: JSON.parse then zod. Never throws; a bad payload becomes a
 * `{ ok: false, error }` the caller logs and drops (the process keeps working).
 */
import type { z } from 'zod';

/** Largest payload any cutter topic accepts, bytes (log batches are capped well below). */
export const MAX_PAYLOAD_BYTES = 2 * 1024 * 1024;

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses and validates a payload. Errors name the first bad field, e.g. `capacity.memory.total: expected number`. */
export function decode<S extends z.ZodType>(schema: S, payload: Buffer | string): Decoded<z.infer<S>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > MAX_PAYLOAD_BYTES) return { ok: false, error: `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Paths carry record keys the sender chose: keep what is logged and echoed short.
    const path = issue.path.length ? issue.path.map((p) => clip(String(p), 64)).join('.') : '(root)';
    return { ok: false, error: clip(`${clip(path, 200)}: ${issue.message}`, 500) };
  }
  return { ok: true, value: parsed.data };
}

/** Cuts `text` to at most `max` characters, marking the cut with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Serialises a payload for publishing. */
export function encode(value: unknown): string {
  return JSON.stringify(value);
}
