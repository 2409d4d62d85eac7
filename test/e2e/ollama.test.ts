/**
 * Ollama across the mesh, end to end with real processes: `cutter server` with its
 * Ollama-compatible API, two `cutter agent`s each beside an Ollama double (test/doubles/ollama.ts —
 * real Ollama cannot be installed here; the double follows Ollama's documented API), and clients
 * nobody here wrote: the official `ollama` npm client and the `openai` npm client against `/v1`.
 *
 * The mesh: `pi` offers 2 GiB and has gemma2:2b on disk; `notebook` offers 8 GiB, has gemma2:2b and
 * phi3 loaded and llama3:70b (4 GiB here) on disk. The placement file pins gemma2:* to pi.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { CUTTER, ISOLATED_ENV, cli, eventually, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';

const GiB = 1024 ** 3;

describe('Ollama across the mesh', () => {
  let server: Daemon;
  let url: string;
  let api: string;
  let pi: Daemon;
  let notebook: Daemon;
  const piOllama = new OllamaDouble({
    version: '0.12.6',
    models: [
      { name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2', parameterSize: '2.6B', quantization: 'Q4_0' },
      { name: 'qwen2:0.5b', size: 352_000_000, family: 'qwen2', parameterSize: '494M', quantization: 'Q4_0' },
    ],
    loaded: ['qwen2:0.5b'],
    registry: [{ name: 'tinyllama:latest', size: 637_700_000, family: 'llama', parameterSize: '1.1B' }],
    tokenDelayMs: 2,
  });
  const nbOllama = new OllamaDouble({
    version: '0.12.3',
    models: [
      { name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2', parameterSize: '2.6B', quantization: 'Q4_0' },
      { name: 'phi3:latest', size: 2_200_000_000, family: 'phi3', parameterSize: '3.8B', quantization: 'Q4_0' },
      { name: 'llama3:70b', size: 4 * GiB, family: 'llama', parameterSize: '70.6B', quantization: 'Q4_0' },
      { name: 'qwen2:0.5b', size: 352_000_000, family: 'qwen2', parameterSize: '494M', quantization: 'Q4_0' },
    ],
    loaded: ['gemma2:2b', 'phi3:latest', 'qwen2:0.5b'],
    tokenDelayMs: 2,
  });

  beforeAll(async () => {
    const [piUrl, nbUrl, port] = await Promise.all([piOllama.start(), nbOllama.start(), freePort()]);
    const rules = join(tempDir(), 'placement.yaml');
    writeFileSync(rules, 'rules:\n  - model: "gemma2:*"\n    nodes: [pi]\n');
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port), '--ollama-placement', rules]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    [pi, notebook] = await Promise.all([
      startAgent(url, 'pi', ['--max-memory', '2g', '--ollama-url', piUrl]),
      startAgent(url, 'notebook', ['--max-memory', '8g', '--ollama-url', nbUrl]),
    ]);
    // Both nodes' heartbeats carry their models once the API lists the union.
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] };
      expect(tags.models.map((m) => m.name)).toEqual(['gemma2:2b', 'llama3:70b', 'phi3:latest', 'qwen2:0.5b']);
      return true;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pi?.stop('SIGKILL'), notebook?.stop('SIGKILL')]);
    await server?.stop();
    await Promise.all([piOllama.stop(), nbOllama.stop()]);
  });

  const ollama = () => new Ollama({ host: api });
  const generatesOn = (d: OllamaDouble) => d.requests.filter((r) => r.path === '/api/generate' || r.path === '/api/chat');

  it('lists the mesh with the official ollama client: tags are the union, ps the loaded models, version the lowest', async () => {
    const client = ollama();
    const list = await client.list();
    const llama = list.models.find((m) => m.name === 'llama3:70b')!;
    expect(llama.size).toBe(4 * GiB);
    expect(llama.details).toMatchObject({ family: 'llama', parameter_size: '70.6B', quantization_level: 'Q4_0', format: 'gguf' });
    const ps = await client.ps();
    expect(ps.models.map((m) => m.name).sort()).toEqual(['gemma2:2b', 'phi3:latest', 'qwen2:0.5b', 'qwen2:0.5b']);
    expect((await client.version()).version).toBe('0.12.3');
  });

  it('routes by the rules: gemma2 to pi (placement file), phi3 where it is loaded, llama3:70b where it is on disk', async () => {
    const client = ollama();
    const before = { pi: generatesOn(piOllama).length, nb: generatesOn(nbOllama).length };
    const g = await client.generate({ model: 'gemma2:2b', prompt: 'why is the sky blue' });
    expect(g.response).toBe('echo: why is the sky blue');
    expect(g.done).toBe(true);
    expect(g.done_reason).toBe('stop');
    expect(g.eval_count).toBe(6);
    expect(generatesOn(piOllama).length).toBe(before.pi + 1);

    const p = await client.generate({ model: 'phi3', prompt: 'hi' });
    expect(p.response).toBe('echo: hi');
    const l = await client.chat({ model: 'llama3:70b', messages: [{ role: 'user', content: 'hello there' }] });
    expect(l.message).toMatchObject({ role: 'assistant', content: 'echo: hello there' });
    expect(generatesOn(nbOllama).length).toBe(before.nb + 2);
    expect(generatesOn(piOllama).length).toBe(before.pi + 1);

    // Each request is a task, visible in `cutter tasks`, with the placement's reason.
    const r = await cli(['tasks', 'list', '--json'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const tasks = JSON.parse(r.stdout) as { kind: string; summary: string; node: string; state: string; placement: string }[];
    const gemma = tasks.find((t) => t.summary === 'generate gemma2:2b')!;
    expect(gemma).toMatchObject({ kind: 'ollama', node: 'pi', state: 'succeeded' });
    expect(gemma.placement).toMatch(/placement rule 1 \(model gemma2:\* → pi\)/);
    expect(tasks.find((t) => t.summary === 'generate phi3')).toMatchObject({ node: 'notebook' });
    expect(tasks.find((t) => t.summary === 'generate phi3')!.placement).toMatch(/model loaded/);
    expect(tasks.find((t) => t.summary === 'chat llama3:70b')!.placement).toMatch(/model on disk/);
  });

  it('spreads concurrent requests for a model loaded on both nodes by requests in flight', async () => {
    const count = () => ({ pi: generatesOn(piOllama).length, nb: generatesOn(nbOllama).length });
    const before = count();
    const client = ollama();
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => client.generate({ model: 'qwen2:0.5b', prompt: `q${i}`, options: { num_predict: 100 } })),
    );
    expect(answers.every((a) => a.done && a.eval_count === 100)).toBe(true);
    const after = count();
    expect(after.pi - before.pi + after.nb - before.nb).toBe(6);
    expect(after.pi - before.pi).toBeGreaterThanOrEqual(2);
    expect(after.nb - before.nb).toBeGreaterThanOrEqual(2);
  });

  it('streams chat chunk by chunk as NDJSON, with the final chunk’s metrics', async () => {
    const parts: { message: { content: string }; done: boolean; done_reason?: string; eval_count?: number }[] = [];
    for await (const part of await ollama().chat({
      model: 'phi3',
      messages: [{ role: 'user', content: 'one two three four' }],
      stream: true,
    }))
      parts.push(part);
    expect(parts.length).toBe(6);
    expect(parts.map((p) => p.message.content).join('')).toBe('echo: one two three four');
    expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'stop', eval_count: 5 });
    expect(parts.slice(0, -1).every((p) => p.done === false)).toBe(true);
  });

  it('answers embed and show through a node, and 404s an unknown model as Ollama does', async () => {
    const client = ollama();
    const e = await client.embed({ model: 'phi3', input: ['a', 'bb'] });
    expect(e.embeddings).toHaveLength(2);
    expect(e.embeddings[1][0]).toBeCloseTo(0.02);
    const s = await client.show({ model: 'llama3:70b' });
    expect(s.details.family).toBe('llama');
    expect(s.capabilities).toContain('completion');

    await expect(client.generate({ model: 'nope:1b', prompt: 'x' })).rejects.toMatchObject({
      name: 'ResponseError',
      status_code: 404,
      error: "model 'nope:1b' not found",
    });
    await expect(client.chat({ model: 'nope:1b', messages: [{ role: 'user', content: 'x' }], stream: true })).rejects.toMatchObject({
      status_code: 404,
    });
    const raw = await fetch(`${api}/api/generate`, { method: 'POST', body: JSON.stringify({ prompt: 'no model' }) });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toEqual({ error: 'model is required' });
  });

  it('answers malformed requests with Ollama’s and OpenAI’s error shapes and keeps serving', async () => {
    const post = (path: string, body: string) =>
      fetch(`${api}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    for (const body of ['{not json', '[1,2]', '"text"', 'null']) {
      const r = await post('/api/chat', body);
      expect(r.status, body).toBe(400);
      expect(Object.keys((await r.json()) as object)).toEqual(['error']);
    }
    const huge = await post('/api/generate', JSON.stringify({ model: 'phi3', prompt: 'x'.repeat(17 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    const bad = await post(
      '/v1/chat/completions',
      JSON.stringify({ model: 'phi3', messages: [{ role: 'user', content: [{ type: 'audio' }] }] }),
    );
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: { message: 'invalid message format', type: 'invalid_request_error', param: null, code: null },
    });
    const missing = await post('/v1/chat/completions', JSON.stringify({ model: 'nope:1b', messages: [] }));
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).toBe('not_found_error');
    expect((await fetch(`${api}/api/nothing`)).status).toBe(404);
    expect(await (await fetch(`${api}/`)).text()).toBe('Ollama is running');
    expect((await ollama().generate({ model: 'phi3', prompt: 'still here' })).response).toBe('echo: still here');
  });

  it('serves OpenAI clients on /v1: models, chat completions streamed and not, and a 404', async () => {
    const openai = new OpenAI({ baseURL: `${api}/v1`, apiKey: 'ollama' });
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual(['gemma2:2b', 'llama3:70b', 'phi3:latest', 'qwen2:0.5b']);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'library' });

    const c = await openai.chat.completions.create({ model: 'phi3', messages: [{ role: 'user', content: 'say hi' }] });
    expect(c.object).toBe('chat.completion');
    expect(c.choices[0].message.content).toBe('echo: say hi');
    expect(c.choices[0].finish_reason).toBe('stop');
    expect(c.usage).toMatchObject({ completion_tokens: 3 });

    const stream = await openai.chat.completions.create({
      model: 'phi3',
      messages: [{ role: 'user', content: 'stream me' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: unknown;
    for await (const chunk of stream) {
      if (chunk.choices[0]) {
        text += chunk.choices[0].delta.content ?? '';
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('echo: stream me');
    expect(finish).toBe('stop');
    expect(usage).toMatchObject({ completion_tokens: 3 });

    await expect(openai.chat.completions.create({ model: 'nope:1b', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
    });
  });

  it('cancels the task on its node when the HTTP client disconnects mid-stream', async () => {
    const client = ollama();
    const before = generatesOn(nbOllama).length;
    const stream = await client.generate({ model: 'phi3', prompt: 'go', stream: true, options: { num_predict: 5_000 } });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of stream) if (++n === 5) stream.abort();
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    // The node's request to its Ollama is aborted (Ollama sees the connection close) …
    await eventually(() => {
      const req = generatesOn(nbOllama)[before];
      expect(req?.aborted).toBe(true);
      return true;
    });
    // … and the task ends cancelled, not left running.
    await eventually(async () => {
      const r = await cli(['tasks', 'list', '--json'], { broker: url });
      const tasks = JSON.parse(r.stdout) as { summary: string; state: string }[];
      expect(tasks.filter((t) => t.summary === 'generate phi3').map((t) => t.state)).toContain('cancelled');
      return true;
    });
  });

  it('cutter ollama run streams an answer, list and ps show a NODE column', async () => {
    const r = await cli(['ollama', 'run', 'llama3:70b', 'tell me a story'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('echo: tell me a story\n');

    const j = await cli(['ollama', 'run', 'phi3', 'json please', '--json'], { broker: url });
    const lines = j.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { response: string; done: boolean });
    expect(lines.at(-1)!.done).toBe(true);
    expect(lines.map((l) => l.response).join('')).toBe('echo: json please');

    const list = await cli(['ollama', 'list'], { broker: url });
    expect(list.stdout).toMatch(/^NAME\s+NODE\s+SIZE/);
    expect(list.stdout).toMatch(/gemma2:2b\s+pi\s/);
    expect(list.stdout).toMatch(/gemma2:2b\s+notebook\s/);
    const ps = await cli(['ollama', 'ps', '--json'], { broker: url });
    const loaded = JSON.parse(ps.stdout) as { name: string; node: string }[];
    expect(loaded).toContainEqual(expect.objectContaining({ name: 'phi3:latest', node: 'notebook' }));
  });

  it('refuses to load a model on a node without room, and pulls one with progress onto a node', async () => {
    const r = await cli(['ollama', 'run', 'llama3:70b', 'x', '--node', 'pi'], { broker: url });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/pi: would pull model llama3:70b \(4\.0 GiB\) but has 2\.0 GiB free memory/);

    const p = await cli(['ollama', 'pull', 'tinyllama', '--node', 'pi'], { broker: url });
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/pulling manifest/);
    expect(p.stderr).toMatch(/verifying sha256 digest/);
    expect(p.stdout).toMatch(/tinyllama pulled on pi/);
    await eventually(async () => {
      const tags = await ollama().list();
      expect(tags.models.map((m) => m.name)).toContain('tinyllama:latest');
      return true;
    });
    const missing = await cli(['ollama', 'pull', 'no-such-model', '--node', 'pi'], { broker: url });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/file does not exist/);
  });

  it('pulls through the API as Ollama streams a pull (status records, then success)', async () => {
    const statuses: string[] = [];
    for await (const part of await ollama().pull({ model: 'tinyllama', stream: true })) statuses.push(part.status);
    expect(statuses[0]).toBe('pulling manifest');
    expect(statuses.at(-1)).toBe('success');
    expect(statuses).toContain('verifying sha256 digest');
    await expect(
      (async () => {
        for await (const _ of await ollama().pull({ model: 'no-such-model', stream: true }));
      })(),
    ).rejects.toThrow(/file does not exist/);
  });

  it('chats interactively on a terminal, keeping the history, until /bye', async () => {
    // `script` gives the CLI a pseudo-terminal, so it sees a TTY on stdin as a user's shell would.
    const { spawn } = await import('node:child_process');
    const child = spawn('script', ['-qfec', `${process.execPath} ${CUTTER} ollama run phi3 --broker ${url}`, '/dev/null'], {
      env: ISOLATED_ENV,
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const waitFor = (re: RegExp) => eventually(() => re.test(out), 15_000);
    await waitFor(/>>> /);
    child.stdin.write('first question\n');
    await waitFor(/echo: first question[\s\S]*>>> /);
    child.stdin.write('second one\n');
    await waitFor(/echo: second one[\s\S]*>>> [\s\S]*$/);
    child.stdin.write('/bye\n');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
    // The second turn carried the first question and answer: the node saw the whole conversation.
    const chats = nbOllama.requests.filter((r) => r.path === '/api/chat' && JSON.stringify(r.body).includes('second one'));
    expect(chats).toHaveLength(1);
    expect((chats[0].body!.messages as { role: string; content: string }[]).map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect((chats[0].body!.messages as { content: string }[])[1].content).toBe('echo: first question');
  });

  it('ends a stream with a clean error when the node serving it dies', async () => {
    const client = ollama();
    const stream = await client.generate({ model: 'llama3:70b', prompt: 'long', stream: true, options: { num_predict: 100_000 } });
    let n = 0;
    const consumed = (async () => {
      for await (const _ of stream) if (++n === 3) await notebook.stop('SIGKILL');
    })();
    await expect(consumed).rejects.toThrow(/node notebook was lost/);
  }, 30_000);
});
