/**
 * OpenAI's Responses API through the mesh, stateless as Ollama serves it (issue 22), with the
 * official `openai` TypeScript client as users run it: `responses.create` streamed and not, a
 * function-call round trip, and errors in OpenAI's shape. A real `cutter server` and `cutter agent`
 * whose node Ollama is the documented double (test/doubles/ollama.ts, which calls `get_weather`
 * when a chat with tools has no tool answer yet).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { cli, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

type Msg = { role?: string; content?: string; tool_calls?: unknown[]; tool_call_id?: string };

describe('OpenAI Responses API across the mesh', () => {
  let server: Daemon;
  let url: string;
  let api: string;
  let agent: Daemon;
  const ollama = new OllamaDouble({
    models: [{ name: 'gpt-oss:20b', size: 13_000_000_000, family: 'gptoss' }],
    predictAsLimit: true,
    tokenDelayMs: 2,
    toolCall: (body) =>
      (body.messages as Msg[]).at(-1)?.role === 'tool' ? undefined : { name: 'get_weather', arguments: { city: 'Oslo' } },
  });
  const chats = () => ollama.requests.filter((r) => r.path === '/api/chat');
  const openai = () => new OpenAI({ baseURL: `${api}/v1`, apiKey: 'ollama', maxRetries: 0 });
  const tool = {
    type: 'function' as const,
    name: 'get_weather',
    description: 'Weather in a city',
    strict: true,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  };

  beforeAll(async () => {
    const [ollamaUrl, port] = await Promise.all([ollama.start(), freePort()]);
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    agent = await startAgent(url, 'gpu', ['--max-memory', '32g', '--ollama-url', ollamaUrl]);
    await eventually(async () => ((await (await fetch(`${api}/api/tags`)).json()) as { models: unknown[] }).models.length === 1);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
    await ollama.stop();
  });

  it('answers responses.create with output_text, instructions as the system message, usage, as a task', async () => {
    const r = await openai().responses.create({
      model: 'gpt-oss:20b',
      instructions: 'Be brief.',
      input: 'hello responses',
      max_output_tokens: 40,
    });
    expect(r).toMatchObject({ object: 'response', status: 'completed', model: 'gpt-oss:20b', instructions: 'Be brief.', store: false });
    expect(r.id).toMatch(/^resp_/);
    expect(r.output_text).toBe('echo: hello responses');
    expect(r.output).toHaveLength(1);
    expect(r.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed' });
    expect(r.usage).toMatchObject({ input_tokens: 2, output_tokens: 3, total_tokens: 5 });
    expect(chats().at(-1)!.body).toMatchObject({
      model: 'gpt-oss:20b',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello responses' },
      ],
      options: { num_predict: 40, temperature: 1 },
    });
    const t = await cli(['tasks', 'list', '--json'], { broker: url });
    const tasks = JSON.parse(t.stdout) as { kind: string; summary: string; node: string; state: string }[];
    expect(tasks.find((x) => x.summary === 'chat gpt-oss:20b')).toMatchObject({ kind: 'ollama', node: 'gpu', state: 'succeeded' });
  });

  it('streams responses.create with the Responses event sequence and the completed response', async () => {
    const stream = await openai().responses.create({
      model: 'gpt-oss:20b',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'stream three words' }] }],
      stream: true,
    });
    const types: string[] = [];
    const seqs: number[] = [];
    let text = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const ev of stream) {
      types.push(ev.type);
      seqs.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    const deltas = types.filter((x) => x === 'response.output_text.delta').length;
    expect(deltas).toBe(4); // "echo:", " stream", " three", " words"
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...Array(deltas).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(seqs).toEqual(types.map((_, i) => i));
    expect(text).toBe('echo: stream three words');
    expect(completed).toMatchObject({ status: 'completed', usage: { input_tokens: 3, output_tokens: 4 } });
    expect(completed!.output[0]).toMatchObject({ type: 'message', content: [{ type: 'output_text', text: 'echo: stream three words' }] });

    // The SDK's own stream helper assembles the same answer.
    const helper = openai().responses.stream({ model: 'gpt-oss:20b', input: 'again please' });
    expect((await helper.finalResponse()).output_text).toBe('echo: again please');
  });

  it('makes a function-call round trip: function_call out (streamed and not), function_call_output back in', async () => {
    const first = await openai().responses.create({ model: 'gpt-oss:20b', input: 'weather in Oslo?', tools: [tool] });
    expect(first.output).toHaveLength(1);
    const call = first.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
    expect(JSON.parse(call.arguments)).toEqual({ city: 'Oslo' });
    expect(chats().at(-1)!.body!.tools).toEqual([
      { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: tool.parameters } },
    ]);

    const streamed = await openai()
      .responses.stream({ model: 'gpt-oss:20b', input: 'weather in Oslo?', tools: [tool] })
      .finalResponse();
    expect(streamed.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Oslo"}' });

    const second = await openai().responses.create({
      model: 'gpt-oss:20b',
      tools: [tool],
      input: [
        { role: 'user', content: 'weather in Oslo?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '-3 C, snow' },
      ],
    });
    expect(second.output_text).toBe('echo: -3 C, snow');
    const messages = chats().at(-1)!.body!.messages as Msg[];
    expect(messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: call.call_id, function: { name: 'get_weather', arguments: { city: 'Oslo' } } }],
      },
      { role: 'tool', content: '-3 C, snow', tool_call_id: call.call_id },
    ]);
  });

  it("answers errors in OpenAI's shape: an unknown model 404, a stateful request 400", async () => {
    await expect(openai().responses.create({ model: 'gpt-4o', input: 'hi' })).rejects.toMatchObject({
      status: 404,
      error: { type: 'not_found_error', message: "model 'gpt-4o' not found" },
    });
    await expect(openai().responses.create({ model: 'gpt-oss:20b', input: 'hi', previous_response_id: 'resp_123' })).rejects.toMatchObject({
      status: 400,
      error: { type: 'invalid_request_error', message: expect.stringMatching(/^previous_response_id is not supported/) },
    });
  });
});
