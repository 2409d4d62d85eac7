/**
 * The OpenAI Responses API's wire shapes as Ollama's translation layer makes them (ollama/ollama
 * `openai/responses.go`; docs/api/openai-compatibility.mdx "/v1/responses", added in Ollama
 * v0.13.3; the shapes are OpenAI's, platform.openai.com/docs/api-reference/responses): stateless
 * only — no `previous_response_id`, no `conversation`.
 *
 * Request → Ollama `/api/chat` body (`FromResponsesRequest`): `instructions` becomes a first
 * `system` message; `input` is a string (one user message) or items — messages (`role`, `content`
 * as a string or `input_text` / `output_text` / `input_image` parts; images as data URLs),
 * `function_call` items (an assistant message's `tool_calls`, arguments parsed from their JSON
 * string), `function_call_output` items (a `tool` message with `tool_call_id`), `reasoning` items
 * (the next assistant message's `thinking`); `temperature` (default 1.0), `top_p`,
 * `max_output_tokens` → `num_predict`; tools `{type: "function", name, description, parameters}`
 * → Ollama function tools; `text.format` of type `json_schema` → `format`; `reasoning.effort`
 * → `think`.
 */
import { randomBytes } from 'node:crypto';
import { HttpError } from './http.js';
import { isJsonObject } from '../../shared/codec.js';

type Json = Record<string, unknown>;

const MAX_ITEMS = 10_000;

/** A fresh id with an OpenAI prefix (`resp_…`, `msg_…`, `fc_…`, `call_…`). */
export function responsesId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

/** Text and images of a message's content parts (responses.go `convertResponsesContent`). */
function contentOf(content: unknown, where: string): { text: string; images: string[] } {
  if (typeof content === 'string') return { text: content, images: [] };
  if (content === undefined || content === null) return { text: '', images: [] };
  if (!Array.isArray(content)) throw new HttpError(400, `${where}.content: content must be a string or array`);
  let text = '';
  const images: string[] = [];
  content.forEach((p, i) => {
    if (!isJsonObject(p)) throw new HttpError(400, `${where}.content[${i}]: expected an object`);
    if ((p.type === 'input_text' || p.type === 'output_text') && typeof p.text === 'string') text += p.text;
    else if (p.type === 'input_image') {
      if (typeof p.image_url !== 'string' || !p.image_url) return; // file_id: not supported, skipped as Ollama does
      const b64 = /^data:(?:image\/[a-z+.-]+)?;base64,(.*)$/.exec(p.image_url)?.[1];
      if (!b64) throw new HttpError(400, `${where}.content[${i}]: invalid image input (only data: URLs)`);
      images.push(b64);
    } else if (p.type === 'input_file') throw new HttpError(400, 'file inputs are not currently supported');
    else throw new HttpError(400, `${where}.content[${i}]: unknown content type: ${String(p.type)}`);
  });
  return { text, images };
}

/**
 * Translates a Responses request body to an Ollama `/api/chat` body (without `model`, `stream`).
 * @throws HttpError 400: stateful fields, malformed input items, bad function-call arguments,
 *   an unknown reasoning effort.
 */
