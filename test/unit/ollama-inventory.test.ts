/**
 * The ollama executor's inventory (agent/executors/ollama-inventory.ts): what every heartbeat asks
 * the node's Ollama (version, tags, ps) over node:http, against the documented-API double
 * (test/doubles/ollama.ts: real Ollama cannot be installed here) and against plain HTTP servers
 * that answer as a broken or hostile one would. And that asking it never loads Node's fetch
 * (undici): that is what keeps an idle agent's memory down.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OllamaExecutor } from '../../agent/executors/ollama.js';
import { MESH_API_HEADER } from '../../shared/ollama.js';
import { OllamaDouble } from '../doubles/ollama.js';
import { freePort, ROOT } from '../harness.js';

/** A plain HTTP server on loopback answering every request with `handler`; resolves with its URL. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("the ollama executor's inventory", () => {
  const double = new OllamaDouble({
    version: '0.12.6',
    models: [
      { name: 'gemma2:2b', size: 1_600_000_000, family: 'gemma2', parameterSize: '2.6B', quantization: 'Q4_0' },
      { name: 'qwen2:0.5b', size: 352_000_000, family: 'qwen2', parameterSize: '494M', quantization: 'Q4_0' },
    ],
    loaded: ['qwen2:0.5b'],
  });
  const servers: Server[] = [];
  beforeAll(() => double.start());
  afterAll(() => double.stop());
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  it("lists the node's Ollama version, pulled models and loaded models", async () => {
    const inv = await new OllamaExecutor(double.url).inventory();
    expect(inv.available).toBe(true);
    expect(inv.version).toBe('0.12.6');
    expect(inv.models.map((m) => [m.name, m.size, m.family, m.parameterSize, m.quantization])).toEqual([
      ['gemma2:2b', 1_600_000_000, 'gemma2', '2.6B', 'Q4_0'],
      ['qwen2:0.5b', 352_000_000, 'qwen2', '494M', 'Q4_0'],
    ]);
    expect(inv.models[0].digest).toMatch(/^[0-9a-f]{64}$/);
    expect(inv.loaded.map((m) => [m.name, m.size, m.sizeVram])).toEqual([['qwen2:0.5b', 352_000_000, 0]]);
    expect(double.requests.map((r) => r.path).sort()).toEqual(['/api/ps', '/api/tags', '/api/version']);
  });

  it('says when nothing listens at the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const inv = await new OllamaExecutor(url).inventory();
    expect(inv).toEqual({ available: false, error: `Ollama at ${url} is not reachable (ECONNREFUSED)`, models: [], loaded: [] });
  });

  it("refuses a cutter server's own Ollama-compatible API (requests would loop back into the mesh)", async () => {
    const { url, server } = await serve((_req, res) => {
      res.setHeader(MESH_API_HEADER, '0.1.0');
      res.end('{"version":"0.12.6"}');
    });
    servers.push(server);
    const inv = await new OllamaExecutor(url).inventory();
    expect(inv.available).toBe(false);
    expect(inv.error).toMatch(/is a cutter server's Ollama-compatible API \(cutter 0\.1\.0\).*--ollama-url off/);
  });

  it("reports Ollama's own error of a non-2xx answer", async () => {
    const { url, server } = await serve((req, res) => {
      res.statusCode = req.url === '/api/ps' ? 500 : 200;
      res.end(req.url === '/api/ps' ? '{"error":"out of memory"}' : '{"version":"1","models":[]}');
    });
    servers.push(server);
    const inv = await new OllamaExecutor(url).inventory();
    expect(inv).toMatchObject({ available: false, error: 'Ollama answered 500: out of memory' });
  });

  it('stops reading an answer past 8 MiB, and refuses JSON past its depth before parsing it', async () => {
    const big = `{"models":[${'{"name":"x"},'.repeat(800_000)}{"name":"y"}]}`;
    const deep = `{"models":${'['.repeat(40)}${']'.repeat(40)}}`;
    const { url, server } = await serve((req, res) => {
      if (req.url === '/api/tags') return res.end(big);
      if (req.url === '/api/ps') return res.end(deep);
      res.end('{"version":"1"}');
    });
    servers.push(server);
    const inv = await new OllamaExecutor(url).inventory();
    expect(inv.available).toBe(false);
    expect(inv.error).toMatch(
      /\/api\/(tags answered more than 8388608 bytes|ps answered no JSON within its limits: nesting depth 17 > 16)/,
    );
  });

  it('takes a non-JSON 2xx answer and odd shapes as what they are', async () => {
    const { url, server } = await serve((req, res) => {
      if (req.url === '/api/version') return res.end('<html>not ollama</html>');
      res.end('{}');
    });
    servers.push(server);
    expect(await new OllamaExecutor(url).inventory()).toMatchObject({
      available: false,
      error: expect.stringMatching(/\/api\/version answered no JSON within its limits: Unexpected token/),
    });
    const { url: odd, server: s2 } = await serve((req, res) =>
      res.end(req.url === '/api/version' ? '{"version":7}' : '{"models":[3,null,{"size":5},{"name":""},{"name":"m:1","size":"12"}]}'),
    );
    servers.push(s2);
    const inv = await new OllamaExecutor(odd).inventory();
    expect(inv).toMatchObject({
      available: true,
      version: '7',
      models: [{ name: 'm:1', size: 12 }],
      loaded: [{ name: 'm:1', size: 12, sizeVram: 0 }],
    });
  });

  it('gives up on a server that accepts and never answers, after its 2 s probe timeout', async () => {
    const { url, server } = await serve(() => undefined);
    servers.push(server);
    const started = Date.now();
    const inv = await new OllamaExecutor(url).inventory();
    expect(inv).toEqual({ available: false, error: `Ollama at ${url} is not reachable (ETIMEDOUT)`, models: [], loaded: [] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
  });

  it('asks a node without Ollama again only after the recheck time, and then finds the one started meanwhile', async () => {
    const port = await freePort();
    const late = new OllamaDouble({ version: '0.12.7', models: [{ name: 'qwen2:0.5b', size: 352_000_000 }] });
    const executor = new OllamaExecutor(`http://127.0.0.1:${port}`, 1_500);
    try {
      const first = await executor.fingerprint();
      expect(first.available).toBe(false);
      expect(first.error).toMatch(/not reachable \(ECONNREFUSED\)/);
      const startedAt = performance.now();
      await late.start(port);
      // Within the recheck time the refusal stands and the new server is not asked.
      expect((await executor.fingerprint()).available).toBe(false);
      expect(late.requests).toHaveLength(0);
      let fp = await executor.fingerprint();
      while (!fp.available && performance.now() - startedAt < 5_000) {
        await new Promise((r) => setTimeout(r, 100));
        fp = await executor.fingerprint();
      }
      expect(fp.available).toBe(true);
      expect(fp.capacity).toMatchObject({ ollama: { version: '0.12.7', models: [{ name: 'qwen2:0.5b' }] } });
      // The first ask after the refusal came no sooner than the recheck time (less the start's own ms).
      expect(performance.now() - startedAt).toBeGreaterThanOrEqual(1_000);
      // Once it answers, every fingerprint asks it again (nothing cached while it is up).
      const asked = late.requests.length;
      await executor.fingerprint();
      expect(late.requests.length).toBe(asked + 3);
    } finally {
      await late.stop();
    }
  });

  it("never loads Node's fetch (undici) to take an inventory", async () => {
    // A fresh process (the test runner itself may have loaded undici), run asynchronously: the
    // double answers from this one.
    const script = `
      const { OllamaExecutor } = await import(${JSON.stringify(`${ROOT}dist/agent/executors/ollama.js`)});
      const inv = await new OllamaExecutor(${JSON.stringify(double.url)}).inventory();
      const undici = process.moduleLoadList.filter((m) => m.includes('undici'));
      console.log(JSON.stringify({ models: inv.models.length, undici }));`;
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(JSON.parse(r.stdout)).toEqual({ models: 2, undici: [] });
  });
});
