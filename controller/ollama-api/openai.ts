/**
 * The OpenAI-compatible endpoints Ollama itself serves (ollama/ollama `openai/openai.go`,
 * `docs/openai.md`, docs.ollama.com/api/openai-compatibility): `POST /v1/chat/completions`,
 * `POST /v1/completions` (openai-completions.ts), `POST /v1/embeddings` (openai-embeddings.ts),
 * `POST /v1/responses` (stateless, openai-responses.ts),
 * `GET /v1/models` and `GET /v1/models/{model}`, translated to and from ollama tasks on the mesh.
 *
 * Shapes as Ollama's translation layer makes them: `chat.completion` objects with
 * `system_fingerprint: "fp_ollama"` and `usage` from `prompt_eval_count`/`eval_count`; streamed as
 * server-sent events of `chat.completion.chunk` objects ending with `data: [DONE]`, plus a usage
 * chunk when `stream_options.include_usage`; `finish_reason` is Ollama's `done_reason`
 * (`tool_calls` when the model called tools); errors are
 * `{"error": {"message", "type", "param": null, "code": null}}` with type `invalid_request_error`
 * (400), `not_found_error` (404) or `api_error`; models are listed with `owned_by` the name's
 * namespace (`library` for library models).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../../shared/errors.js';
import { HttpError, LineStream, readJson, sendJson, statusOf } from './http.js';
import type { MeshGateway } from './mesh.js';
import { relay } from './relay.js';
import { aggregate, meshTags, modelOf, notFound } from './native.js';
import { completions } from './openai-completions.js';
import { embeddings } from './openai-embeddings.js';
import { responses } from './openai-responses.js';
import { openaiError, unixOf, usageOf } from './openai-shapes.js';

export { openaiError } from './openai-shapes.js';

type Json = Record<string, unknown>;

/** `library/llama3:8b` → `library`; names without a namespace are library models. */
function ownedBy(name: string): string {
  const parts = name.split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : 'library';
}

/**
 * Translates a ChatCompletionRequest to an Ollama chat request body (openai.go `FromChatRequest`):
 * text parts of array contents are joined, images become base64 `images`, sampling options move
 * into `options`, `response_format` becomes `format`.
 * @throws HttpError 400 for messages Ollama would refuse.
 */
export function toOllamaChat(body: Json): Json {
  if (!Array.isArray(body.messages)) throw new HttpError(400, "[] is too short - 'messages'");
  const messages = (body.messages as Json[]).map((m) => {
    if (typeof m !== 'object' || m === null) throw new HttpError(400, 'invalid message format');
    const out: Json = { role: m.role };
    if (typeof m.content === 'string') out.content = m.content;
    else if (Array.isArray(m.content)) {
      const texts: string[] = [];
      const images: string[] = [];
      for (const part of m.content as Json[]) {
        if (part?.type === 'text' && typeof part.text === 'string') texts.push(part.text);
        else if (part?.type === 'image_url') {
          const url = typeof part.image_url === 'string' ? part.image_url : String((part.image_url as Json | undefined)?.url ?? '');
          const b64 = /^data:(?:image\/[a-z]+)?;base64,(.*)$/.exec(url)?.[1];
          if (!b64) throw new HttpError(400, 'invalid image input');
          images.push(b64);
        } else throw new HttpError(400, 'invalid message format');
      }
      out.content = texts.join('');
      if (images.length) out.images = images;
    } else if (m.content === undefined || m.content === null) {
      if (!Array.isArray(m.tool_calls))
        throw new HttpError(400, `invalid message content type: ${m.content === null ? '<nil>' : 'undefined'}`);
      out.content = '';
    } else throw new HttpError(400, `invalid message content type: ${typeof m.content}`);
    if (Array.isArray(m.tool_calls)) {
      out.tool_calls = (m.tool_calls as Json[]).map((tc) => {
        const fn = (tc.function ?? {}) as Json;
        let args: unknown = {};
        try {
          args = typeof fn.arguments === 'string' ? JSON.parse(fn.arguments) : (fn.arguments ?? {});
        } catch {
          throw new HttpError(400, 'invalid tool call arguments');
        }
        return { function: { name: fn.name, arguments: args } };
      });
    }
    if (typeof m.name === 'string' && m.role === 'tool') out.tool_name = m.name;
    return out;
  });
  const options: Json = {};
  if (typeof body.max_tokens === 'number') options.num_predict = body.max_tokens;
  if (typeof body.max_completion_tokens === 'number') options.num_predict = body.max_completion_tokens;
  if (typeof body.temperature === 'number') options.temperature = body.temperature;
  if (typeof body.top_p === 'number') options.top_p = body.top_p;
  if (typeof body.seed === 'number') options.seed = body.seed;
  if (typeof body.frequency_penalty === 'number') options.frequency_penalty = body.frequency_penalty;
  if (typeof body.presence_penalty === 'number') options.presence_penalty = body.presence_penalty;
  if (typeof body.stop === 'string') options.stop = [body.stop];
  else if (Array.isArray(body.stop)) options.stop = body.stop.filter((s) => typeof s === 'string');
  const out: Json = { messages, options };
  const rf = body.response_format as Json | undefined;
  if (rf?.type === 'json_object') out.format = 'json';
  else if (rf?.type === 'json_schema') out.format = (rf.json_schema as Json | undefined)?.schema;
  if (Array.isArray(body.tools)) out.tools = body.tools;
  return out;
}

