/**
 * The API key as each client family sends it, checked against cutter tokens where the API needs
 * one (bound beyond loopback, without `--insecure`; controller/extensions/http-auth.ts):
 *
 *   - Ollama and OpenAI clients: `Authorization: Bearer <key>`.
 *   - Anthropic clients: `x-api-key: <key>` (the Anthropic SDKs with `apiKey`, Claude Code with
 *     ANTHROPIC_API_KEY; Anthropic's docs "Authentication") or `Authorization: Bearer <key>` (with
 *     `authToken` / ANTHROPIC_AUTH_TOKEN). An `x-api-key` is read as that Bearer token when the
 *     request has no Authorization header.
 *
 * The key is a cutter token `ROLE:NAME:PASSWORD` (agent tokens refused). A refused Anthropic
 * request (an `anthropic-version` header, or a `/v1/messages` path) gets Anthropic's 401 body
 * (`authentication_error`); others get the `{"error"}` body the other routes give.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logger.js';
import { warnLimiter } from '../../shared/warn-limiter.js';
import type { HttpAuth } from '../extensions/http-auth.js';
import { anthropicError } from './anthropic-shapes.js';
import { sendJson } from './http.js';

/** True when the request comes from an Anthropic client or goes to an Anthropic route. */
export function isAnthropicRequest(req: IncomingMessage): boolean {
  return typeof req.headers['anthropic-version'] === 'string' || (req.url ?? '').startsWith('/v1/messages');
}

/**
 * Lets the request through (true) or answers it with 401 (false). Callers skip it when
 * `auth.required` is false (it would answer true).
 * @param log where a refusal is logged (rate-limited, counted on /metrics as `http-unauthorized`).
 */
export async function allowed(auth: HttpAuth, req: IncomingMessage, res: ServerResponse, log: Logger): Promise<boolean> {
  const key = req.headers['x-api-key'];
  if (!req.headers.authorization && typeof key === 'string' && key) req.headers.authorization = `Bearer ${key}`;
  if (!isAnthropicRequest(req)) return auth.allow(req, res);
  if (!auth.required) return true;
  const why = await auth.check(req.headers.authorization);
  if (why === null) return true;
  warnLimiter(log).warn(
    'http-unauthorized',
    { surface: 'Ollama API', remote: req.socket.remoteAddress, reason: why },
    'http request refused: no valid token',
  );
  const message = `unauthorized: ${why.replace('no Authorization header', 'no x-api-key or Authorization header')}. This API listens beyond loopback, so the API key must be a cutter token ROLE:NAME:PASSWORD (cutter token create --role observer --name me), sent as x-api-key or "Authorization: Bearer"`;
  if (!res.destroyed) sendJson(res, 401, anthropicError(401, message));
  return false;
}
