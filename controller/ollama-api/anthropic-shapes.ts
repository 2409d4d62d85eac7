/**
 * The Anthropic Messages API's wire shapes as Ollama's translation layer makes them (ollama/ollama
 * `anthropic/anthropic.go`, docs/api/anthropic-compatibility.mdx; the shapes themselves are
 * Anthropic's, docs.anthropic.com/en/api/messages): request → Ollama `/api/chat` body, Ollama's
 * answer → a `message` object, the error body and the token estimate.
 *
 * Request → chat body (`FromMessagesRequest`): `system` (a string, or text blocks joined) becomes a
 * first `system` message; each message's text blocks are joined into `content`, `image` blocks
 * (`source.type: "base64"` only) become Ollama `images` (base64 strings), `tool_use` blocks become
 * `tool_calls` `{id, function: {name, arguments}}`, `tool_result` blocks become `tool` messages
 * (`tool_call_id`, and `tool_name` from the matching `tool_use` earlier in the conversation) placed
 * before the user's own text, `thinking` blocks become `thinking`; `max_tokens` → `num_predict`,
 * `temperature`, `top_p`, `top_k`, `stop_sequences` → `stop` in `options`; tools become
 * `{type: "function", function: {name, description, parameters: input_schema}}`; `thinking.type`
 * `enabled`/`disabled` → `think` true/false. `tool_choice` and `metadata` are accepted and not used
 * (as in Ollama).
 */
import { randomBytes } from 'node:crypto';
import { HttpError } from './http.js';
import { isJsonObject } from '../../shared/codec.js';

type Json = Record<string, unknown>;

/** Most messages, content blocks or tools one request may carry (the body is bounded before this too). */
const MAX_ITEMS = 10_000;

/** A fresh id with Anthropic's prefix (`msg_…`, `toolu_…`, `req_…`): 24 hex digits. */
export function anthropicId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

/**
 * Anthropic's error body for an HTTP status (anthropic.go `NewError`; Anthropic's docs "Errors"):
 * `{"type": "error", "error": {"type", "message"}, "request_id"}` with type
 * `invalid_request_error` (400), `authentication_error` (401), `permission_error` (403),
 * `not_found_error` (404), `rate_limit_error` (429), `overloaded_error` (503, 529) or `api_error`.
 */
export function anthropicError(status: number, message: string): Json {
  const type =
    {
      400: 'invalid_request_error',
      401: 'authentication_error',
      403: 'permission_error',
      404: 'not_found_error',
      413: 'request_too_large',
      429: 'rate_limit_error',
      503: 'overloaded_error',
      529: 'overloaded_error',
    }[status] ?? 'api_error';
  return { type: 'error', error: { type, message }, request_id: anthropicId('req') };
}

/** A message's content as blocks: a plain string is one text block (Anthropic's shorthand). */
function blocksOf(content: unknown, where: string): Json[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new HttpError(400, `${where}.content: expected a string or an array of content blocks`);
  if (content.length > MAX_ITEMS) throw new HttpError(400, `${where}.content: more than ${MAX_ITEMS} blocks`);
  return content.map((b, i) => {
    if (!isJsonObject(b) || typeof b.type !== 'string')
      throw new HttpError(400, `${where}.content.${i}: expected a content block with a type`);
    return b;
  });
}

/** The base64 data of an image block. @throws HttpError 400 for URL sources and bad base64 (as Ollama). */
function imageOf(block: Json, where: string): string {
  const source = isJsonObject(block.source) ? block.source : undefined;
  if (!source) throw new HttpError(400, `${where}: invalid image source`);
  if (source.type !== 'base64')
    throw new HttpError(400, `${where}: invalid image source type: ${String(source.type)}. Only base64 images are supported.`);
  const data = typeof source.data === 'string' ? source.data : '';
  if (!data || !/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0)
    throw new HttpError(400, `${where}: invalid base64 image data`);
  return data;
}

/** The text (and images) of a `tool_result` block's content: a string or text/image blocks. */
function toolResultOf(content: unknown, where: string): { text: string; images: string[] } {
  if (content === undefined || content === null) return { text: '', images: [] };
  if (typeof content === 'string') return { text: content, images: [] };
  if (!Array.isArray(content)) return { text: '', images: [] };
  let text = '';
  const images: string[] = [];
  for (const b of content) {
    if (!isJsonObject(b)) continue;
    if (b.type === 'text' && typeof b.text === 'string') text += b.text;
    else if (b.type === 'image') images.push(imageOf(b, where));
  }
  return { text, images };
}

