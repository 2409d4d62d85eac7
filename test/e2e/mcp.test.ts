/**
 * `cutter mcp` driven by the official MCP SDK's own client over stdio (StdioClientTransport
 * spawning the real CLI), against a secured server and a real agent, with a scoped `mcp` token:
 * list tools, list nodes, run a task and read its output, follow and cancel one, ask a model
 * (first with no node serving Ollama: a clear error; then through a node beside an Ollama double),
 * every call audited; the mcp token cannot do what an
 * admin can (create tokens).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import {
  CUTTER,
  EMBEDDED_BROKER_ONLY,
  ISOLATED_ENV,
  ON_MOSQUITTO,
  cli,
  eventually,
  startAgent,
  startServer,
  tempDir,
  type Daemon,
} from '../harness.js';

type Creds = { username: string; password: string };
type ToolResult = { content: { type: string; text: string }[]; isError?: boolean; structuredContent?: Record<string, unknown> };

describe('cutter mcp', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let dataDir: string;
  let mcpCreds: Creds;
  let client: Client;
  const auditPath = join(tempDir('cutter-mcp-'), 'mcp-audit.jsonl');
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as ToolResult;

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const token = async (args: string[]) =>
      JSON.parse((await cli(['token', 'create', ...args, '--json'], { broker: url, env: admin })).stdout) as Creds;
    const agentCreds = await token(['--role', 'agent', '--node', 'worker']);
    mcpCreds = await token(['--role', 'mcp', '--name', 'desk']);
    agent = await startAgent(url, 'worker', ['--allow-exec'], {
      CUTTER_USERNAME: agentCreds.username,
      CUTTER_PASSWORD: agentCreds.password,
    });
    const env = { ...ISOLATED_ENV, CUTTER_USERNAME: mcpCreds.username, CUTTER_PASSWORD: mcpCreds.password } as Record<string, string>;
    client = new Client({ name: 'cutter-test', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CUTTER, 'mcp', '--broker', url, '--allow-exec', '--audit-log', auditPath],
        env,
        stderr: 'pipe',
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await agent?.stop();
    await server?.stop();
  });

  it('lists its tools', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'ask_model',
      'cancel_task',
      'copy_file',
      'drain_node',
      'list_nodes',
      'pull_model',
      'run_pipeline',
      'run_task',
      'task_logs',
    ]);
    const run = tools.find((t) => t.name === 'run_task')!;
    expect(Object.keys(run.inputSchema.properties ?? {})).toEqual(expect.arrayContaining(['kind', 'image', 'command', 'node']));
  });

  it('lists nodes, runs a task and reads its output', async () => {
    const nodes = await call('list_nodes');
    expect(nodes.isError).toBeFalsy();
    expect(nodes.content[0].text).toMatch(/^worker: online/m);

    const run = await call('run_task', { kind: 'exec', command: ['sh', '-c', 'echo hello-from-mcp; echo oops >&2'], node: 'worker' });
    expect(run.isError, run.content[0].text).toBeFalsy();
    expect(run.structuredContent).toMatchObject({ state: 'succeeded', node: 'worker', exitCode: 0, output: 'hello-from-mcp\n' });
    const taskId = run.structuredContent!.taskId as string;

    const logs = await call('task_logs', { taskId });
    expect(logs.content[0].text).toContain(`task ${taskId} succeeded on node worker (exit code 0)`);
    expect(logs.content[0].text).toContain('hello-from-mcp');
    expect(logs.content[0].text).toContain('[stderr] oops');
  }, 60_000);

  it('starts a task without waiting, then cancels it', async () => {
    const started = await call('run_task', { kind: 'exec', command: ['sleep', '60'], node: 'worker', waitSeconds: 0 });
    const taskId = started.structuredContent!.taskId as string;
    await eventually(async () => (await call('task_logs', { taskId })).content[0].text.includes('running'), 15_000, 200);
    const cancelled = await call('cancel_task', { taskId });
    expect(cancelled.isError).toBeFalsy();
    await eventually(async () => (await call('task_logs', { taskId })).content[0].text.includes(`task ${taskId} cancelled`), 15_000, 200);
  }, 60_000);

  it('answers ask_model with a clear error when no node serves Ollama, and refuses bad input', async () => {
    const r = await call('ask_model', { model: 'llama3.2:1b', prompt: 'hello?' });
    expect(r.isError).toBe(true);
    expect(r.content[0].text).toMatch(/NO_FIT/);
    expect(r.content[0].text).toMatch(/no node can take this ollama generate of llama3\.2:1b/);
    const noImage = await call('run_task', { kind: 'docker', command: ['true'] });
    expect(noImage.isError).toBe(true);
    expect(noImage.content[0].text).toMatch(/needs an image/);
  }, 30_000);

  it('answers ask_model through the Ollama of a node that has the model', async () => {
    // The node's Ollama is the double that follows Ollama's documented API (real Ollama cannot run here).
    const ollama = new OllamaDouble({ models: [{ name: 'llama3.2:1b', size: 1_300_000_000 }], loaded: ['llama3.2:1b'] });
    const ollamaUrl = await ollama.start();
    const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const creds = JSON.parse(
      (await cli(['token', 'create', '--role', 'agent', '--node', 'llm', '--json'], { broker: url, env: admin })).stdout,
    ) as Creds;
    const llm = await startAgent(url, 'llm', ['--ollama-url', ollamaUrl], {
      CUTTER_USERNAME: creds.username,
      CUTTER_PASSWORD: creds.password,
    });
    try {
      const r = await eventually(
        async () => {
          const res = await call('ask_model', { model: 'llama3.2:1b', prompt: 'what is a mesh', system: 'be brief' });
          return res.isError ? null : res;
        },
        15_000,
        300,
      );
      expect(r.structuredContent).toMatchObject({ node: 'llm', model: 'llama3.2:1b', answer: 'echo: what is a mesh' });
      expect(ollama.requests.find((q) => q.path === '/api/generate')?.body).toMatchObject({
        model: 'llama3.2:1b',
        prompt: 'what is a mesh',
        system: 'be brief',
      });
    } finally {
      await llm.stop('SIGKILL');
      await ollama.stop();
    }
  }, 30_000);

  // The mcp role's limits are enforced by the embedded broker's ACL.
  it.skipIf(ON_MOSQUITTO)(
    `audits every call, and the mcp token cannot administer the mesh${ON_MOSQUITTO ? ` [${EMBEDDED_BROKER_ONLY}]` : ''}`,
    async () => {
      const lines = readFileSync(auditPath, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string>);
      expect(lines.length).toBeGreaterThanOrEqual(8);
      expect(lines.every((l) => l.action === 'mcp.call' && l.who === 'mcp:desk')).toBe(true);
      expect(lines.map((l) => l.detail.split(' ')[0])).toEqual(
        expect.arrayContaining(['list_nodes', 'run_task', 'task_logs', 'cancel_task', 'ask_model']),
      );
      expect(lines.find((l) => l.detail.startsWith('ask_model'))?.outcome).toBe('failed');
      const serverAudit = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8');
      expect(serverAudit).toMatch(/"who":"mcp:desk","action":"submit"/);

      const env = { CUTTER_USERNAME: mcpCreds.username, CUTTER_PASSWORD: mcpCreds.password };
      const r = await cli(['token', 'create', '--role', 'admin', '--name', 'evil', '--connect-timeout', '2000'], { broker: url, env });
      expect(r.code).not.toBe(0);
      await server.waitForLog((l) => l.msg === 'publish denied' && String(l.why).includes('mcp clients may send only'));
    },
    30_000,
  );
});
