/**
 * `POST /v1/embeddings` as Ollama serves it (docs.ollama.com/api/openai-compatibility
 * "/v1/embeddings": fields `model`, `input` — a string, an array of strings, of tokens or of token
 * arrays —, `encoding_format`, `dimensions`; translation in ollama/ollama `openai/openai.go`
 * `EmbeddingsMiddleware`, `toEmbeddingList`): run as an ollama `embed` task (POST /api/embed on the
 * node) on a node that has the model.
 *
 * `input` goes to the node as given (an empty string becomes `[""]`; no input or an empty array is
 * 400 `invalid input`, as Ollama answers). Answer: `{object: "list", data: [{object: "embedding",
 * embedding, index}], model, usage: {prompt_tokens, total_tokens}}` (tokens: the node's
 * `prompt_eval_count`). `encoding_format: "base64"` gives each embedding as the base64 of its
 * float32 values, little-endian — what OpenAI's SDKs decode (openai-node asks for base64 unless
 * the caller names a format, and reads it as a Float32Array).
 */
import type { ServerResponse } from 'node:http';
import { HttpError, sendJson } from './http.js';
import type { MeshGateway } from './mesh.js';
import { type NativeContext, single } from './native.js';

type Json = Record<string, unknown>;

/** float32 little-endian bytes of `values`, base64 (OpenAI's `encoding_format: "base64"`). */
export function floatsToBase64(values: number[]): string {
  const buf = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(Number(values[i]), i * 4);
  return buf.toString('base64');
}

/**
 * Translates an OpenAI EmbedRequest into an Ollama /api/embed body.
 * @throws HttpError 400 `invalid input` (none, or an empty array) or for an unknown encoding_format.
 */
export function toOllamaEmbed(body: Json): { request: Json; base64: boolean } {
  let input = body.input;
  if (input === '') input = [''];
  if (input === undefined || input === null || (Array.isArray(input) && input.length === 0)) throw new HttpError(400, 'invalid input');
  const format = body.encoding_format;
  if (format !== undefined && format !== null && format !== 'float' && format !== 'base64')
    throw new HttpError(400, `invalid encoding_format: ${JSON.stringify(format)} (float or base64)`);
  const request: Json = { model: body.model, input };
  if (typeof body.dimensions === 'number') request.dimensions = body.dimensions;
  return { request, base64: format === 'base64' };
}

/**
 * Answers `POST /v1/embeddings` (body already read and bounded by `readJson`).
 * @throws HttpError 400/404 and the mesh's CutterError (the caller writes them in OpenAI's shape).
 */
export async function embeddings(body: Json, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const { request, base64 } = toOllamaEmbed(body);
  const ctx: NativeContext = { mesh, signal };
  const answer = await single('embed', request, ctx);
  const vectors = Array.isArray(answer.embeddings) ? (answer.embeddings as number[][]) : [];
  const tokens = Number(answer.prompt_eval_count ?? 0);
  sendJson(res, 200, {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', embedding: base64 ? floatsToBase64(v) : v, index })),
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}