/** The system prompt: a string, or the text of an array of text blocks joined. */
function systemOf(system: unknown): string {
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) return '';
  return system.map((b) => (isJsonObject(b) && b.type === 'text' && typeof b.text === 'string' ? b.text : '')).join('');
}

/**
 * Translates a Messages request body to an Ollama `/api/chat` body (without `model` and `stream`).
 * @throws HttpError 400 with Ollama's messages: `max_tokens is required and must be positive`,
 *   `messages is required`, a malformed block, a `tool_use` with no id or name, a non-base64 image.
 */
export function toOllamaChat(body: Json): Json {
  if (typeof body.max_tokens !== 'number' || !(body.max_tokens > 0))
    throw new HttpError(400, 'max_tokens is required and must be positive');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new HttpError(400, 'messages is required');
  if (body.messages.length > MAX_ITEMS) throw new HttpError(400, `more than ${MAX_ITEMS} messages`);
  const messages: Json[] = [];
  const system = systemOf(body.system);
  if (system) messages.push({ role: 'system', content: system });
  const toolNames = new Map<string, string>();
  (body.messages as unknown[]).forEach((m, i) => {
    const where = `messages.${i}`;
    // Any role passes through lower-cased, as Ollama's convertMessage does (Claude Code sends more than user/assistant).
    if (!isJsonObject(m) || typeof m.role !== 'string' || !m.role || m.role.length > 64)
      throw new HttpError(400, `${where}.role: expected "user" or "assistant"`);
    const role = m.role.toLowerCase();
    let text = '';
    let thinking = '';
    const images: string[] = [];
    const toolCalls: Json[] = [];
    const results: Json[] = [];
    blocksOf(m.content, where).forEach((b, j) => {
      const at = `${where}.content.${j}`;
      switch (b.type) {
        case 'text':
          if (typeof b.text === 'string') text += b.text;
          break;
        case 'image':
          images.push(imageOf(b, at));
          break;
        case 'tool_use': {
          if (typeof b.id !== 'string' || !b.id) throw new HttpError(400, `${at}: tool_use block missing required 'id' field`);
          if (typeof b.name !== 'string' || !b.name) throw new HttpError(400, `${at}: tool_use block missing required 'name' field`);
          toolNames.set(b.id, b.name);
          toolCalls.push({ id: b.id, function: { name: b.name, arguments: isJsonObject(b.input) ? b.input : {} } });
          break;
        }
        case 'tool_result': {
          const id = typeof b.tool_use_id === 'string' ? b.tool_use_id : '';
          const r = toolResultOf(b.content, at);
          const name = toolNames.get(id);
          results.push({
            role: 'tool',
            content: r.text,
            ...(r.images.length ? { images: r.images } : {}),
            ...(id ? { tool_call_id: id } : {}),
            ...(name ? { tool_name: name } : {}),
          });
          break;
        }
        case 'thinking':
          if (typeof b.thinking === 'string') thinking = b.thinking;
          break;
        default: // redacted_thinking, document, … : not supported by Ollama, skipped as it does
      }
    });
    // Tool results answer the assistant's calls, so they come before the user's own words.
    if (role === 'user') messages.push(...results);
    if (text || images.length || toolCalls.length || thinking) {
      messages.push({
        role,
        content: text,
        ...(images.length ? { images } : {}),
        ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
        ...(thinking ? { thinking } : {}),
      });
    }
    if (role !== 'user') messages.push(...results);
  });
  const options: Json = { num_predict: body.max_tokens };
  if (typeof body.temperature === 'number') options.temperature = body.temperature;
  if (typeof body.top_p === 'number') options.top_p = body.top_p;
  if (typeof body.top_k === 'number') options.top_k = body.top_k;
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length)
    options.stop = body.stop_sequences.filter((s) => typeof s === 'string');
  const out: Json = { messages, options };
  if (Array.isArray(body.tools) && body.tools.length) {
    if (body.tools.length > MAX_ITEMS) throw new HttpError(400, `more than ${MAX_ITEMS} tools`);
    out.tools = body.tools.map((t, i) => {
      if (!isJsonObject(t) || typeof t.name !== 'string' || !t.name) throw new HttpError(400, `tools.${i}.name: required`);
      const parameters = t.input_schema === undefined ? { type: 'object', properties: {} } : t.input_schema;
      if (!isJsonObject(parameters)) throw new HttpError(400, `invalid input_schema for tool "${t.name}"`);
      return {
        type: 'function',
        function: { name: t.name, ...(typeof t.description === 'string' ? { description: t.description } : {}), parameters },
      };
    });
  }
  const thinkingCfg = isJsonObject(body.thinking) ? body.thinking.type : undefined;
  if (thinkingCfg === 'enabled') out.think = true;
  else if (thinkingCfg === 'disabled') out.think = false;
  return out;
}

