/**
 * CORS for browser front-ends, in a real browser (issue 19): Debian's Chromium, headless, driven by
 * playwright-core. Pages from two origins other than the API's — `http://app.test:P`, allowed with
 * `--ollama-origins`, and `http://evil.test:P`, not allowed (Chromium maps both names to 127.0.0.1)
 * — call the mesh's Ollama API with `fetch` and a JSON body, which makes the browser send a
 * preflight first. The allowed page reads the answer (run on the node beside an Ollama double,
 * test/doubles/ollama.ts); the other page's fetch fails in the browser and nothing runs on the node.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { eventually, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs, onPath } from '../services.js';

const chromiumNeeded = needs('chromium');
const CHROMIUM = onPath('chromium') ?? 'chromium';

describe.skipIf(chromiumNeeded.skip)(`Ollama API from other origins in headless Chromium${chromiumNeeded.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let api: string;
  let pages: Server;
  let pagePort: number;
  let browser: BrowserContext;
  const ollama = new OllamaDouble({ models: [{ name: 'qwen2:0.5b', size: 352_000_000 }] });

  beforeAll(async () => {
    const [ollamaUrl, port] = await Promise.all([ollama.start(), freePort()]);
    let url: string;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port), '--ollama-origins', 'http://app.test:*']));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    agent = await startAgent(url, 'box', ['--ollama-url', ollamaUrl]);
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: unknown[] };
      expect(tags.models).toHaveLength(1);
      return true;
    });
    // The front-end's own web server: an empty page on whatever name the browser asked for.
    pages = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>front-end</title>');
    });
    await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r));
    pagePort = (pages.address() as AddressInfo).port;
    browser = await chromium.launchPersistentContext(tempDir('cutter-test-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--host-resolver-rules=MAP app.test 127.0.0.1, MAP evil.test 127.0.0.1',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((r) => (pages ? pages.close(() => r()) : r()));
    await agent?.stop('SIGKILL');
    await server?.stop();
    await ollama.stop();
  });

  /** Runs a JSON POST to the API from a page of `origin`; returns the answer's text or the browser's error. */
  const callFrom = async (host: string, prompt: string): Promise<{ ok: boolean; text: string }> => {
    const page = await browser.newPage();
    try {
      await page.goto(`http://${host}:${pagePort}/`);
      return await page.evaluate(
        async ({ api, prompt }) => {
          try {
            const r = await fetch(`${api}/api/generate`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: 'Bearer ollama' },
              body: JSON.stringify({ model: 'qwen2:0.5b', prompt, stream: false }),
            });
            return { ok: r.ok, text: ((await r.json()) as { response: string }).response };
          } catch (err) {
            return { ok: false, text: String(err) };
          }
        },
        { api, prompt },
      );
    } finally {
      await page.close();
    }
  };

  it('answers a page of an allowed origin, preflight and all', async () => {
    expect(await callFrom('app.test', 'hello from the browser')).toEqual({ ok: true, text: 'echo: hello from the browser' });
    expect(ollama.requests.filter((r) => r.path === '/api/generate').map((r) => r.body?.prompt)).toEqual(['hello from the browser']);
  });

  it('refuses a page of any other origin: the browser sees a failed fetch and nothing runs', async () => {
    const before = ollama.requests.filter((r) => r.path === '/api/generate').length;
    const r = await callFrom('evil.test', 'steal');
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/TypeError: Failed to fetch/);
    expect(ollama.requests.filter((r) => r.path === '/api/generate').length).toBe(before);
  });
});
