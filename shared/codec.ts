/**
 * Decoding of network payloads: size → `scanJson` (depth, array, key and string limits on the raw
 * bytes) → JSON.parse → zod. Never throws; a bad payload becomes a `{ ok: false, error }` the
 * caller logs and drops (the process keeps working).
 */
import type { z } from 'zod';
import { type JsonLimits, LIMITS, scanJson } from './limits.js';

/** Largest payload any cutter topic accepts, bytes (log batches are capped well below). */
export const MAX_PAYLOAD_BYTES = 2 * 1024 * 1024;

/** A parsed JSON value that is an object (not null, not an array): `{…}`. */
export const isJsonObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Checks, parses and validates a payload.
 * @param limits the limits of the payload's kind (shared/limits.ts `LIMITS`, `limitsForTopic`);
 *   default `LIMITS.default`.
 * @returns the value, or an error naming the first bad field (`capacity.memory.total: expected
 *   number`) or limit (`nesting depth 33 > 32 at $.#0[0]… (byte 40)`).
 */
export function decode<S extends z.ZodType>(schema: S, payload: Buffer | string, limits: JsonLimits = LIMITS.default): Decoded<z.infer<S>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > limits.maxBytes) return { ok: false, error: `payload of ${size} bytes exceeds ${limits.maxBytes}` };
  const scan = scanJson(payload, limits);
  if (!scan.ok) return { ok: false, error: scan.error };
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

/** Serialises a payload for publishing. @throws RangeError for a value nested too deep for the stack. */
export function encode(value: unknown): string {
  return JSON.stringify(value);
}

/**
 * Serialises a value that came from the network (an Ollama chunk relayed to an HTTP client)
 * without throwing: undefined when it cannot be serialised (too deep: RangeError, a BigInt, a cycle).
 */
export function tryEncode(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/**
 * JSON.parse after `scanJson`: for code that only peeks at a field (the broker's ACL) and already
 * handles JSON.parse's throw.
 * @throws SyntaxError when the payload is over a limit or not JSON.
 */
export function parseJson(payload: Buffer | string, limits: JsonLimits): unknown {
  const scan = scanJson(payload, limits);
  if (!scan.ok) throw new SyntaxError(scan.error);
  return JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
}
