/**
 * The small JSON GETs of an Ollama inventory (`/api/version`, `/api/tags`, `/api/ps`), sent with
 * node:http on a keep-alive agent rather than through ollama-js.
 *
 * The heartbeat refreshes every executor's fingerprint at each beat (1 s by default), and ollama-js
 * calls the global `fetch`, whose first call loads undici with Node's web streams and http2: about
 * 6.5 MiB of an idle agent's RSS on Node 20, for a node whose Ollama may not even be running
 * (bench/profile.md, "Agent idle footprint"). node:http is loaded anyway for the Docker engine's
 * socket, so an idle agent now never loads undici; tasks still run through ollama-js.
 *
 * Shapes of the answers, from Ollama's docs/api.md: `GET /api/version` → `{"version": "0.5.7"}`;
 * `GET /api/tags` → `{"models": [{name, size, digest, modified_at, details: {format, family,
 * parameter_size, quantization_level}}]}`; `GET /api/ps` → `{"models": [{name, size, size_vram,
 * expires_at, …}]}`; an error → a non-2xx status with `{"error": "…"}`.
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { isJsonObject, parseJson } from '../../shared/codec.js';
import { LIMITS } from '../../shared/limits.js';

/** One answer: HTTP status, headers, and the body parsed as JSON (undefined when empty). */
export interface JsonAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/**
 * A non-2xx answer, shaped like ollama-js's `ResponseError` (`name`, `status_code`, `error`) so
 * one mapping to CutterError covers both paths.
 */
export class InventoryResponseError extends Error {
  override readonly name = 'ResponseError';
  constructor(
    readonly status_code: number,
    readonly error: string,
  ) {
    super(error);
  }
}

/** A failed connection or a timeout, with the socket's code (`ECONNREFUSED`, `ETIMEDOUT`, …). */
export class InventoryConnectError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** One keep-alive agent per scheme: idle sockets are unref'd by node:http and never hold the process. */
const agents = new Map<string, http.Agent>();

async function transport(url: URL): Promise<{ request: typeof http.request; agent: http.Agent }> {
  const https = url.protocol === 'https:';
  const mod = https ? await import('node:https') : http;
  let agent = agents.get(url.protocol);
  if (!agent) {
    agent = new mod.Agent({ keepAlive: true, maxSockets: 4 });
    agents.set(url.protocol, agent);
  }
  return { request: mod.request, agent };
}

/**
 * GETs `path` from the Ollama at `base` and parses its JSON body, bounded by
 * `LIMITS.ollamaInventory` (size while reading, then depth, width and strings before JSON.parse:
 * shared/codec.ts `parseJson`).
 * @param base the node's Ollama URL, e.g. `http://127.0.0.1:11434`.
 * @param timeoutMs longest wait for the whole answer, ms.
 * @throws InventoryConnectError when nothing answers (its `code`: ECONNREFUSED, ETIMEDOUT, …);
 *   InventoryResponseError for a non-2xx status (its body's `error`, or its text when that is no
 *   JSON within the limits); Error for a 2xx body over the limits or not JSON.
 */
export async function getJson(base: string, path: string, timeoutMs: number): Promise<JsonAnswer> {
  const url = new URL(path, base);
  const { request, agent } = await transport(url);
  const limits = LIMITS.ollamaInventory;
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { accept: 'application/json' } }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limits.maxBytes) {
          req.destroy(new Error(`${url.pathname} answered more than ${limits.maxBytes} bytes`));
          return;
        }
        parts.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const raw = Buffer.concat(parts);
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        let body: unknown;
        try {
          body = raw.length > 0 ? parseJson(raw, limits) : undefined;
        } catch (err) {
          // A 2xx answer must be JSON within the limits; a non-2xx one may be plain text, quoted below.
          if (ok) return reject(new Error(`${url.pathname} answered no JSON within its limits: ${(err as Error).message}`));
        }
        if (!ok) {
          const message = isJsonObject(body) && typeof body.error === 'string' ? body.error : raw.toString('utf8').slice(0, 200);
          return reject(new InventoryResponseError(status, message.slice(0, 500)));
        }
        resolve({ status, headers: res.headers, body });
      });
      res.on('error', (err) => reject(err));
    });
    const timer = setTimeout(() => {
      req.destroy(new InventoryConnectError(`no answer from ${url.origin} within ${timeoutMs} ms`, 'ETIMEDOUT'));
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err instanceof InventoryConnectError || !err.code ? err : new InventoryConnectError(err.message, err.code));
    });
    req.end();
  });
}