function toolCallsOf(message: Json): Json[] {
  const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as Json[]) : [];
  return calls.map((tc, i) => {
    const fn = (tc.function ?? {}) as Json;
    return {
      id: typeof tc.id === 'string' ? tc.id : `call_${randomBytes(4).toString('hex')}`,
      index: i,
      type: 'function',
      function: { name: fn.name, arguments: JSON.stringify(fn.arguments ?? {}) },
    };
  });
}

/** POST /v1/chat/completions. */
async function chatCompletions(body: Json, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const model = modelOf(body);
  if (!mesh.hasModel(model)) throw notFound(model);
  const request = toOllamaChat(body);
  const id = `chatcmpl-${randomBytes(3).readUIntBE(0, 3) % 1000}`;
  const stream = body.stream === true;
  const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true;
  const out = new LineStream(res, 'text/event-stream');
  let toolCallSent = false;
  const chunkOf = (c: Json): Json => {
    const message = (c.message ?? {}) as Json;
    const calls = toolCallsOf(message);
    if (calls.length) toolCallSent = true;
    const reason = typeof c.done_reason === 'string' && c.done_reason ? (toolCallSent ? 'tool_calls' : c.done_reason) : null;
    const delta: Json = { role: 'assistant', content: typeof message.content === 'string' ? message.content : '' };
    if (typeof message.thinking === 'string' && message.thinking) delta.reasoning = message.thinking;
    if (calls.length) delta.tool_calls = calls;
    return {
      id,
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: c.model ?? model,
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, delta, finish_reason: reason }],
    };
  };
  const kept = await relay(mesh, { kind: 'ollama', op: 'chat', model, request, pull: false }, signal, out, {
    stream,
    line: (c) => {
      let text = `data: ${JSON.stringify(chunkOf(c))}\n\n`;
      if (c.done === true && includeUsage) {
        text += `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: c.model ?? model, system_fingerprint: 'fp_ollama', choices: [], usage: usageOf(c) })}\n\n`;
      }
      return text;
    },
    errorLine: (message) => `data: ${JSON.stringify(openaiError(500, message))}\n\n`,
  });
  if (kept === null) return;
  if (stream) return out.end('data: [DONE]\n\n');
  const last = aggregate(kept, true);
  const message = (last.message ?? {}) as Json;
  const calls = toolCallsOf(message);
  const reason = calls.length ? 'tool_calls' : typeof last.done_reason === 'string' && last.done_reason ? last.done_reason : null;
  sendJson(res, 200, {
    id,
    object: 'chat.completion',
    created: unixOf(last),
    model: last.model ?? model,
    system_fingerprint: 'fp_ollama',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content ?? '',
          ...(typeof message.thinking === 'string' ? { reasoning: message.thinking } : {}),
          ...(calls.length ? { tool_calls: calls } : {}),
        },
        finish_reason: reason,
      },
    ],
    usage: usageOf(last),
  });
}

/**
 * Handles `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses` and `/v1/models[/{model}]`,
 * or returns false for other paths.
 * Errors are written in OpenAI's shape here (not Ollama's).
 */
export async function handleOpenAi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  mesh: MeshGateway,
  signal: AbortSignal,
): Promise<boolean> {
  if (!path.startsWith('/v1/')) return false;
  try {
    if (req.method === 'POST' && path === '/v1/chat/completions') {
      await chatCompletions(await readJson(req), res, mesh, signal);
      return true;
    }
    if (req.method === 'POST' && path === '/v1/completions') {
      await completions(await readJson(req), res, mesh, signal);
      return true;
    }
    if (req.method === 'POST' && path === '/v1/embeddings') {
      await embeddings(await readJson(req), res, mesh, signal);
      return true;
    }
    if (req.method === 'POST' && path === '/v1/responses') {
      await responses(await readJson(req), res, mesh, signal);
      return true;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      const data = meshTags(mesh.onlineNodes()).map((m) => ({
        id: m.name,
        object: 'model',
        created: unixOf({ created_at: m.modified_at }),
        owned_by: ownedBy(String(m.name)),
      }));
      sendJson(res, 200, { object: 'list', data });
      return true;
    }
    if (req.method === 'GET' && path.startsWith('/v1/models/')) {
      const name = decodeURIComponent(path.slice('/v1/models/'.length));
      const m = meshTags(mesh.onlineNodes()).find((t) => t.name === name || t.name === `${name}:latest`);
      if (!m) throw notFound(name);
      sendJson(res, 200, { id: name, object: 'model', created: unixOf({ created_at: m.modified_at }), owned_by: ownedBy(name) });
      return true;
    }
  } catch (err) {
    if (res.headersSent) return true;
    const status = statusOf(err);
    sendJson(res, status, openaiError(status, errorMessage(err)));
    return true;
  }
  return false;
}
