/**
 * The endpoints clients hit first beyond chat (issues 19 and 22), end to end with real processes:
 * `cutter server` with its Ollama-compatible API, two `cutter agent`s each beside an Ollama double
 * (test/doubles/ollama.ts — real Ollama cannot be installed here; the double follows Ollama's
 * documented API), and clients nobody here wrote: ollama-js `embeddings()`, the `openai` SDK's
 * `embeddings.create`, `completions.create` (streamed and not) and `models.retrieve`, and plain
 * HTTP requests carrying an `Origin` header as a browser sends them.
 *
 * The mesh: `pi` has nomic-embed-text and gemma2:2b; `notebook` has llama3.2:1b and gemma2:2b.
 * The server allows one extra origin, https://app.example.com, and the wildcard http://*.lan:8080.
 */
import { request } from 'node:http';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { cli, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with any headers (fetch will not let a caller choose `Origin`). */
function raw(url: string, method: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // Node sends a DELETE's body with no length of its own: give it one.
    const sized = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = request(url, { method, headers: sized }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Ollama compatibility: legacy embeddings, OpenAI embeddings/completions/models, CORS', () => {
  let server: Daemon;
  let url: string;
  let api: string;
  let pi: Daemon;
  let notebook: Daemon;
  const piOllama = new OllamaDouble({
    models: [
      { name: 'nomic-embed-text:latest', size: 274_000_000, family: 'nomic-bert', parameterSize: '137M', quantization: 'F16' },
      { name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2' },
    ],
  });
  const nbOllama = new OllamaDouble({
    models: [
      { name: 'llama3.2:1b', size: 1_300_000_000, family: 'llama', parameterSize: '1.2B' },
      { name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2' },
    ],
    tokenDelayMs: 2,
  });
  const on = (d: OllamaDouble, path: string) => d.requests.filter((r) => r.path === path);

  beforeAll(async () => {
    const [piUrl, nbUrl, port] = await Promise.all([piOllama.start(), nbOllama.start(), freePort()]);
    ({ daemon: server, url } = await startServer([
      '--ollama-port',
      String(port),
      '--ollama-origins',
      'https://app.example.com, http://*.lan:8080',
    ]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    [pi, notebook] = await Promise.all([
      startAgent(url, 'pi', ['--max-memory', '4g', '--ollama-url', piUrl]),
      startAgent(url, 'notebook', ['--max-memory', '8g', '--ollama-url', nbUrl]),
    ]);
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] };
      expect(tags.models.map((m) => m.name)).toEqual(['gemma2:2b', 'llama3.2:1b', 'nomic-embed-text:latest']);
      return true;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pi?.stop('SIGKILL'), notebook?.stop('SIGKILL')]);
    await server?.stop();
    await Promise.all([piOllama.stop(), nbOllama.stop()]);
  });

  const openai = () => new OpenAI({ baseURL: `${api}/v1`, apiKey: 'ollama', maxRetries: 0 });
  const tasks = async () => {
    const r = await cli(['tasks', 'list', '--json'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { kind: string; summary: string; node: string; state: string }[];
  };

  it('answers the legacy /api/embeddings through ollama-js embeddings(), on the node that has the model', async () => {
    const before = on(piOllama, '/api/embeddings').length;
    const r = await new Ollama({ host: api }).embeddings({ model: 'nomic-embed-text', prompt: 'hello world', keep_alive: '1m' });
    expect(r.embedding).toEqual(piOllama.vector('hello world'));
    // The node's Ollama was asked its legacy endpoint, with the fields the client sent.
    const sent = on(piOllama, '/api/embeddings');
    expect(sent.length).toBe(before + 1);
    expect(sent.at(-1)!.body).toMatchObject({ model: 'nomic-embed-text', prompt: 'hello world', keep_alive: '1m' });
    expect((await tasks()).find((t) => t.summary === 'embeddings nomic-embed-text')).toMatchObject({
      kind: 'ollama',
      node: 'pi',
      state: 'succeeded',
    });
    // An unknown model is Ollama's 404, a missing one its 400.
    await expect(new Ollama({ host: api }).embeddings({ model: 'nope', prompt: 'x' })).rejects.toMatchObject({
      name: 'ResponseError',
      status_code: 404,
      error: "model 'nope' not found",
    });
    const missing = await fetch(`${api}/api/embeddings`, { method: 'POST', body: '{"prompt":"x"}' });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'model is required' });
  });

  it('answers /v1/embeddings for the openai SDK: base64 by default, float when asked, strings and arrays', async () => {
    const client = openai();
    // openai-node asks for base64 unless told otherwise and decodes float32 values.
    const b = await client.embeddings.create({ model: 'nomic-embed-text', input: ['one', 'three words here'] });
    expect(b.object).toBe('list');
    expect(b.model).toBe('nomic-embed-text');
    expect(b.data.map((d) => d.index)).toEqual([0, 1]);
    const expected = [piOllama.vector('one'), piOllama.vector('three words here')];
    expect(b.data.map((d) => d.embedding)).toEqual(expected.map((v) => v.map((x) => Math.fround(x))));
    expect(b.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    // The node was asked /api/embed with the input as given.
    expect(on(piOllama, '/api/embed').at(-1)!.body).toMatchObject({ model: 'nomic-embed-text', input: ['one', 'three words here'] });

    const f = await client.embeddings.create({ model: 'nomic-embed-text', input: 'a string', encoding_format: 'float' });
    expect(f.data).toEqual([{ object: 'embedding', embedding: piOllama.vector('a string'), index: 0 }]);

    // On the wire, base64 is the float32 little-endian bytes.
    const wire = await fetch(`${api}/v1/embeddings`, {
      method: 'POST',
      body: JSON.stringify({ model: 'nomic-embed-text', input: 'xy', encoding_format: 'base64' }),
    });
    const body = (await wire.json()) as { data: { embedding: string }[] };
    const bytes = Buffer.from(body.data[0].embedding, 'base64');
    expect(bytes.length).toBe(12);
    expect([0, 1, 2].map((i) => bytes.readFloatLE(i * 4))).toEqual(piOllama.vector('xy').map((v) => Math.fround(v)));
  });

  it('answers /v1/embeddings errors in OpenAI shape', async () => {
    const client = openai();
    await expect(client.embeddings.create({ model: 'missing-model', input: 'x' })).rejects.toMatchObject({
      status: 404,
      error: { message: "model 'missing-model' not found", type: 'not_found_error', param: null, code: null },
    });
    await expect(client.embeddings.create({ model: 'nomic-embed-text', input: [] })).rejects.toMatchObject({
      status: 400,
      error: { message: 'invalid input', type: 'invalid_request_error' },
    });
    const bad = await fetch(`${api}/v1/embeddings`, {
      method: 'POST',
      body: '{"model":"nomic-embed-text","input":"x","encoding_format":"hex"}',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });

  it('answers /v1/completions for the openai SDK, not streamed, as a generate task on the node with the model', async () => {
    const before = on(nbOllama, '/api/generate').length;
    const c = await openai().completions.create({
      model: 'llama3.2:1b',
      prompt: 'once upon a time',
      max_tokens: 5,
      stop: 'END',
      seed: 7,
    });
    expect(c).toMatchObject({ object: 'text_completion', model: 'llama3.2:1b', system_fingerprint: 'fp_ollama' });
    expect(c.id).toMatch(/^cmpl-\d+$/);
    expect(c.choices).toEqual([{ text: 'echo: once upon a time', index: 0, finish_reason: 'stop' }]);
    expect(c.usage).toEqual({ prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
    const sent = on(nbOllama, '/api/generate');
    expect(sent.length).toBe(before + 1);
    expect(sent.at(-1)!.body).toMatchObject({
      model: 'llama3.2:1b',
      prompt: 'once upon a time',
      options: { num_predict: 5, stop: ['END'], seed: 7, temperature: 1, top_p: 1 },
    });
    expect((await tasks()).find((t) => t.summary === 'generate llama3.2:1b')).toMatchObject({ node: 'notebook', state: 'succeeded' });
    await expect(openai().completions.create({ model: 'nope', prompt: 'x' })).rejects.toMatchObject({
      status: 404,
      error: { type: 'not_found_error' },
    });
    await expect(openai().completions.create({ model: 'llama3.2:1b', prompt: ['a', 'b'] })).rejects.toMatchObject({
      status: 400,
      error: { type: 'invalid_request_error' },
    });
  });

  it('streams /v1/completions as server-sent events, with the usage chunk when asked', async () => {
    const stream = await openai().completions.create({
      model: 'llama3.2:1b',
      prompt: 'stream this please',
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const texts = chunks.flatMap((c) => c.choices.map((ch) => ch.text));
    expect(texts.join('')).toBe('echo: stream this please');
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c).toMatchObject({ object: 'text_completion', model: 'llama3.2:1b' });
    const reasons = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason));
    expect(reasons.at(-1)).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
  });

  it('cancels a streamed completion on its node when the client goes away', async () => {
    const before = on(nbOllama, '/api/generate').length;
    const stream = await openai().completions.create({ model: 'llama3.2:1b', prompt: 'long', max_tokens: 5_000, stream: true });
    let n = 0;
    try {
      for await (const _ of stream) {
        if (++n < 5) continue;
        stream.controller.abort();
        break;
      }
    } catch {
      // the SDK may report its own abort
    }
    await eventually(() => {
      expect(on(nbOllama, '/api/generate')[before]?.aborted).toBe(true);
      return true;
    });
    await eventually(async () => {
      const states = (await tasks()).filter((t) => t.summary === 'generate llama3.2:1b').map((t) => t.state);
      expect(states).toContain('cancelled');
      return true;
    });
  });

  it('retrieves one model with models.retrieve, 404 in OpenAI shape for an unknown one', async () => {
    const m = await openai().models.retrieve('llama3.2:1b');
    expect(m).toMatchObject({ id: 'llama3.2:1b', object: 'model', owned_by: 'library' });
    expect(typeof m.created).toBe('number');
    expect((await openai().models.retrieve('nomic-embed-text')).id).toBe('nomic-embed-text');
    await expect(openai().models.retrieve('nope:1b')).rejects.toMatchObject({ status: 404, error: { type: 'not_found_error' } });
  });

  it('answers CORS as Ollama does: loopback and configured origins allowed, preflight answered, others refused', async () => {
    // A page served from a loopback origin (Ollama's defaults) reads the answer.
    const local = await raw(`${api}/api/tags`, 'GET', { origin: 'http://localhost:5173' });
    expect(local.status).toBe(200);
    expect(local.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(local.headers.vary).toBe('Origin');

    // The browser's preflight for a JSON POST from the configured origin.
    const pre = await raw(`${api}/v1/chat/completions`, 'OPTIONS', {
      origin: 'https://app.example.com',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,authorization,x-stainless-os',
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(pre.headers['access-control-allow-methods']).split(',')).toContain('POST');
    const allowed = String(pre.headers['access-control-allow-headers']).toLowerCase().split(',');
    for (const h of ['content-type', 'authorization', 'x-stainless-os']) expect(allowed).toContain(h);
    // The Anthropic SDK's headers, for the Messages API from a browser.
    for (const h of ['x-api-key', 'anthropic-version']) expect(allowed).toContain(h);

    // The request itself, from the configured origin and from the wildcard one.
    const post = await raw(
      `${api}/api/embed`,
      'POST',
      { origin: 'https://app.example.com', 'content-type': 'application/json' },
      '{"model":"nomic-embed-text","input":"hi"}',
    );
    expect(post.status).toBe(200);
    expect(post.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(JSON.parse(post.body).embeddings).toEqual([piOllama.vector('hi')]);
    const wild = await raw(`${api}/api/version`, 'GET', { origin: 'http://printer.lan:8080' });
    expect(wild.status).toBe(200);
    expect(wild.headers['access-control-allow-origin']).toBe('http://printer.lan:8080');

    // Any other origin: refused before anything runs, and no CORS header.
    const generates = () => on(nbOllama, '/api/generate').length + on(piOllama, '/api/generate').length;
    const before = generates();
    for (const [method, path] of [
      ['OPTIONS', '/api/chat'],
      ['POST', '/api/generate'],
    ]) {
      const evil = await raw(
        `${api}${path}`,
        method,
        { origin: 'https://evil.example', 'content-type': 'text/plain', 'access-control-request-method': 'POST' },
        method === 'POST' ? '{"model":"gemma2:2b","prompt":"hi"}' : undefined,
      );
      expect(evil.status).toBe(403);
      expect(evil.headers['access-control-allow-origin']).toBeUndefined();
      expect(JSON.parse(evil.body).error).toMatch(/origin https:\/\/evil\.example is not allowed/);
    }
    expect((await tasks()).filter((t) => t.summary === 'generate gemma2:2b')).toEqual([]);
    expect(generates()).toBe(before);

    // Without an Origin (curl, SDKs) nothing changes.
    const plain = await raw(`${api}/api/version`, 'GET', {});
    expect(plain.status).toBe(200);
    expect(plain.headers['access-control-allow-origin']).toBeUndefined();
  });
  it('copies and deletes models with ollama-js copy()/delete() on every node that has them, or the one named', async () => {
    const client = new Ollama({ host: api });
    const names = async () => ((await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] }).models.map((m) => m.name);
    // gemma2:2b is on both nodes: the copy is made on both, and the answer says where.
    await client.copy({ source: 'gemma2:2b', destination: 'mine' });
    expect([...piOllama.models.keys(), ...nbOllama.models.keys()].filter((n) => n === 'mine:latest')).toHaveLength(2);
    const copyRaw = await raw(`${api}/api/copy`, 'POST', {}, '{"source":"gemma2:2b","destination":"other"}');
    expect(copyRaw.status, copyRaw.body).toBe(200);
    expect(copyRaw.headers['x-cutter-nodes']).toBe('notebook,pi');
    // The mesh knows a node's models from its heartbeats: wait until both nodes report both copies.
    const where = async (name: string) => {
      const r = await cli(['ollama', 'list', '--json'], { broker: url });
      return (JSON.parse(r.stdout) as { node: string; name: string }[])
        .filter((m) => m.name === name)
        .map((m) => m.node)
        .sort();
    };
    await eventually(async () => {
      expect(await where('mine:latest')).toEqual(['notebook', 'pi']);
      expect(await where('other:latest')).toEqual(['notebook', 'pi']);
      expect(await names()).toContain('other:latest');
      return true;
    });
    // Deleting on one named node (the `node` field) leaves the other's copy …
    const one = await raw(`${api}/api/delete`, 'DELETE', {}, '{"model":"other","node":"pi"}');
    expect(one.status, one.body).toBe(200);
    expect(one.headers['x-cutter-nodes']).toBe('pi');
    expect(piOllama.models.has('other:latest')).toBe(false);
    expect(nbOllama.models.has('other:latest')).toBe(true);
    // … and without one, it goes from every node that has it (ollama-js sends `name`).
    await eventually(async () => {
      expect(
        (await tasks())
          .filter((t) => t.summary === 'copy gemma2:2b')
          .map((t) => t.node)
          .sort(),
      ).toEqual(['notebook', 'notebook', 'pi', 'pi']);
      return true;
    });
    await client.delete({ model: 'mine' });
    expect(piOllama.models.has('mine:latest') || nbOllama.models.has('mine:latest')).toBe(false);
    await eventually(async () => {
      expect(await names()).not.toContain('mine:latest');
      return true;
    });
    expect(
      (await tasks())
        .filter((t) => t.summary === 'delete mine')
        .map((t) => `${t.node} ${t.state}`)
        .sort(),
    ).toEqual(['notebook succeeded', 'pi succeeded']);
    // A model no node has is Ollama's 404; a named node without it says so.
    await expect(client.delete({ model: 'mine' })).rejects.toMatchObject({ name: 'ResponseError', status_code: 404 });
    await expect(client.copy({ source: 'nope', destination: 'x' })).rejects.toMatchObject({ status_code: 404 });
    const elsewhere = await raw(`${api}/api/delete`, 'DELETE', { 'x-cutter-node': 'pi' }, '{"model":"llama3.2:1b"}');
    expect(elsewhere.status).toBe(404);
    expect(JSON.parse(elsewhere.body)).toEqual({ error: "model 'llama3.2:1b' not found on node pi" });
    expect(nbOllama.models.has('llama3.2:1b')).toBe(true);
  });
});