/**
 * Anthropic's `stop_reason` for Ollama's `done_reason` (anthropic.go `mapStopReason`):
 * `tool_use` when the model called a tool, `stop` → `end_turn`, `length` → `max_tokens`, any other
 * reason → `stop_sequence`. Ollama reports a matched stop sequence as `stop` too, so a stop
 * sequence usually shows as `end_turn`, as it does from Ollama itself.
 */
export function stopReasonOf(doneReason: unknown, calledTools: boolean): string | null {
  if (calledTools) return 'tool_use';
  if (doneReason === 'stop') return 'end_turn';
  if (doneReason === 'length') return 'max_tokens';
  return typeof doneReason === 'string' && doneReason ? 'stop_sequence' : null;
}

/** `usage` from an Ollama final chunk: `prompt_eval_count` → input, `eval_count` → output tokens. */
export function usageOf(c: Json): { input_tokens: number; output_tokens: number } {
  return { input_tokens: Number(c.prompt_eval_count ?? 0), output_tokens: Number(c.eval_count ?? 0) };
}

/** A `tool_use` content block for one of Ollama's tool calls (an id is made when the model gave none). */
export function toolUseOf(call: Json): Json {
  const fn = isJsonObject(call.function) ? call.function : {};
  return {
    type: 'tool_use',
    id: typeof call.id === 'string' && call.id ? call.id : anthropicId('toolu'),
    name: typeof fn.name === 'string' ? fn.name : '',
    input: isJsonObject(fn.arguments) ? fn.arguments : {},
  };
}

/**
 * The `message` object for a whole (aggregated) Ollama chat answer (anthropic.go
 * `ToMessagesResponse`): content blocks thinking, text, then one `tool_use` per call.
 */
export function toMessage(id: string, model: string, last: Json): Json {
  const message = isJsonObject(last.message) ? last.message : {};
  const content: Json[] = [];
  if (typeof message.thinking === 'string' && message.thinking)
    content.push({ type: 'thinking', thinking: message.thinking, signature: '' });
  if (typeof message.content === 'string' && message.content) content.push({ type: 'text', text: message.content });
  const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as Json[]) : [];
  for (const c of calls) content.push(toolUseOf(c));
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReasonOf(last.done_reason, calls.length > 0),
    stop_sequence: null,
    usage: usageOf(last),
  };
}

/**
 * An ESTIMATE of a request's input tokens, as Ollama makes it (anthropic.go `estimateTokens`): the
 * characters of the system prompt, each message's role and text (tool blocks as their JSON) and
 * each tool's name, description and schema, divided by four; at least 1 when there is any input.
 * Not the model's tokenizer: it answers `/v1/messages/count_tokens` without running the model.
 */
export function estimateTokens(body: Json): number {
  let chars = systemOf(body.system).length;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const m of messages) {
    if (!isJsonObject(m)) continue;
    chars += typeof m.role === 'string' ? m.role.length : 0;
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) {
      for (const b of m.content) {
        if (!isJsonObject(b)) continue;
        if (typeof b.text === 'string') chars += b.text.length;
        if (typeof b.thinking === 'string') chars += b.thinking.length;
        if (b.type === 'tool_use' || b.type === 'tool_result') chars += JSON.stringify(b).length;
      }
    }
  }
  for (const t of Array.isArray(body.tools) ? body.tools : []) {
    if (!isJsonObject(t)) continue;
    chars += String(t.name ?? '').length + String(t.description ?? '').length + JSON.stringify(t.input_schema ?? '').length;
  }
  const tokens = Math.floor(chars / 4);
  return tokens === 0 && (messages.length > 0 || body.system !== undefined) ? 1 : tokens;
}
