/**
 * Model management across the mesh: `DELETE /api/delete` and `POST /api/copy` (ollama/ollama
 * `docs/api.md` "Delete a Model": body `{model}`, 200 with no body, 404 when the model does not
 * exist; "Copy a Model": body `{source, destination}`, 200 with no body, 404 when the source does
 * not exist). Older clients send `name` for `model` (ollama-js `delete()` does), which is read too.
 *
 * Mesh semantics (issue 22): each runs as one ollama task per node — a `delete` or `copy` task —
 * on every online node whose heartbeat lists the model, or only on the node named by a `node`
 * field or an `X-Cutter-Node` header. The answer says where: the `X-Cutter-Nodes` header lists
 * the nodes it was done on (Ollama's documented body stays empty). When it fails on some node, the
 * answer is that node's error (its status: 404, 503, 500 …) with the nodes it succeeded on named in
 * the message. Nodes that are offline or draining are not touched; their copy stays.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../../shared/errors.js';
import { sameModel } from '../../shared/ollama.js';
import { HttpError, readJson, statusOf } from './http.js';
import type { MeshGateway } from './mesh.js';
import { modelOf, notFound } from './native.js';

type Json = Record<string, unknown>;

/**
 * The nodes a management request goes to: the named one (field `node` or header `X-Cutter-Node`)
 * if it has the model, else every online node that has it.
 * @throws HttpError 404 `model 'x' not found` when none has it (on the named node: saying so).
 */
export function targetNodes(mesh: MeshGateway, model: string, body: Json, req: IncomingMessage): string[] {
  const header = req.headers['x-cutter-node'];
  const named = typeof body.node === 'string' && body.node ? body.node : typeof header === 'string' && header ? header : undefined;
  const having = mesh
    .onlineNodes()
    .filter((n) => n.capacity!.ollama!.models.some((m) => sameModel(m.name, model)))
    .map((n) => n.node);
  if (named) {
    if (!having.includes(named)) throw new HttpError(404, `model '${model}' not found on node ${named}`);
    return [named];
  }
  if (having.length === 0) throw notFound(model);
  return having.sort();
}

/** Runs `op` on each node at once; answers 200 with `X-Cutter-Nodes`, or the first failure's status. */
async function onEach(
  op: 'delete' | 'copy',
  model: string,
  request: Json,
  nodes: string[],
  res: ServerResponse,
  mesh: MeshGateway,
  signal: AbortSignal,
): Promise<void> {
  const results = await Promise.allSettled(
    nodes.map((node) => mesh.run({ kind: 'ollama', op, model, request, pull: false }, { onChunks: () => undefined }, signal, node)),
  );
  const done = nodes.filter((_, i) => results[i].status === 'fulfilled');
  const failed = results.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    const err = (results[failed] as PromiseRejectedResult).reason;
    const where = done.length ? ` (done on ${done.join(', ')})` : '';
    throw new HttpError(statusOf(err), `${op} on node ${nodes[failed]}: ${errorMessage(err)}${where}`);
  }
  res.writeHead(200, { 'x-cutter-nodes': done.join(','), 'content-length': 0 });
  res.end();
}

/** `DELETE /api/delete`. @throws HttpError 400/404 and the mesh's errors, as `{"error"}` responses. */
export async function deleteModel(req: IncomingMessage, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const body = await readJson(req);
  const model = modelOf(body);
  await onEach('delete', model, {}, targetNodes(mesh, model, body, req), res, mesh, signal);
}

/** `POST /api/copy`. @throws HttpError 400 (no source / destination), 404 and the mesh's errors. */
export async function copyModel(req: IncomingMessage, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const body = await readJson(req);
  const source = typeof body.source === 'string' ? body.source : '';
  const destination = typeof body.destination === 'string' ? body.destination : '';
  if (!source || !destination) throw new HttpError(400, 'source and destination are required');
  if (source.length > 256 || destination.length > 256) throw new HttpError(400, 'model name too long');
  await onEach('copy', source, { destination }, targetNodes(mesh, source, body, req), res, mesh, signal);
}
