/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core over
 * CDP. Nodes and a running task appear, the task's state and output change live (server-sent
 * events, no reload), and the page fits a phone's width. Screenshots are saved under
 * test-artifacts/ (git-ignored) for a person to look at.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cli, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs, onPath } from '../services.js';

const chromiumNeeded = needs('chromium');
const CHROMIUM = onPath('chromium') ?? 'chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

describe.skipIf(chromiumNeeded.skip)(`dashboard in headless Chromium${chromiumNeeded.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let http: string;
  let browser: BrowserContext;

  beforeAll(async () => {
    const port = await freePort();
    ({ daemon: server, url } = await startServer(['--http-port', String(port)]));
    http = `http://127.0.0.1:${port}/`;
    agent = await startAgent(url, 'dash-node', ['--allow-exec']);
    mkdirSync(ARTIFACTS, { recursive: true });
    // A fresh profile (--user-data-dir) and nothing that talks to the internet.
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
      viewport: { width: 1200, height: 800 },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
  });

  it('shows nodes and a running task, then its end and output, live without a reload', async () => {
    const page = await browser.newPage();
    await page.goto(http);
    const node = page.locator('[data-node="dash-node"]');
    await node.waitFor({ timeout: 15_000 });
    await expect.poll(() => node.locator('[data-field="state"]').textContent()).toBe('online');
    expect(await node.textContent()).toMatch(/free of/);
    expect(await page.locator('#conn').textContent()).toBe('live');
    // A marker that a reload would wipe.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    const r = await cli(['run', '-d', 'exec', '--', 'sh', '-c', 'echo first-line; sleep 4; echo last-line'], { broker: url });
    expect(r.code).toBe(0);
    const taskId = r.stdout.trim().split(/\s+/).pop()!;
    const row = page.locator(`[data-task="${taskId}"]`);
    await expect.poll(() => row.locator('[data-field="state"]').textContent(), { timeout: 15_000 }).toBe('running');
    await expect.poll(() => row.locator('[data-field="log"]').textContent(), { timeout: 15_000 }).toContain('first-line');
    expect(await row.textContent()).toContain('dash-node');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-running.png'), fullPage: true });

    await expect.poll(() => row.locator('[data-field="state"]').textContent(), { timeout: 20_000 }).toBe('succeeded');
    expect(await row.locator('[data-field="log"]').textContent()).toContain('last-line');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.close();
  });

  it('fits a phone screen and shows a node going offline', async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(http);
    const node = page.locator('[data-node="dash-node"]');
    await node.waitFor({ timeout: 15_000 });
    // No sideways scrolling of the page itself (the task table scrolls in its own box).
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
    await agent.stop('SIGKILL');
    await expect.poll(() => node.locator('[data-field="state"]').textContent(), { timeout: 15_000 }).toBe('offline');
    await page.close();
  });
});
