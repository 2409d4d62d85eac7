/**
 * Ollama's streamed chat chunks → the Anthropic Messages API's server-sent events (Anthropic's docs
 * "Streaming Messages"; the translation as Ollama makes it, ollama/ollama `anthropic/anthropic.go`
 * `StreamConverter`, `middleware/anthropic.go` `writeSSE`).
 *
 * Each event is `event: <type>\ndata: <json>\n\n`. The order: `message_start` (the message with
 * empty content and the input tokens known so far), a `ping`, then per content block
 * `content_block_start`, its `content_block_delta`s (`thinking_delta`, `text_delta`, or one
 * `input_json_delta` carrying a tool call's whole arguments) and `content_block_stop`; at the end
 * `message_delta` (`stop_reason`, `usage` with input and output tokens) and `message_stop`. A
 * failure after the stream began is an `error` event (Anthropic's shape).
 */
import { anthropicError, stopReasonOf, toolUseOf } from './anthropic-shapes.js';

type Json = Record<string, unknown>;

/** One server-sent event's text. */
export function sse(type: string, data: Json): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The stream's last event when the run failed after it began (Anthropic's `error` event). */
export function sseError(status: number, message: string): string {
  const { type: _type, request_id: _id, ...rest } = anthropicError(status, message);
  return sse('error', { type: 'error', ...rest });
}

/** Turns one request's Ollama chat chunks into Anthropic events, keeping which block is open. */
export class AnthropicStream {
  private started = false;
  private index = 0;
  private open: 'thinking' | 'text' | null = null;
  private calledTools = false;

  /**
   * @param id the message id (`msg_…`)
   * @param model the model name as the client asked for it
   * @param estimatedInput the input-token estimate `message_start` carries (Ollama's counts come at the end)
   */
  constructor(
    private readonly id: string,
    private readonly model: string,
    private readonly estimatedInput: number,
  ) {}

  private start(c: Json): string {
    this.started = true;
    const input = Number(c.prompt_eval_count ?? 0) || this.estimatedInput;
    const message = {
      id: this.id,
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: input, output_tokens: 0 },
    };
    return sse('message_start', { type: 'message_start', message }) + sse('ping', { type: 'ping' });
  }

  private close(): string {
    if (!this.open) return '';
    const text = sse('content_block_stop', { type: 'content_block_stop', index: this.index });
    this.open = null;
    this.index++;
    return text;
  }

  private delta(kind: 'thinking' | 'text', piece: string): string {
    let text = '';
    if (this.open !== kind) {
      text += this.close();
      this.open = kind;
      const block = kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
      text += sse('content_block_start', { type: 'content_block_start', index: this.index, content_block: block });
    }
    const delta = kind === 'text' ? { type: 'text_delta', text: piece } : { type: 'thinking_delta', thinking: piece };
    return text + sse('content_block_delta', { type: 'content_block_delta', index: this.index, delta });
  }

  /** The events for one Ollama chat chunk (`{message: {content, thinking, tool_calls}, done, …}`). */
  chunk(c: Json): string {
    let text = this.started ? '' : this.start(c);
    const m = (c.message ?? {}) as Json;
    if (typeof m.thinking === 'string' && m.thinking) text += this.delta('thinking', m.thinking);
    if (typeof m.content === 'string' && m.content) text += this.delta('text', m.content);
    for (const call of Array.isArray(m.tool_calls) ? (m.tool_calls as Json[]) : []) {
      text += this.close();
      this.calledTools = true;
      const { input, ...block } = toolUseOf(call);
      text += sse('content_block_start', { type: 'content_block_start', index: this.index, content_block: { ...block, input: {} } });
      text += sse('content_block_delta', {
        type: 'content_block_delta',
        index: this.index,
        delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) },
      });
      text += sse('content_block_stop', { type: 'content_block_stop', index: this.index });
      this.index++;
    }
    if (c.done === true) {
      text += this.close();
      const usage = { input_tokens: Number(c.prompt_eval_count ?? 0), output_tokens: Number(c.eval_count ?? 0) };
      text += sse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: stopReasonOf(c.done_reason, this.calledTools), stop_sequence: null },
        usage,
      });
      text += sse('message_stop', { type: 'message_stop' });
    }
    return text;
  }
}
