/**
 * `POST /v1/responses`, stateless, as Ollama serves it (docs/api/openai-compatibility.mdx
 * "/v1/responses"; ollama/ollama `openai/responses.go`): translated to an Ollama chat
 * (openai-responses-shapes.ts) and run as an ollama `chat` task through the path `/api/chat` uses
 * (relay.ts → MeshGateway.run: placement, task record, rate limits, metrics, cancellation).
 *
 * Not streamed: one `response` object whose output is a `reasoning` item (when the model thought),
 * then the `function_call` items (when it called tools) or one assistant `message`.
 * Streamed (`"stream": true`): server-sent events `event: <type>\ndata: <json>\n\n`, each with a
 * `sequence_number` (OpenAI's "Streaming events"): `response.created`, `response.in_progress`;
 * for thinking `response.output_item.added`, `response.reasoning_summary_text.delta`… `.done`,
 * `response.output_item.done`; for a tool call `response.output_item.added`,
 * `response.function_call_arguments.delta` and `.done`, `response.output_item.done`; for text
 * `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…,
 * `response.output_text.done`, `response.content_part.done`, `response.output_item.done`; last
 * `response.completed` with the whole response and its usage. A failure after the stream began is
 * an `error` event (`{type: "error", code, message, param: null}`).
 */
import type { ServerResponse } from 'node:http';
import { HttpError, LineStream, sendJson } from './http.js';
import type { MeshGateway } from './mesh.js';
import { aggregate, modelOf, notFound } from './native.js';
import { functionCallItem, messageItem, responseObject, responsesId, responsesUsage, toOllamaChat } from './openai-responses-shapes.js';
import { relay } from './relay.js';

type Json = Record<string, unknown>;

/** Ollama chat chunks → Responses streaming events, keeping the open items and a sequence number. */
class ResponsesStream {
  private seq = 0;
  private started = false;
  private index = 0;
  private reasoning: { id: string; text: string } | null = null;
  private message: { id: string; text: string } | null = null;
  private readonly done: Json[] = [];

  constructor(
    private readonly id: string,
    private readonly model: string,
    private readonly body: Json,
  ) {}

