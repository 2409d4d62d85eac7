/**
 * Small HTTP helpers for the Ollama-compatible API: JSON bodies in, JSON / NDJSON / SSE out, and
 * the error shapes Ollama uses (`{"error": "…"}` with 400/404/500; `docs/api/errors.mdx`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tryEncode } from '../../shared/codec.js';
import { CutterError } from '../../shared/errors.js';
import { LIMITS, scanJson } from '../../shared/limits.js';

/** Largest request body accepted, bytes (images travel base64 inside chat requests). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** An error with the HTTP status it maps to. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads and parses a JSON object body (a body over MAX_BODY_BYTES is read to its end and dropped,
 * so the keep-alive connection stays usable; one over four times that is cut).
 * @throws HttpError 400 (not JSON, not an object, over a limit of `LIMITS.ollamaHttp`: depth,
 *   array, keys, string) or 413 (over MAX_BODY_BYTES).
 */
export function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  // Read by events, not `for await`: leaving a for-await loop early destroys the request, and the
  // keep-alive connection under it, before the 413 can be answered.
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) parts.push(chunk);
      else if (size > 4 * MAX_BODY_BYTES) req.destroy(); // read on no further: answer with the connection closed
    });
    req.once('error', (err) => reject(new HttpError(400, err.message)));
    req.once('close', () => reject(new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`)));
    req.once('end', () => {
      if (size > MAX_BODY_BYTES) return reject(new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`));
      if (size === 0) return resolve({});
      const body = Buffer.concat(parts);
      // Limits first (shared/limits.ts): a 1,000,000-deep body would block JSON.parse for 0.6 s.
      const scan = scanJson(body, LIMITS.ollamaHttp);
      if (!scan.ok) return reject(new HttpError(400, `request body: ${scan.error}`));
      let value: unknown;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return reject(new HttpError(400, (err as Error).message));
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return reject(new HttpError(400, 'request body must be a JSON object'));
      resolve(value as Record<string, unknown>);
    });
  });
}

/** Answers with a JSON body. A body that cannot be serialised (too deep) becomes a 500 `{"error"}`. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  let text = tryEncode(body);
  if (text === undefined) {
    status = 500;
    text = JSON.stringify({ error: 'the answer could not be serialised (nested too deep)' });
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** HTTP status for a mesh error: Ollama's 404 for a missing model, 503 when no node can serve, else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof CutterError) {
    switch (err.code) {
      case 'MODEL_NOT_FOUND':
        return 404;
      case 'INVALID_REQUEST':
      case 'INVALID_ARGUMENT':
        return 400;
      case 'NO_FIT':
      case 'NO_CONTROLLER':
      case 'EXECUTOR_UNAVAILABLE':
      case 'RATE_LIMITED':
        return 503;
      case 'CANCELLED':
        return 499;
      default:
        return 500;
    }
  }
  return 500;
}

/**
 * A streamed response whose status is decided by its first write: headers go out with the first
 * line (200) or, when the run fails before anything was written, as a plain error response.
 */
export class LineStream {
  private started = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly contentType: string,
  ) {}

  get hasStarted(): boolean {
    return this.started;
  }

  /** Writes one chunk of text (a line or an SSE event), sending the headers first. */
  write(text: string): void {
    if (this.res.destroyed) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'content-type': this.contentType, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
      this.res.flushHeaders();
    }
    this.res.write(text);
  }

  end(text = ''): void {
    if (this.res.destroyed) return;
    if (!this.started) this.write(text);
    else if (text) this.res.write(text);
    this.res.end();
  }
}
