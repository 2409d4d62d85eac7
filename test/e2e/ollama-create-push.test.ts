/**
 * The rest of Ollama's native API across the mesh (issue 22), with ollama-js as users run it:
 * `create` from an existing model (on the node the scheduler picks, or the named one; Ollama's
 * status records streamed), `push` refused unless a node is named, and Ollama's Host-header guard
 * against DNS rebinding on the loopback API. A real `cutter server` and two `cutter agent`s beside
 * Ollama doubles (test/doubles/ollama.ts, which follows docs/api.md "Create a Model" / "Push a Model").
 */
import { request } from 'node:http';
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

/** GET with a chosen Host header (fetch will not let a caller set it). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Ollama create and push across the mesh, and the loopback Host guard', () => {
  let server: Daemon;
  let api: string;
  let pi: Daemon;
  let notebook: Daemon;
  const piOllama = new OllamaDouble({ models: [{ name: 'llama3.2:1b', size: 1_300_000_000 }] });
  const nbOllama = new OllamaDouble({ models: [{ name: 'qwen3:4b', size: 2_500_000_000 }] });
  const tags = async () => ((await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] }).models.map((m) => m.name);

  beforeAll(async () => {
    const [piUrl, nbUrl, port] = await Promise.all([piOllama.start(), nbOllama.start(), freePort()]);
    let url: string;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    [pi, notebook] = await Promise.all([
      startAgent(url, 'pi', ['--max-memory', '4g', '--ollama-url', piUrl]),
      startAgent(url, 'notebook', ['--max-memory', '8g', '--ollama-url', nbUrl]),
    ]);
    await eventually(async () => (await tags()).length === 2);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pi?.stop('SIGKILL'), notebook?.stop('SIGKILL')]);
    await server?.stop();
    await Promise.all([piOllama.stop(), nbOllama.stop()]);
  });

  it('creates a model from an existing one on the node that has it, streaming Ollama’s status records', async () => {
    const statuses: string[] = [];
    const stream = await new Ollama({ host: api }).create({
      model: 'mario',
      from: 'qwen3:4b',
      system: 'You are Mario from Super Mario Bros.',
      parameters: { temperature: 0.7 },
      stream: true,
    });
    for await (const part of stream) statuses.push(part.status);
    expect(statuses[0]).toBe('reading model metadata');
    expect(statuses).toContain('creating system layer');
    expect(statuses.at(-1)).toBe('success');
    // It ran on notebook, the node with qwen3:4b, with the fields the client sent.
    const sent = nbOllama.requests.filter((r) => r.path === '/api/create');
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toMatchObject({
      model: 'mario',
      from: 'qwen3:4b',
      system: 'You are Mario from Super Mario Bros.',
      parameters: { temperature: 0.7 },
    });
    expect(piOllama.requests.some((r) => r.path === '/api/create')).toBe(false);
    // The new model shows in the mesh once notebook's heartbeat lists it.
    await eventually(async () => (await tags()).includes('mario:latest'));

    // Not streamed: one {"status": "success"}. Without "from": a 400 that says what the mesh supports.
    expect(await new Ollama({ host: api }).create({ model: 'luigi', from: 'llama3.2:1b', stream: false })).toEqual({ status: 'success' });
    expect(piOllama.requests.filter((r) => r.path === '/api/create')).toHaveLength(1);
    await expect(new Ollama({ host: api }).create({ model: 'x', stream: false })).rejects.toMatchObject({
      status_code: 400,
      error: expect.stringMatching(/only from an existing one: give "from"/),
    });
    await expect(new Ollama({ host: api }).create({ model: 'x', from: 'nope', stream: false })).rejects.toMatchObject({ status_code: 404 });
  });

  it('refuses a push that names no node, saying which nodes have the model; pushes from the named node', async () => {
    await expect(new Ollama({ host: api }).push({ model: 'llama3.2:1b', stream: false })).rejects.toMatchObject({
      status_code: 400,
      error: expect.stringMatching(/push needs a node: .*X-Cutter-Node header \(nodes with it: pi\)/),
    });
    const client = new Ollama({ host: api, headers: { 'X-Cutter-Node': 'pi' } });
    const statuses: string[] = [];
    for await (const part of await client.push({ model: 'llama3.2:1b', stream: true })) statuses.push(part.status);
    expect(statuses).toEqual(['retrieving manifest', 'starting upload', 'pushing manifest', 'success']);
    expect(piOllama.requests.filter((r) => r.path === '/api/push')).toHaveLength(1);
    // Named, but the node lacks the model: a 404 naming the node.
    await expect(
      new Ollama({ host: api, headers: { 'X-Cutter-Node': 'notebook' } }).push({ model: 'llama3.2:1b', stream: false }),
    ).rejects.toMatchObject({
      status_code: 404,
      error: "model 'llama3.2:1b' not found on node notebook",
    });
  });

  it('on loopback, refuses a request addressed to a foreign host name (DNS rebinding), as Ollama does', async () => {
    const port = new URL(api).port;
    const evil = await getWithHost(`${api}/api/tags`, `evil.example:${port}`);
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body).error).toMatch(/^host evil\.example:\d+ is not allowed: .*DNS rebinding/);
    expect((await getWithHost(`${api}/api/tags`, `localhost:${port}`)).status).toBe(200);
    expect((await getWithHost(`${api}/api/version`, `192.168.1.20:${port}`)).status).toBe(200);
  });
});
