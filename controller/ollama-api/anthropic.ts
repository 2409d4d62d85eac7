/**
 * The Anthropic Messages API as Ollama serves it since v0.14 (docs/api/anthropic-compatibility.mdx;
 * ollama/ollama `anthropic/anthropic.go`, `middleware/anthropic.go`), so the Anthropic SDKs and
 * Claude Code run on the mesh's models with `ANTHROPIC_BASE_URL=http://server:11434`:
 *
 *   - `POST /v1/messages`: translated to an Ollama chat (anthropic-shapes.ts) and run as an ollama
 *     `chat` task through the same path as `/api/chat` (relay.ts → MeshGateway.run: placement on a
 *     node that has the model, the task record, rate limits, metrics, cancellation when the client
 *     goes away). `"stream": true` answers with server-sent events (anthropic-stream.ts), otherwise
 *     one `message` object.
 *   - `POST /v1/messages/count_tokens`: `{"input_tokens": N}`, an ESTIMATE (characters / 4, as
 *     Ollama's own estimate for `message_start`), not the model's tokenizer. Ollama itself answers
 *     404 here; Claude Code calls it, so the mesh answers.
 *   - `GET /v1/models` and `GET /v1/models/{id}` carrying an `anthropic-version` header (every
 *     Anthropic SDK request does): the mesh's models in Anthropic's list shape (`{data: [{type:
 *     "model", id, display_name, created_at}], has_more, first_id, last_id}`). Without the header
 *     those paths stay OpenAI's (openai.ts).
 *
 * Errors are Anthropic's body (`{"type": "error", "error": {"type", "message"}}`): 400
 * `invalid_request_error` (bad request), 404 `not_found_error` (no online node has the model), 429
 * `rate_limit_error` (the mesh's per-client rate limit), 503 `overloaded_error` (no node can serve
 * it now), 500 `api_error`. The API key (`x-api-key` or `Authorization: Bearer`) is checked in
 * server.ts, where every route's token check is.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { anthropicError, anthropicId, estimateTokens, toMessage, toOllamaChat } from './anthropic-shapes.js';
import { AnthropicStream, sseError } from './anthropic-stream.js';
import { LineStream, readJson, sendJson, statusOf } from './http.js';
import type { MeshGateway } from './mesh.js';
import { aggregate, meshTags, modelOf, notFound } from './native.js';
import { relay } from './relay.js';

type Json = Record<string, unknown>;

/** HTTP status of an error as Anthropic names it: the mesh's rate limit is 429, the rest as the other routes. */
export function anthropicStatus(err: unknown): number {
  if (err instanceof CutterError && err.code === 'RATE_LIMITED') return 429;
  return statusOf(err);
}

/** POST /v1/messages. @throws HttpError 400/404 and the mesh's CutterError before anything was written. */
async function messages(body: Json, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const model = modelOf(body);
  const request = toOllamaChat(body);
  if (!mesh.hasModel(model)) throw notFound(model);
  const id = anthropicId('msg');
  const stream = body.stream === true;
  const events = new AnthropicStream(id, model, estimateTokens(body));
  const out = new LineStream(res, 'text/event-stream');
  const kept = await relay(mesh, { kind: 'ollama', op: 'chat', model, request, pull: false }, signal, out, {
    stream,
    line: (c) => events.chunk(c),
    errorLine: (message) => sseError(500, message),
  });
  if (kept === null) return;
  if (stream) return out.end();
  sendJson(res, 200, toMessage(id, model, aggregate(kept, true)));
}

/** Anthropic's model object for a mesh model (`/api/tags` entry). */
function modelInfo(m: Json): Json {
  return { type: 'model', id: m.name, display_name: m.name, created_at: m.modified_at };
}

/**
 * Handles the Anthropic routes, or returns false for other paths. Errors are written in
 * Anthropic's shape here.
 */
export async function handleAnthropic(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  mesh: MeshGateway,
  signal: AbortSignal,
): Promise<boolean> {
  const method = req.method ?? 'GET';
  const anthropicClient = typeof req.headers['anthropic-version'] === 'string';
  const isModels = method === 'GET' && (path === '/v1/models' || path.startsWith('/v1/models/')) && anthropicClient;
  if (!isModels && !(method === 'POST' && (path === '/v1/messages' || path === '/v1/messages/count_tokens'))) return false;
  try {
    if (path === '/v1/messages') {
      await messages(await readJson(req), res, mesh, signal);
    } else if (path === '/v1/messages/count_tokens') {
      const body = await readJson(req);
      const model = modelOf(body);
      if (!mesh.hasModel(model)) throw notFound(model);
      toOllamaChat({ ...body, max_tokens: 1 }); // the same validation as a real request
      sendJson(res, 200, { input_tokens: estimateTokens(body) });
    } else if (path === '/v1/models') {
      const data = meshTags(mesh.onlineNodes()).map(modelInfo);
      sendJson(res, 200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
    } else {
      const name = decodeURIComponent(path.slice('/v1/models/'.length));
      const m = meshTags(mesh.onlineNodes()).find((t) => t.name === name || t.name === `${name}:latest`);
      if (!m) throw notFound(name);
      sendJson(res, 200, { ...modelInfo(m), id: name });
    }
  } catch (err) {
    if (res.headersSent || res.destroyed) return true;
    const status = anthropicStatus(err);
    sendJson(res, status, anthropicError(status, errorMessage(err)));
  }
  return true;
}
