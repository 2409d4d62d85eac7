/**
 * An agent on the server's own machine must never take the server's Ollama-compatible API for its
 * node's Ollama (issue 19): with the default --ollama-url (127.0.0.1:11434) and the API on the same
 * port, the mesh would send requests to itself. The API answers with an `x-cutter-mesh` header
 * (shared/ollama.ts); the agent sees it, announces no Ollama with a reason that says what to do,
 * and the API answers a generate for a model no node has with a 404 at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

type NodeView = {
  node: string;
  status: { capacity?: { ollama?: { available: boolean; error?: string } }; offer?: { executors: string[] } };
};

describe('an agent pointed at the server’s own Ollama API', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let api: string;

  beforeAll(async () => {
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    agent = await startAgent(url, 'same-machine', ['--ollama-url', api]);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('announces no Ollama, says why and what to do, and the mesh does not call itself', async () => {
    expect((await fetch(`${api}/api/version`)).headers.get('x-cutter-mesh')).toMatch(/^\d+\.\d+\.\d+/);
    const view = await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url });
      const n = (JSON.parse(r.stdout) as NodeView[]).find((v) => v.node === 'same-machine');
      return n?.status.capacity?.ollama ? n : null;
    });
    expect(view.status.capacity!.ollama!.available).toBe(false);
    expect(view.status.capacity!.ollama!.error).toMatch(/cutter server's Ollama-compatible API.*--ollama-url/);
    expect(view.status.offer!.executors).not.toContain('ollama');
    const res = await fetch(`${api}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3:8b', prompt: 'hi', stream: false }),
    });
    expect(res.status).toBe(404);
    expect(server.lines.filter((l) => l.msg === 'task placed')).toEqual([]);
  });
});
