/**
 * `POST /v1/completions` as Ollama serves it (docs.ollama.com/api/openai-compatibility
 * "/v1/completions"; translation in ollama/ollama `openai/openai.go` `fromCompleteRequest`,
 * `toCompletion`, `toCompleteChunk`, `CompleteWriter`): the legacy OpenAI text completion, run as
 * an ollama `generate` task on a node that has the model.
 *
 * Request fields used: `model`, `prompt` (a string only: "prompt currently only accepts a string"),
 * `suffix`, `stream`, `stream_options.include_usage`, and into Ollama's `options`: `max_tokens` →
 * `num_predict`, `temperature` (default 1.0), `top_p` (default 1.0), `seed`, `frequency_penalty`,
 * `presence_penalty`, `stop` (a string or an array of strings).
 * Answer: a `text_completion` object `{id: "cmpl-N", object, created, model, system_fingerprint:
 * "fp_ollama", choices: [{text, index: 0, finish_reason}], usage}`; streamed as server-sent events
 * of the same object with each piece of text, then (with `include_usage`) a chunk with no choices
 * and the usage, then `data: [DONE]`.
 */
import { randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { HttpError, LineStream, sendJson } from './http.js';
import type { MeshGateway } from './mesh.js';
import { aggregate, modelOf, notFound } from './native.js';
import { openaiError, unixOf, usageOf } from './openai-shapes.js';
import { relay } from './relay.js';

type Json = Record<string, unknown>;

/**
 * Translates a CompletionRequest to an Ollama generate body (openai.go `fromCompleteRequest`).
 * @throws HttpError 400 when `prompt` is not a string or `stop` holds something other than strings.
 */
export function toOllamaGenerate(body: Json): Json {
  if (body.prompt !== undefined && typeof body.prompt !== 'string')
    throw new HttpError(400, "invalid type for 'prompt' field: only a string is accepted");
  const options: Json = {};
  if (typeof body.stop === 'string') options.stop = [body.stop];
  else if (Array.isArray(body.stop)) {
    for (const s of body.stop) if (typeof s !== 'string') throw new HttpError(400, `invalid type for 'stop' field: ${typeof s}`);
    options.stop = body.stop;
  }
  if (typeof body.max_tokens === 'number') options.num_predict = body.max_tokens;
  options.temperature = typeof body.temperature === 'number' ? body.temperature : 1.0;
  if (typeof body.seed === 'number') options.seed = body.seed;
  options.frequency_penalty = typeof body.frequency_penalty === 'number' ? body.frequency_penalty : 0;
  options.presence_penalty = typeof body.presence_penalty === 'number' ? body.presence_penalty : 0;
  options.top_p = typeof body.top_p === 'number' && body.top_p !== 0 ? body.top_p : 1.0;
  const out: Json = { prompt: body.prompt ?? '', options };
  if (typeof body.suffix === 'string' && body.suffix) out.suffix = body.suffix;
  return out;
}

/** One `text_completion` object for an Ollama generate chunk (openai.go `toCompletion`/`toCompleteChunk`). */
function completionOf(id: string, model: string, c: Json, created: number): Json {
  const reason = typeof c.done_reason === 'string' && c.done_reason ? c.done_reason : null;
  return {
    id,
    object: 'text_completion',
    created,
    model: c.model ?? model,
    system_fingerprint: 'fp_ollama',
    choices: [{ text: typeof c.response === 'string' ? c.response : '', index: 0, finish_reason: reason }],
  };
}

/**
 * Answers `POST /v1/completions` (body already read and bounded by `readJson`).
 * @throws HttpError 400/404 and the mesh's CutterError before anything was written (the caller
 *   writes them in OpenAI's error shape); a failure after streaming began is an SSE error event.
 */
export async function completions(body: Json, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const model = modelOf(body);
  const request = toOllamaGenerate(body);
  if (!mesh.hasModel(model)) throw notFound(model);
  const id = `cmpl-${randomInt(1000)}`;
  const stream = body.stream === true;
  const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true;
  const out = new LineStream(res, 'text/event-stream');
  const now = () => Math.floor(Date.now() / 1000);
  const kept = await relay(mesh, { kind: 'ollama', op: 'generate', model, request, pull: false }, signal, out, {
    stream,
    line: (c) => {
      const chunk = completionOf(id, model, c, now());
      // Ollama's CompleteWriter: with include_usage every chunk carries a zero usage, and the last
      // is followed by one with no choices and the real usage.
      if (includeUsage) chunk.usage = usageOf({});
      let text = `data: ${JSON.stringify(chunk)}\n\n`;
      if (c.done === true && includeUsage) text += `data: ${JSON.stringify({ ...chunk, choices: [], usage: usageOf(c) })}\n\n`;
      return text;
    },
    errorLine: (message) => `data: ${JSON.stringify(openaiError(500, message))}\n\n`,
  });
  if (kept === null) return;
  if (stream) return out.end('data: [DONE]\n\n');
  const last = aggregate(kept, false);
  sendJson(res, 200, { ...completionOf(id, model, last, unixOf(last)), usage: usageOf(last) });
}
