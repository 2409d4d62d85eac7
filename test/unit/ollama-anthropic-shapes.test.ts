/**
 * The Anthropic Messages translation (controller/ollama-api/anthropic-shapes.ts,
 * anthropic-stream.ts) against Ollama's own rules (ollama/ollama `anthropic/anthropic.go`): what
 * reaches Ollama's /api/chat, which stop_reason a done_reason becomes, the event sequence of a
 * streamed answer with thinking, text and a tool call, and the error shapes.
 */
import { describe, expect, it } from 'vitest';
import { anthropicStatus } from '../../controller/ollama-api/anthropic.js';
import { anthropicError, estimateTokens, stopReasonOf, toMessage, toOllamaChat } from '../../controller/ollama-api/anthropic-shapes.js';
import { AnthropicStream, sseError } from '../../controller/ollama-api/anthropic-stream.js';
import { HttpError } from '../../controller/ollama-api/http.js';
import { CutterError } from '../../shared/errors.js';

const events = (text: string) =>
  [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((m) => ({ event: m[1], data: JSON.parse(m[2]) as Record<string, unknown> }));

describe('Anthropic Messages ↔ Ollama chat', () => {
  it('puts tool results before the user’s own text, names the tool, and maps the options', () => {
    const chat = toOllamaChat({
      max_tokens: 10,
      stop_sequences: ['END'],
      temperature: 0.2,
      top_k: 5,
      thinking: { type: 'enabled', budget_tokens: 100 },
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'snow' }] },
            { type: 'text', text: 'and tomorrow?' },
          ],
        },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'toolu_1', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] },
      { role: 'tool', content: 'snow', tool_call_id: 'toolu_1', tool_name: 'get_weather' },
      { role: 'user', content: 'and tomorrow?' },
    ]);
    expect(chat.options).toEqual({ num_predict: 10, stop: ['END'], temperature: 0.2, top_k: 5 });
    expect(chat.think).toBe(true);
  });

  it('refuses what Ollama refuses, with its messages', () => {
    const bad = (body: Record<string, unknown>) => () => toOllamaChat(body);
    expect(bad({ messages: [{ role: 'user', content: 'x' }] })).toThrow('max_tokens is required and must be positive');
    expect(bad({ max_tokens: 5, messages: [] })).toThrow('messages is required');
    const url = { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } };
    expect(bad({ max_tokens: 5, messages: [{ role: 'user', content: [url] }] })).toThrow(/Only base64 images are supported/);
    const notB64 = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'not base64!' } };
    expect(bad({ max_tokens: 5, messages: [{ role: 'user', content: [notB64] }] })).toThrow(/invalid base64 image data/);
    expect(bad({ max_tokens: 5, messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 'f' }] }] })).toThrow(
      /missing required 'id'/,
    );
  });

  it('maps done_reason to stop_reason as Ollama does, tool calls first', () => {
    expect(stopReasonOf('stop', false)).toBe('end_turn');
    expect(stopReasonOf('length', false)).toBe('max_tokens');
    expect(stopReasonOf('stop', true)).toBe('tool_use');
    expect(stopReasonOf('unload', false)).toBe('stop_sequence');
    expect(stopReasonOf(undefined, false)).toBeNull();
    const m = toMessage('msg_1', 'm', {
      done_reason: 'length',
      prompt_eval_count: 7,
      eval_count: 3,
      message: { content: 'hi', thinking: 'hmm' },
    });
    expect(m).toMatchObject({ stop_reason: 'max_tokens', usage: { input_tokens: 7, output_tokens: 3 } });
    expect((m.content as { type: string }[]).map((b) => b.type)).toEqual(['thinking', 'text']);
  });

  it('streams thinking, text and a tool call as separate blocks with rising indexes', () => {
    const s = new AnthropicStream('msg_1', 'qwen3', 12);
    const text =
      s.chunk({ message: { thinking: 'let me see' }, done: false }) +
      s.chunk({ message: { content: 'Checking.' }, done: false }) +
      s.chunk({ message: { content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] }, done: false }) +
      s.chunk({ message: { content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 20, eval_count: 9 });
    const ev = events(text);
    expect(ev.map((e) => `${e.event}${e.data.index ?? ''}`)).toEqual([
      'message_start',
      'ping',
      'content_block_start0',
      'content_block_delta0',
      'content_block_stop0',
      'content_block_start1',
      'content_block_delta1',
      'content_block_stop1',
      'content_block_start2',
      'content_block_delta2',
      'content_block_stop2',
      'message_delta',
      'message_stop',
    ]);
    expect(ev[0].data).toMatchObject({ message: { usage: { input_tokens: 12, output_tokens: 0 } } });
    expect(ev[9].data).toMatchObject({ delta: { type: 'input_json_delta', partial_json: '{"a":1}' } });
    expect(ev[11].data).toMatchObject({ delta: { stop_reason: 'tool_use' }, usage: { input_tokens: 20, output_tokens: 9 } });
  });

  it('writes errors in Anthropic’s shape: bodies, stream events and statuses', () => {
    expect(anthropicError(404, "model 'x' not found")).toMatchObject({
      type: 'error',
      error: { type: 'not_found_error', message: "model 'x' not found" },
    });
    expect(anthropicError(503, 'busy').error).toMatchObject({ type: 'overloaded_error' });
    expect(events(sseError(500, 'node lost'))[0]).toEqual({
      event: 'error',
      data: { type: 'error', error: { type: 'api_error', message: 'node lost' } },
    });
    expect(anthropicStatus(new CutterError('RATE_LIMITED', 'slow down'))).toBe(429);
    expect(anthropicStatus(new CutterError('NO_FIT', 'no node'))).toBe(503);
    expect(anthropicStatus(new HttpError(400, 'bad'))).toBe(400);
  });

  it('estimates input tokens as characters / 4, as Ollama does', () => {
    expect(estimateTokens({ system: 'abcd', messages: [{ role: 'user', content: 'efgh' }] })).toBe(3);
    expect(estimateTokens({ messages: [{ role: 'u', content: '' }] })).toBe(1);
  });
});
