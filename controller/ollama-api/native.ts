/**
 * Ollama's own REST API (ollama/ollama `docs/api.md`), answered by the mesh. Generation, chat,
 * embeddings (`/api/embed` and the legacy `/api/embeddings`), pulls and `show` run as ollama tasks on the node the scheduler picks; the listings
 * (/api/tags, /api/ps, /api/version) come from the nodes' retained heartbeats.
 *
 * Shapes kept from Ollama: NDJSON streaming by default and one JSON object with
 * `"stream": false` (docs/api/streaming.mdx); a non-streamed generate/chat carries the whole text
 * and the final chunk's metrics; errors are `{"error": "…"}` — 400 `model is required`, 404
 * `model 'x' not found` (server/routes.go) — and a failure after streaming began is one more line
 * `{"error": "…"}` in the 200 stream (docs/api/errors.mdx).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CutterError } from '../../shared/errors.js';
import { sameModel } from '../../shared/ollama.js';
import type { NodeStatus, OllamaModel, OllamaOp } from '../../shared/schemas/index.js';
import { HttpError, LineStream, readJson, sendJson } from './http.js';
import { createModel, pushModel } from './create-push.js';
import { copyModel, deleteModel } from './manage.js';
import type { MeshGateway } from './mesh.js';
import { relay } from './relay.js';

type Json = Record<string, unknown>;

/** The `/api/tags` entry for a model a node announced (fields of Ollama's ListModelResponse). */
function tagEntry(m: OllamaModel): Json {
  return {
    name: m.name,
    model: m.name,
    modified_at: m.modifiedAt ?? new Date(0).toISOString(),
    size: m.size,
    digest: m.digest ?? '',
    details: {
      parent_model: '',
      format: m.format ?? 'gguf',
      family: m.family ?? '',
      families: m.family ? [m.family] : null,
      parameter_size: m.parameterSize ?? '',
      quantization_level: m.quantization ?? '',
    },
  };
}

