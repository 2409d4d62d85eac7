/**
 * The dashboard's issue-19 views in Debian's Chromium (headless, playwright-core, as
 * test/e2e/dashboard.test.ts): each node's memory offered to cutter beside the host's, a task's
 * newest log lines in an expandable block (bounded to the newest 40 lines, shown as text, never
 * HTML), and Ollama calls grouped into one row per model and node with their count and the latest
 * call instead of one task row each.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { ROOT, cli, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs, onPath } from '../services.js';

const chromiumNeeded = needs('chromium');
const CHROMIUM = onPath('chromium') ?? 'chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

describe.skipIf(chromiumNeeded.skip)(`dashboard: offered memory, log lines, grouped Ollama requests${chromiumNeeded.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let llm: Daemon;
  let ollama: OllamaDouble;
  let url: string;
  let http: string;
  let browser: BrowserContext;

  beforeAll(async () => {
    const port = await freePort();
    ({ daemon: server, url } = await startServer(['--http-port', String(port)]));
    http = `http://127.0.0.1:${port}/`;
    agent = await startAgent(url, 'ops-node', ['--allow-exec', '--max-memory', '256m']);
    ollama = new OllamaDouble({ models: [{ name: 'tinyllama:latest', size: 600_000_000 }], loaded: ['tinyllama:latest'] });
    llm = await startAgent(url, 'ops-llm', ['--ollama-url', await ollama.start()]);
    mkdirSync(ARTIFACTS, { recursive: true });
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
      ],
      viewport: { width: 1200, height: 900 },
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await llm?.stop();
    await agent?.stop();
    await ollama?.stop();
    await server?.stop();
  });

  it("shows each node's memory offered to cutter beside the host's", async () => {
    const page = await browser.newPage();
    await page.goto(http);
    const offered = page.locator('[data-node="ops-node"] [data-field="memory-offered"]');
    await expect.poll(() => offered.textContent(), { timeout: 15_000 }).toMatch(/^256 MiB of \d+(\.\d)? GiB host$/);
    // Without --max-memory a node offers the host's whole memory.
    const whole = await page.locator('[data-node="ops-llm"] [data-field="memory-offered"]').textContent();
    const [a, b] = whole!.split(' of ');
    expect(`${a} host`).toBe(b);
    await page.close();
  });

  it("shows a finished task's newest log lines when its row is expanded, bounded and as text", async () => {
    const script = 'for i in $(seq 1 60); do echo line-$i; done; echo "<b>bold</b>"';
    const r = await cli(['run', '--node', 'ops-node', 'exec', '--', 'sh', '-c', script], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const page = await browser.newPage();
    await page.goto(http);
    const row = page.locator('#tasks tr', { hasText: 'seq 1 60' });
    await row.waitFor({ timeout: 15_000 });
    await expect.poll(() => row.locator('[data-field="log-newest"]').textContent(), { timeout: 15_000 }).toBe('<b>bold</b>');
    const log = row.locator('[data-field="log"]');
    // Seen finished: collapsed to its newest line until the user opens it.
    expect(await log.isVisible()).toBe(false);
    await row.locator('[data-field="log-newest"]').click();
    await expect.poll(() => log.isVisible()).toBe(true);
    const lines = (await log.textContent())!.split('\n');
    expect(lines).toHaveLength(40);
    expect(lines[0]).toBe('line-22');
    expect(lines.at(-1)).toBe('<b>bold</b>');
    expect(await row.locator('b').count()).toBe(0);
    // Still open after the page's next redraws (it redraws every second).
    await page.waitForTimeout(1500);
    expect(await log.isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-log-lines.png'), fullPage: true });
    await page.close();
  }, 60_000);

  it('groups Ollama calls into one row per model and node', async () => {
    for (const prompt of ['one', 'two', 'three']) {
      const r = await cli(['ollama', 'run', 'tinyllama', prompt, '--node', 'ops-llm'], { broker: url });
      expect(r.code, r.stderr).toBe(0);
    }
    const page = await browser.newPage();
    await page.goto(http);
    const group = page.locator('[data-ollama="tinyllama:latest@ops-llm"]');
    await group.waitFor({ timeout: 15_000 });
    expect(await page.locator('#ollama tr').count()).toBe(1);
    expect(await group.locator('[data-field="count"]').textContent()).toBe('3');
    expect(await group.locator('[data-field="live"]').textContent()).toBe('0');
    expect(await group.locator('[data-field="latest"]').textContent()).toMatch(/^succeeded generate \d+ s ago/);
    // No task row per call.
    expect(await page.locator('#tasks tr', { hasText: 'tinyllama' }).count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-ollama.png'), fullPage: true });
    await page.close();
  }, 60_000);
});
