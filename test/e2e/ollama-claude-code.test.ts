/**
 * Claude Code on the mesh (issue 22): one non-interactive `claude -p "say hi"` with
 * ANTHROPIC_BASE_URL pointing at the server's Ollama-compatible API and ANTHROPIC_API_KEY set, as
 * Ollama's docs/api/anthropic-compatibility.mdx tells users to run it, answered by the model on a
 * node (an Ollama double: test/doubles/ollama.ts).
 *
 * Claude Code is not a dependency of cutter. This test runs only where its binary is found: the
 * `claude` executable named by CUTTER_CLAUDE_BIN or on the PATH, e.g. unpacked from the npm registry with
 * `npm pack @anthropic-ai/claude-code-linux-x64` (the package `@anthropic-ai/claude-code` installs
 * that platform package's `claude` binary). Without it the test is skipped, saying why.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { eventually, freePort, ISOLATED_ENV, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { onPath } from '../services.js';

const CLAUDE = process.env.CUTTER_CLAUDE_BIN || onPath('claude') || '';
const missing = !CLAUDE || !existsSync(CLAUDE);
/** Not a service CI installs (test/services.ts): an optional client, so never required, only skipped. */
const SKIP_TAG =
  '[skipped: needs Claude Code — npm pack @anthropic-ai/claude-code-linux-x64 outside the project, unpack it and put its claude on the PATH or in CUTTER_CLAUDE_BIN]';

/** Runs `claude` to its end; resolves with its exit code and output. */
function runClaude(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLAUDE, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`claude did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(missing)(missing ? `Claude Code through the mesh ${SKIP_TAG}` : 'Claude Code through the mesh', () => {
  let server: Daemon;
  let agent: Daemon;
  let api: string;
  const ollama = new OllamaDouble({
    models: [{ name: 'qwen3-coder:latest', size: 1_900_000_000, family: 'qwen3' }],
    predictAsLimit: true,
    reply: () => ['hi', ' from', ' the', ' mesh'],
  });

  beforeAll(async () => {
    const [ollamaUrl, port] = await Promise.all([ollama.start(), freePort()]);
    let url: string;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    agent = await startAgent(url, 'coder', ['--max-memory', '8g', '--ollama-url', ollamaUrl]);
    await eventually(async () => ((await (await fetch(`${api}/api/tags`)).json()) as { models: unknown[] }).models.length === 1);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
    await ollama.stop();
  });

  it('answers `claude -p "say hi"` with the model on the node', async () => {
    const home = tempDir('cutter-claude-home-');
    const r = await runClaude(
      ['-p', 'say hi', '--model', 'qwen3-coder'],
      {
        ...Object.fromEntries(Object.entries(ISOLATED_ENV).filter(([k]) => !/^(ANTHROPIC|CLAUDE)_/.test(k))),
        HOME: home,
        ANTHROPIC_BASE_URL: api,
        ANTHROPIC_API_KEY: 'ollama',
        // Nothing but the mesh: no telemetry, update checks or error reports to the internet.
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        DISABLE_AUTOUPDATER: '1',
        DISABLE_TELEMETRY: '1',
      },
      120_000,
    );
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('hi from the mesh');
    expect(ollama.requests.some((q) => q.path === '/api/chat')).toBe(true);
  }, 150_000);
});