/** Union of every online node's models, one entry per name (the largest size wins). */
export function meshTags(nodes: NodeStatus[]): Json[] {
  const byName = new Map<string, Json>();
  for (const n of nodes) {
    for (const m of n.capacity?.ollama?.models ?? []) {
      const prev = byName.get(m.name);
      if (!prev || (prev.size as number) < m.size) byName.set(m.name, tagEntry(m));
    }
  }
  return [...byName.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

/** Every model loaded on an online node, with that node's details (`/api/ps` entries). */
export function meshPs(nodes: NodeStatus[]): Json[] {
  const out: Json[] = [];
  for (const n of nodes) {
    const info = n.capacity?.ollama;
    for (const l of info?.loaded ?? []) {
      const pulled = info!.models.find((m) => sameModel(m.name, l.name));
      const tag = pulled ? tagEntry(pulled) : { details: {}, digest: '' };
      out.push({
        name: l.name,
        model: l.name,
        size: l.size,
        digest: tag.digest,
        details: tag.details,
        expires_at: l.expiresAt ?? '',
        size_vram: l.sizeVram,
      });
    }
  }
  return out;
}

/** The lowest Ollama version among online nodes (what every node can do), `0.0.0` when none. */
export function meshVersion(nodes: NodeStatus[]): string {
  const versions = nodes.map((n) => n.capacity?.ollama?.version).filter((v): v is string => Boolean(v));
  const key = (v: string) =>
    v
      .split(/[.-]/)
      .map((p) => p.padStart(8, '0'))
      .join('.');
  return versions.sort((a, b) => key(a).localeCompare(key(b)))[0] ?? '0.0.0';
}

/** Reads `model` (or the legacy `name`) from a request body. @throws HttpError 400 `model is required`. */
export function modelOf(body: Json): string {
  const model = typeof body.model === 'string' && body.model ? body.model : typeof body.name === 'string' ? body.name : '';
  if (!model) throw new HttpError(400, 'model is required');
  if (model.length > 256) throw new HttpError(400, 'model name too long');
  return model;
}

/** The body an ollama task carries: the caller's, less the model (the spec names it) and `stream` (the agent sets it). */
function taskRequest(body: Json): Json {
  const { model: _model, name: _name, stream: _stream, ...rest } = body;
  return rest;
}

/** Ollama's 404 for a model no online node has (routes.go: `model 'x' not found`). */
export function notFound(model: string): HttpError {
  return new HttpError(404, `model '${model}' not found`);
}

/**
 * Joins a streamed generate/chat into the one object `"stream": false` returns: the text (and
 * thinking, tool calls) of every chunk, with the final chunk's fields (done_reason, metrics, context).
 */
export function aggregate(chunks: Json[], chat: boolean): Json {
  const last = { ...(chunks.at(-1) ?? {}) };
  if (chat) {
    let content = '';
    let thinking = '';
    const toolCalls: unknown[] = [];
    for (const c of chunks) {
      const m = (c.message ?? {}) as Json;
      if (typeof m.content === 'string') content += m.content;
      if (typeof m.thinking === 'string') thinking += m.thinking;
      if (Array.isArray(m.tool_calls)) toolCalls.push(...m.tool_calls);
    }
    last.message = {
      ...((last.message as Json) ?? {}),
      role: 'assistant',
      content,
      ...(thinking ? { thinking } : {}),
      ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
    };
  } else {
    last.response = chunks.map((c) => (typeof c.response === 'string' ? c.response : '')).join('');
    const thinking = chunks.map((c) => (typeof c.thinking === 'string' ? c.thinking : '')).join('');
    if (thinking) last.thinking = thinking;
  }
  return last;
}

export interface NativeContext {
  mesh: MeshGateway;
  /** Aborted when the HTTP client goes away. */
  signal: AbortSignal;
}

/**
 * Runs a streaming op (generate, chat, pull) and writes it as NDJSON, or as one object when
 * `stream` is false. Errors before the first line become a JSON error response with its status.
 */
async function streamed(op: OllamaOp, body: Json, res: ServerResponse, ctx: NativeContext): Promise<void> {
  const model = modelOf(body);
  if (op !== 'pull' && !ctx.mesh.hasModel(model)) throw notFound(model);
  const stream = body.stream !== false;
  const request = taskRequest(body);
  const out = new LineStream(res, 'application/x-ndjson');
  const kept = await relay(ctx.mesh, { kind: 'ollama', op, model, request, pull: op === 'pull' }, ctx.signal, out, {
    stream,
    line: (c) => `${JSON.stringify(c)}\n`,
    errorLine: (message) => `${JSON.stringify({ error: message })}\n`,
  });
  if (kept === null) return;
  if (stream) return out.end();
  if (op === 'pull') return sendJson(res, 200, { status: 'success' });
  sendJson(res, 200, aggregate(kept, op === 'chat'));
}

/**
 * Runs a one-answer op (embed, the legacy embeddings, show) on a node that has the model and
 * returns its one response object, as the node's Ollama gave it.
 * @throws HttpError 400/404 (no model / no online node has it), the mesh's CutterError otherwise.
 */
export async function single(op: 'embed' | 'embeddings' | 'show', body: Json, ctx: NativeContext): Promise<Json> {
  const model = modelOf(body);
  if (!ctx.mesh.hasModel(model)) throw notFound(model);
  const request = taskRequest(body);
  let answer: Json | undefined;
  await ctx.mesh.run({ kind: 'ollama', op, model, request, pull: false }, { onChunks: (c) => (answer = c.at(-1)) }, ctx.signal);
  if (!answer) throw new CutterError('OLLAMA_ERROR', `the node returned no ${op} response`);
  return answer;
}

/**
 * Handles one `/api/*` request (or `/`), or returns false when the path is not Ollama's.
 * @throws HttpError / CutterError, turned into `{"error"}` responses by the server.
 */
export async function handleNative(req: IncomingMessage, res: ServerResponse, path: string, ctx: NativeContext): Promise<boolean> {
  const method = req.method ?? 'GET';
  const nodes = () => ctx.mesh.onlineNodes();
  switch (`${method} ${path}`) {
    case 'GET /':
    case 'HEAD /':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(method === 'HEAD' ? undefined : 'Ollama is running');
      return true;
    case 'GET /api/version':
      sendJson(res, 200, { version: meshVersion(nodes()) });
      return true;
    case 'GET /api/tags':
      sendJson(res, 200, { models: meshTags(nodes()) });
      return true;
    case 'GET /api/ps':
      sendJson(res, 200, { models: meshPs(nodes()) });
      return true;
    case 'POST /api/generate':
      await streamed('generate', await readJson(req), res, ctx);
      return true;
    case 'POST /api/chat':
      await streamed('chat', await readJson(req), res, ctx);
      return true;
    case 'POST /api/pull':
      await streamed('pull', await readJson(req), res, ctx);
      return true;
    case 'POST /api/embed':
      sendJson(res, 200, await single('embed', await readJson(req), ctx));
      return true;
    // The legacy endpoint (docs/api.md "Generate Embedding": `{model, prompt}` → `{embedding}`),
    // run as such on the node: ollama-js `embeddings()` and older clients call it.
    case 'POST /api/embeddings':
      sendJson(res, 200, await single('embeddings', await readJson(req), ctx));
      return true;
    case 'DELETE /api/delete':
      await deleteModel(req, res, ctx.mesh, ctx.signal);
      return true;
    case 'POST /api/copy':
      await copyModel(req, res, ctx.mesh, ctx.signal);
      return true;
    case 'POST /api/create':
      await createModel(req, res, ctx.mesh, ctx.signal);
      return true;
    case 'POST /api/push':
      await pushModel(req, res, ctx.mesh, ctx.signal);
      return true;
    case 'POST /api/show':
      sendJson(res, 200, await single('show', await readJson(req), ctx));
      return true;
    default:
      return false;
  }
}
