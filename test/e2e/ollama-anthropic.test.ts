/**
 * The Anthropic Messages API through the mesh (issue 22), with the official TypeScript client
 * (`@anthropic-ai/sdk`) as users run it, against a real `cutter server` and two `cutter agent`s each
 * beside an Ollama double (test/doubles/ollama.ts — real Ollama cannot be installed here; the double
 * follows Ollama's documented API, tool calls included). The mesh: `pi` has gemma2:2b, `notebook`
 * has qwen3-coder. The double on `notebook` calls `get_weather` when a chat with tools has not had
 * a tool answer yet.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { cli, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

type Msg = { role?: string; content?: string; images?: string[]; tool_calls?: unknown[]; tool_call_id?: string; tool_name?: string };

const weatherTool = {
  name: 'get_weather',
  description: 'Get the current weather in a location',
  input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] },
};

describe('Anthropic Messages API across the mesh', () => {
  let server: Daemon;
  let url: string;
  let api: string;
  let pi: Daemon;
  let notebook: Daemon;
  // num_predict (max_tokens) as Ollama treats it: a limit, `done_reason: "length"` when reached.
  const piOllama = new OllamaDouble({ models: [{ name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2' }], predictAsLimit: true });
  const nbOllama = new OllamaDouble({
    models: [{ name: 'qwen3-coder:latest', size: 1_900_000_000, family: 'qwen3' }],
    tokenDelayMs: 2,
    predictAsLimit: true,
    toolCall: (body) => {
      const messages = body.messages as Msg[];
      return messages.at(-1)?.role === 'tool' ? undefined : { name: 'get_weather', arguments: { location: 'Paris' } };
    },
  });
  const chats = (d: OllamaDouble) => d.requests.filter((r) => r.path === '/api/chat');
  const client = () => new Anthropic({ baseURL: api, apiKey: 'ollama', maxRetries: 0 });

  beforeAll(async () => {
    const [piUrl, nbUrl, port] = await Promise.all([piOllama.start(), nbOllama.start(), freePort()]);
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    [pi, notebook] = await Promise.all([
      startAgent(url, 'pi', ['--max-memory', '4g', '--ollama-url', piUrl]),
      startAgent(url, 'notebook', ['--max-memory', '8g', '--ollama-url', nbUrl]),
    ]);
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] };
      expect(tags.models.map((m) => m.name)).toEqual(['gemma2:2b', 'qwen3-coder:latest']);
      return true;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pi?.stop('SIGKILL'), notebook?.stop('SIGKILL')]);
    await server?.stop();
    await Promise.all([piOllama.stop(), nbOllama.stop()]);
  });

  it('answers messages.create with text, a system prompt, usage and end_turn, as a task on the node with the model', async () => {
    const before = chats(piOllama).length;
    const m = await client().messages.create({
      model: 'gemma2:2b',
      max_tokens: 64,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'hello mesh' }],
    });
    expect(m).toMatchObject({ type: 'message', role: 'assistant', model: 'gemma2:2b', stop_reason: 'end_turn' });
    expect(m.id).toMatch(/^msg_/);
    expect(m.content).toEqual([{ type: 'text', text: 'echo: hello mesh' }]);
    // Ollama's counts: the double's prompt_eval_count is the last prompt's words, eval_count its tokens.
    expect(m.usage).toMatchObject({ input_tokens: 2, output_tokens: 3 });
    const sent = chats(piOllama);
    expect(sent.length).toBe(before + 1);
    expect(sent.at(-1)!.body).toMatchObject({
      model: 'gemma2:2b',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'hello mesh' },
      ],
      options: { num_predict: 64 },
    });
    const r = await cli(['tasks', 'list', '--json'], { broker: url });
    const tasks = JSON.parse(r.stdout) as { kind: string; summary: string; node: string; state: string }[];
    expect(tasks.find((t) => t.summary === 'chat gemma2:2b')).toMatchObject({ kind: 'ollama', node: 'pi', state: 'succeeded' });
  });

  it('carries a multi-turn conversation, system blocks and an image block to the node as Ollama messages and images', async () => {
    const png = Buffer.from('\x89PNG\r\n\x1a\n fake image bytes').toString('base64');
    const m = await client().messages.create({
      model: 'gemma2:2b',
      max_tokens: 100,
      system: [
        { type: 'text', text: 'Describe ' },
        { type: 'text', text: 'images.' },
      ],
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [{ type: 'text', text: 'hello' }] },
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
            { type: 'text', text: 'what is this' },
          ],
        },
      ],
    });
    expect(m.content).toEqual([{ type: 'text', text: 'echo: what is this' }]);
    expect(chats(piOllama).at(-1)!.body!.messages).toEqual([
      { role: 'system', content: 'Describe images.' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'what is this', images: [png] },
    ]);
  });

  it('streams with messages.stream: the event sequence, the text deltas, the final message and its usage', async () => {
    const stream = client().messages.stream({
      model: 'gemma2:2b',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'count one two three' }],
    });
    const types: string[] = [];
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    const final = await stream.finalMessage();
    const deltas = types.filter((t) => t === 'content_block_delta').length;
    expect(deltas).toBe(5); // "echo:", " count", " one", " two", " three": one event per Ollama chunk
    // The SDK hands on every event but `ping`; the wire has one after message_start, as Anthropic sends it.
    expect(types).toEqual([
      'message_start',
      'content_block_start',
      ...Array(deltas).fill('content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(text).toBe('echo: count one two three');
    const wire = await fetch(`${api}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-api-key': 'ollama' },
      body: JSON.stringify({ model: 'gemma2:2b', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'count one' }] }),
    });
    expect(wire.headers.get('content-type')).toBe('text/event-stream');
    const names = [...(await wire.text()).matchAll(/^event: (\w+)$/gm)].map((x) => x[1]);
    expect(names).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(final.content).toEqual([{ type: 'text', text: 'echo: count one two three' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage).toMatchObject({ input_tokens: 4, output_tokens: 5 });

    // Cut by max_tokens: Ollama's done_reason "length" is stop_reason max_tokens.
    const cut = await client()
      .messages.stream({ model: 'gemma2:2b', max_tokens: 2, messages: [{ role: 'user', content: 'count one two three' }] })
      .finalMessage();
    expect(cut.content).toEqual([{ type: 'text', text: 'echo: count' }]);
    expect(cut).toMatchObject({ stop_reason: 'max_tokens', usage: { output_tokens: 2 } });
  });

  it('makes a tool round trip: tool_use out (created and streamed), tool_result back in', async () => {
    const ask = { role: 'user' as const, content: "What's the weather in Paris?" };
    const first = await client().messages.create({ model: 'qwen3-coder', max_tokens: 200, tools: [weatherTool], messages: [ask] });
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toHaveLength(1);
    const use = first.content[0] as Anthropic.ToolUseBlock;
    expect(use).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { location: 'Paris' } });
    // The tool definition reached the node as an Ollama function tool.
    expect(chats(nbOllama).at(-1)!.body!.tools).toEqual([
      {
        type: 'function',
        function: { name: 'get_weather', description: weatherTool.description, parameters: weatherTool.input_schema },
      },
    ]);

    // Streamed, the call arrives as a tool_use block with an input_json_delta the SDK parses.
    const stream = client().messages.stream({ model: 'qwen3-coder', max_tokens: 200, tools: [weatherTool], messages: [ask] });
    const deltas: string[] = [];
    stream.on('streamEvent', (ev) => {
      if (ev.type === 'content_block_delta') deltas.push(ev.delta.type);
    });
    const streamed = await stream.finalMessage();
    expect(deltas).toEqual(['input_json_delta']);
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content[0]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { location: 'Paris' } });

    const second = await client().messages.create({
      model: 'qwen3-coder',
      max_tokens: 200,
      tools: [weatherTool],
      messages: [
        ask,
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 C and sunny' }] },
      ],
    });
    expect(second.stop_reason).toBe('end_turn');
    expect(second.content).toEqual([{ type: 'text', text: 'echo: 18 C and sunny' }]);
    const messages = chats(nbOllama).at(-1)!.body!.messages as Msg[];
    expect(messages[1]).toMatchObject({
      role: 'assistant',
      tool_calls: [{ id: use.id, function: { name: 'get_weather', arguments: { location: 'Paris' } } }],
    });
    expect(messages[2]).toEqual({ role: 'tool', content: '18 C and sunny', tool_call_id: use.id, tool_name: 'get_weather' });
  });

  it('cancels the task on its node when the client stops reading a stream', async () => {
    const before = chats(nbOllama).length;
    const long = Array.from({ length: 3_000 }, (_, i) => `w${i}`).join(' ');
    const stream = client().messages.stream({ model: 'qwen3-coder', max_tokens: 5_000, messages: [{ role: 'user', content: long }] });
    let deltas = 0;
    for await (const ev of stream) if (ev.type === 'content_block_delta' && ++deltas === 3) break; // leaving the loop aborts the request
    await eventually(() => chats(nbOllama).length === before + 1 && chats(nbOllama).at(-1)!.aborted, 15_000);
    await eventually(async () => {
      const r = await cli(['tasks', 'list', '--json'], { broker: url });
      const tasks = JSON.parse(r.stdout) as { summary: string; state: string }[];
      return tasks.filter((t) => t.summary === 'chat qwen3-coder').some((t) => t.state === 'cancelled');
    }, 15_000);
  });

  it("answers errors in Anthropic's shape: an unknown model 404, a missing max_tokens 400", async () => {
    const err = await client()
      .messages.create({ model: 'claude-3-5-sonnet', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect((err as Anthropic.APIError).status).toBe(404);
    expect((err as Anthropic.APIError).error).toMatchObject({
      type: 'error',
      error: { type: 'not_found_error', message: "model 'claude-3-5-sonnet' not found" },
    });
    const res = await fetch(`${api}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'gemma2:2b', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens is required and must be positive' },
    });
  });

  it('estimates input tokens with messages.countTokens and lists the models for the Anthropic client', async () => {
    const count = await client().messages.countTokens({
      model: 'gemma2:2b',
      system: 'You are a helpful assistant.',
      messages: [{ role: 'user', content: 'Tell me about the mesh, please.' }],
    });
    // An estimate: (28 + 4 + 31) characters / 4.
    expect(count.input_tokens).toBe(15);
    const models = [];
    for await (const m of client().models.list()) models.push(m.id);
    expect(models).toEqual(['gemma2:2b', 'qwen3-coder:latest']);
    expect(await client().models.retrieve('qwen3-coder')).toMatchObject({ type: 'model', id: 'qwen3-coder' });
  });
});
