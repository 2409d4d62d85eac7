/**
 * `POST /api/create` and `POST /api/push` across the mesh (ollama/ollama `docs/api.md` "Create a
 * Model", "Push a Model"; issue 22).
 *
 * Create: from an existing model only (`from`, with `system`, `template`, `parameters`, `license`,
 * `messages`, `quantize` passed through), run as an ollama `create` task on the node the scheduler
 * picks among those that have `from` on disk, or on the node named by a `node` field or an
 * `X-Cutter-Node` header. `files` and `adapters` (blobs uploaded with `/api/blobs` to one Ollama)
 * are refused: the mesh has no blob store. The answer is Ollama's: NDJSON status records ending in
 * `{"status": "success"}`, or one `{"status": "success"}` with `"stream": false`; the node it
 * ran on is in the task record (`cutter tasks`).
 *
 * Push: every node has its own copy of a model and its own registry credentials, so a push must
 * name its node (`node` field or `X-Cutter-Node` header); without one it is refused with 400
 * saying which nodes have the model. With one it runs as a `push` task there, streaming Ollama's
 * status records.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sameModel } from '../../shared/ollama.js';
import type { OllamaSpec } from '../../shared/schemas/index.js';
import { HttpError, LineStream, readJson, sendJson } from './http.js';
import { targetNodes } from './manage.js';
import type { MeshGateway } from './mesh.js';
import { modelOf, notFound } from './native.js';
import { relay } from './relay.js';

type Json = Record<string, unknown>;

/** The node a request names (`node` field, else the `X-Cutter-Node` header), or undefined. */
function namedNode(body: Json, req: IncomingMessage): string | undefined {
  const header = req.headers['x-cutter-node'];
  if (typeof body.node === 'string' && body.node) return body.node.slice(0, 256);
  return typeof header === 'string' && header ? header.slice(0, 256) : undefined;
}

/** Runs a status-streaming op and answers as Ollama: NDJSON records, or `{"status": "success"}`. */
async function run(
  mesh: MeshGateway,
  spec: OllamaSpec,
  body: Json,
  node: string | undefined,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const stream = body.stream !== false;
  const out = new LineStream(res, 'application/x-ndjson');
  const kept = await relay(mesh, spec, signal, out, {
    stream,
    line: (c) => `${JSON.stringify(c)}\n`,
    errorLine: (message) => `${JSON.stringify({ error: message })}\n`,
    ...(node ? { node } : {}),
  });
  if (kept === null) return;
  if (stream) return out.end();
  const failed = kept.find((c) => typeof c.error === 'string');
  if (failed) throw new HttpError(500, String(failed.error));
  sendJson(res, 200, { status: 'success' });
}

/** `POST /api/create`. @throws HttpError 400 (no `from`, files/adapters), 404 (no node has `from`), the mesh's errors. */
export async function createModel(req: IncomingMessage, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const body = await readJson(req);
  const model = modelOf(body);
  const from = typeof body.from === 'string' ? body.from : '';
  if (body.files !== undefined || body.adapters !== undefined || !from)
    throw new HttpError(
      400,
      'the mesh creates a model only from an existing one: give "from" (a model a node has) with system, template, parameters …; "files" and "adapters" (blobs uploaded to one Ollama) are not supported across the mesh — create it on that node\'s Ollama directly',
    );
  if (from.length > 256) throw new HttpError(400, 'model name too long');
  const node = namedNode(body, req);
  if (node) targetNodes(mesh, from, body, req);
  else if (!mesh.hasModel(from)) throw notFound(from);
  const { model: _m, name: _n, from: _f, stream: _s, node: _node, ...rest } = body;
  await run(mesh, { kind: 'ollama', op: 'create', model: from, request: { ...rest, model }, pull: false }, body, node, res, signal);
}

/** `POST /api/push`. @throws HttpError 400 (no node named), 404 (not on the named node), the mesh's errors. */
export async function pushModel(req: IncomingMessage, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const body = await readJson(req);
  const model = modelOf(body);
  const node = namedNode(body, req);
  if (!node) {
    const having = mesh
      .onlineNodes()
      .filter((n) => n.capacity!.ollama!.models.some((m) => sameModel(m.name, model)))
      .map((n) => n.node)
      .sort();
    if (having.length === 0) throw notFound(model);
    throw new HttpError(
      400,
      `push needs a node: each node has its own copy of ${model} and its own registry credentials. Name one with a "node" field or an X-Cutter-Node header (nodes with it: ${having.join(', ')})`,
    );
  }
  targetNodes(mesh, model, body, req);
  const { model: _m, name: _n, stream: _s, node: _node, ...rest } = body;
  await run(mesh, { kind: 'ollama', op: 'push', model, request: rest, pull: false }, body, node, res, signal);
}