  private ev(type: string, data: Json): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...data })}\n\n`;
  }

  private closeReasoning(): string {
    const r = this.reasoning;
    if (!r) return '';
    this.reasoning = null;
    const item = { id: r.id, type: 'reasoning', summary: [{ type: 'summary_text', text: r.text }], encrypted_content: r.text };
    this.done.push(item);
    const at = { item_id: r.id, output_index: this.index, summary_index: 0 };
    const text =
      this.ev('response.reasoning_summary_text.done', { ...at, text: r.text }) +
      this.ev('response.output_item.done', { output_index: this.index, item });
    this.index++;
    return text;
  }

  private closeMessage(): string {
    const m = this.message;
    if (!m) return '';
    this.message = null;
    const item = messageItem(m.id, m.text, 'completed');
    this.done.push(item);
    const at = { item_id: m.id, output_index: this.index, content_index: 0 };
    const text =
      this.ev('response.output_text.done', { ...at, text: m.text, logprobs: [] }) +
      this.ev('response.content_part.done', { ...at, part: (item.content as Json[])[0] }) +
      this.ev('response.output_item.done', { output_index: this.index, item });
    this.index++;
    return text;
  }

  /** The events for one Ollama chat chunk. */
  chunk(c: Json): string {
    let text = '';
    if (!this.started) {
      this.started = true;
      const response = responseObject(this.id, this.model, this.body, 'in_progress', [], null);
      text += this.ev('response.created', { response }) + this.ev('response.in_progress', { response });
    }
    const m = (c.message ?? {}) as Json;
    if (typeof m.thinking === 'string' && m.thinking) {
      text += this.closeMessage();
      if (!this.reasoning) {
        this.reasoning = { id: responsesId('rs'), text: '' };
        text += this.ev('response.output_item.added', {
          output_index: this.index,
          item: { id: this.reasoning.id, type: 'reasoning', summary: [] },
        });
      }
      this.reasoning.text += m.thinking;
      text += this.ev('response.reasoning_summary_text.delta', {
        item_id: this.reasoning.id,
        output_index: this.index,
        summary_index: 0,
        delta: m.thinking,
      });
    }
    if (typeof m.content === 'string' && m.content) {
      text += this.closeReasoning();
      if (!this.message) {
        this.message = { id: responsesId('msg'), text: '' };
        const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
        text += this.ev('response.output_item.added', { output_index: this.index, item: messageItem(this.message.id, '', 'in_progress') });
        text += this.ev('response.content_part.added', { item_id: this.message.id, output_index: this.index, content_index: 0, part });
      }
      this.message.text += m.content;
      text += this.ev('response.output_text.delta', {
        item_id: this.message.id,
        output_index: this.index,
        content_index: 0,
        delta: m.content,
        logprobs: [],
      });
    }
    for (const call of Array.isArray(m.tool_calls) ? (m.tool_calls as Json[]) : []) {
      text += this.closeReasoning() + this.closeMessage();
      const item = functionCallItem(call, responsesId('fc'), 'completed');
      const at = { item_id: item.id, output_index: this.index };
      text += this.ev('response.output_item.added', { output_index: this.index, item: { ...item, status: 'in_progress', arguments: '' } });
      text += this.ev('response.function_call_arguments.delta', { ...at, delta: item.arguments });
      text += this.ev('response.function_call_arguments.done', { ...at, arguments: item.arguments });
      text += this.ev('response.output_item.done', { output_index: this.index, item });
      this.done.push(item);
      this.index++;
    }
    if (c.done === true) {
      text += this.closeReasoning() + this.closeMessage();
      const response = responseObject(this.id, this.model, this.body, 'completed', this.done, responsesUsage(c));
      text += this.ev('response.completed', { response });
    }
    return text;
  }
}

/** The output items of a whole (aggregated) Ollama chat answer (responses.go `ToResponse`). */
function outputOf(last: Json): Json[] {
  const m = (last.message ?? {}) as Json;
  const out: Json[] = [];
  if (typeof m.thinking === 'string' && m.thinking)
    out.push({
      id: responsesId('rs'),
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: m.thinking }],
      encrypted_content: m.thinking,
    });
  const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as Json[]) : [];
  if (calls.length) for (const c of calls) out.push(functionCallItem(c, responsesId('fc'), 'completed'));
  else out.push(messageItem(responsesId('msg'), typeof m.content === 'string' ? m.content : '', 'completed'));
  return out;
}

/**
 * Answers `POST /v1/responses` (body already read and bounded by `readJson`).
 * @throws HttpError 400/404 and the mesh's CutterError before anything was written (the caller
 *   writes them in OpenAI's error shape); a failure after streaming began is an `error` event.
 */
export async function responses(body: Json, res: ServerResponse, mesh: MeshGateway, signal: AbortSignal): Promise<void> {
  const model = modelOf(body);
  const request = toOllamaChat(body);
  if ((request.messages as unknown[]).length === 0) throw new HttpError(400, 'input is required');
  if (!mesh.hasModel(model)) throw notFound(model);
  const id = responsesId('resp');
  const stream = body.stream === true;
  const events = new ResponsesStream(id, model, body);
  const out = new LineStream(res, 'text/event-stream');
  const kept = await relay(mesh, { kind: 'ollama', op: 'chat', model, request, pull: false }, signal, out, {
    stream,
    line: (c) => events.chunk(c),
    errorLine: (message) => `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'api_error', message, param: null })}\n\n`,
  });
  if (kept === null) return;
  if (stream) return out.end();
  const last = aggregate(kept, true);
  sendJson(res, 200, responseObject(id, model, body, 'completed', outputOf(last), responsesUsage(last)));
}