export function toOllamaChat(body: Json): Json {
  if (body.previous_response_id !== undefined && body.previous_response_id !== null)
    throw new HttpError(
      400,
      'previous_response_id is not supported: /v1/responses is stateless here (as in Ollama); send the whole conversation as input',
    );
  if (body.conversation !== undefined && body.conversation !== null)
    throw new HttpError(
      400,
      'conversation is not supported: /v1/responses is stateless here (as in Ollama); send the whole conversation as input',
    );
  const messages: Json[] = [];
  if (typeof body.instructions === 'string' && body.instructions) messages.push({ role: 'system', content: body.instructions });
  if (typeof body.input === 'string') {
    if (body.input) messages.push({ role: 'user', content: body.input });
  } else if (Array.isArray(body.input)) {
    if (body.input.length > MAX_ITEMS) throw new HttpError(400, `input: more than ${MAX_ITEMS} items`);
    let thinking = '';
    body.input.forEach((item, i) => {
      const where = `input[${i}]`;
      if (!isJsonObject(item)) throw new HttpError(400, `${where}: expected an object`);
      const type = typeof item.type === 'string' && item.type ? item.type : typeof item.role === 'string' ? 'message' : '';
      const last = messages.at(-1);
      if (type === 'reasoning') {
        thinking = typeof item.encrypted_content === 'string' ? item.encrypted_content : '';
      } else if (type === 'message') {
        if (typeof item.role !== 'string' || !item.role) throw new HttpError(400, `${where}.role: required`);
        const c = contentOf(item.content, where);
        const msg: Json = { role: item.role, content: c.text, ...(c.images.length ? { images: c.images } : {}) };
        if (item.role === 'assistant' && thinking) {
          msg.thinking = thinking;
          thinking = '';
        }
        messages.push(msg);
      } else if (type === 'function_call') {
        let args: unknown = {};
        try {
          args = typeof item.arguments === 'string' && item.arguments ? JSON.parse(item.arguments) : {};
        } catch (err) {
          throw new HttpError(400, `failed to parse function call arguments: ${(err as Error).message}`);
        }
        const call = { ...(typeof item.call_id === 'string' ? { id: item.call_id } : {}), function: { name: item.name, arguments: args } };
        if (last?.role === 'assistant') last.tool_calls = [...((last.tool_calls as unknown[]) ?? []), call];
        else messages.push({ role: 'assistant', content: '', tool_calls: [call], ...(thinking ? { thinking } : {}) });
        thinking = '';
      } else if (type === 'function_call_output') {
        const c = typeof item.output === 'string' ? { text: item.output, images: [] } : contentOf(item.output, where);
        messages.push({
          role: 'tool',
          content: c.text,
          ...(c.images.length ? { images: c.images } : {}),
          ...(typeof item.call_id === 'string' ? { tool_call_id: item.call_id } : {}),
        });
      } else if (!type) throw new HttpError(400, `${where}: input item missing required 'type' field`);
      else throw new HttpError(400, `${where}: unknown input item type: "${type}"`);
    });
    if (thinking) messages.push({ role: 'assistant', content: '', thinking });
  } else if (body.input !== undefined) throw new HttpError(400, 'input must be a string or array');
  const options: Json = { temperature: typeof body.temperature === 'number' ? body.temperature : 1.0 };
  if (typeof body.top_p === 'number') options.top_p = body.top_p;
  if (typeof body.max_output_tokens === 'number') options.num_predict = body.max_output_tokens;
  const out: Json = { messages, options };
  if (Array.isArray(body.tools) && body.tools.length) {
    if (body.tools.length > MAX_ITEMS) throw new HttpError(400, `more than ${MAX_ITEMS} tools`);
    out.tools = body.tools.map((t, i) => {
      if (!isJsonObject(t) || typeof t.name !== 'string') throw new HttpError(400, `tools[${i}]: a function tool needs a name`);
      return {
        type: typeof t.type === 'string' ? t.type : 'function',
        function: { name: t.name, description: typeof t.description === 'string' ? t.description : '', parameters: t.parameters ?? {} },
      };
    });
  }
  const format = isJsonObject(body.text) && isJsonObject(body.text.format) ? body.text.format : undefined;
  if (format?.type === 'json_schema' && format.schema !== undefined) out.format = format.schema;
  const effort = isJsonObject(body.reasoning) ? body.reasoning.effort : undefined;
  if (typeof effort === 'string' && effort) {
    if (effort === 'none') out.think = false;
    else if (['low', 'medium', 'high', 'max'].includes(effort)) out.think = effort;
    else throw new HttpError(400, `invalid reasoning value: "${effort}" (must be "high", "medium", "low", "max", or "none")`);
  }
  return out;
}

/** A `function_call` output item for one of Ollama's tool calls (arguments as a JSON string). */
export function functionCallItem(call: Json, id: string, status: 'in_progress' | 'completed'): Json {
  const fn = isJsonObject(call.function) ? call.function : {};
  return {
    id,
    type: 'function_call',
    status,
    call_id: typeof call.id === 'string' && call.id ? call.id : responsesId('call'),
    name: typeof fn.name === 'string' ? fn.name : '',
    arguments: status === 'in_progress' ? '' : JSON.stringify(fn.arguments ?? {}),
  };
}

/** The assistant `message` output item with its one `output_text` part. */
export function messageItem(id: string, text: string, status: 'in_progress' | 'completed'): Json {
  return {
    id,
    type: 'message',
    status,
    role: 'assistant',
    content: status === 'in_progress' ? [] : [{ type: 'output_text', text, annotations: [], logprobs: [] }],
  };
}

/** `usage` from an Ollama final chunk (prompt_eval_count, eval_count; tokens). */
export function responsesUsage(c: Json): Json {
  const input = Number(c.prompt_eval_count ?? 0);
  const output = Number(c.eval_count ?? 0);
  return {
    input_tokens: input,
    output_tokens: output,
    total_tokens: input + output,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens_details: { reasoning_tokens: 0 },
  };
}

/**
 * The `response` object (responses.go `ToResponse` / `buildResponseObject`): the request's
 * settings echoed, `store: false` (nothing is kept), the given status, output and usage.
 */
export function responseObject(id: string, model: string, body: Json, status: string, output: Json[], usage: Json | null): Json {
  const format = isJsonObject(body.text) && isJsonObject(body.text.format) ? body.text.format : { type: 'text' };
  const reasoning = isJsonObject(body.reasoning)
    ? { effort: body.reasoning.effort ?? null, summary: body.reasoning.summary ?? null }
    : null;
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    completed_at: status === 'completed' ? Math.floor(Date.now() / 1000) : null,
    status,
    incomplete_details: null,
    model,
    previous_response_id: null,
    instructions: typeof body.instructions === 'string' && body.instructions ? body.instructions : null,
    output,
    error: null,
    tools: Array.isArray(body.tools) ? body.tools : [],
    tool_choice: 'auto',
    truncation: typeof body.truncation === 'string' ? body.truncation : 'disabled',
    parallel_tool_calls: true,
    text: { format },
    top_p: typeof body.top_p === 'number' ? body.top_p : 1.0,
    presence_penalty: 0,
    frequency_penalty: 0,
    top_logprobs: 0,
    temperature: typeof body.temperature === 'number' ? body.temperature : 1.0,
    reasoning,
    usage,
    max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
    max_tool_calls: null,
    store: false,
    background: false,
    service_tier: 'default',
    metadata: {},
    safety_identifier: null,
    prompt_cache_key: null,
  };
}
