/**
 * `cutter mcp --http` (issue 19): the MCP Streamable HTTP transport, driven as a user's assistant
 * drives it — the official SDK's Client over StreamableHTTPClientTransport — against a real
 * secured server, a real agent and the real `cutter mcp` process: 401 without an mcp token (and
 * with an admin or a wrong one), 413 for an oversized body, and the operations tools: copy_file
 * both ways (inline, and by path inside --files-dir only), pull_model through a node beside an
 * Ollama double, run_pipeline, drain_node (the node drained as `cutter nodes list` shows it);
 * an image push stays an admin's act; against a broker without tokens it refuses to start.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { topics } from '../../shared/topics.js';
import {
  CUTTER,
  Daemon,
  ISOLATED_ENV,
  cli,
  describeEmbeddedBroker,
  eventually,
  freePort,
  startAgent,
  startServer,
  tempDir,
} from '../harness.js';
import { bareBroker } from './recovery-helpers.js';

type Creds = { username: string; password: string };
type ToolResult = { content: { type: string; text: string }[]; isError?: boolean; structuredContent?: Record<string, unknown> };

describeEmbeddedBroker('cutter mcp --http', () => {
  let server: Daemon;
  let agent: Daemon;
  let llm: Daemon;
  let mcp: Daemon;
  let ollama: OllamaDouble;
  let url: string;
  let dataDir: string;
  let endpoint: string;
  let mcpCreds: Creds;
  let adminCreds: Creds;
  let client: Client;
  const allowed = tempDir('cutter-mcp-allowed-');
  const filesDir = tempDir('cutter-mcp-files-');
  const auditPath = join(tempDir('cutter-mcp-http-'), 'mcp-audit.jsonl');
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as ToolResult;
  const post = (headers: Record<string, string>, body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}') =>
    fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body,
    });

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    adminCreds = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as Creds;
    const token = async (args: string[]) =>
      JSON.parse((await cli(['token', 'create', ...args, '--json'], { broker: url, env: admin })).stdout) as Creds;
    const agentCreds = await token(['--role', 'agent', '--node', 'worker']);
    const llmCreds = await token(['--role', 'agent', '--node', 'llm']);
    mcpCreds = await token(['--role', 'mcp', '--name', 'desk']);
    agent = await startAgent(url, 'worker', ['--allow-exec', '--files-allow', allowed], {
      CUTTER_USERNAME: agentCreds.username,
      CUTTER_PASSWORD: agentCreds.password,
    });
    ollama = new OllamaDouble({ registry: [{ name: 'tinyllama:latest', size: 600_000_000 }] });
    llm = await startAgent(url, 'llm', ['--ollama-url', await ollama.start()], {
      CUTTER_USERNAME: llmCreds.username,
      CUTTER_PASSWORD: llmCreds.password,
    });
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        CUTTER,
        'mcp',
        '--http',
        `127.0.0.1:${port}`,
        '--json',
        '--broker',
        url,
        '--allow-exec',
        '--files-dir',
        filesDir,
        '--audit-log',
        auditPath,
      ],
      { env: ISOLATED_ENV, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    mcp = new Daemon(child, 'cutter mcp --http');
    // --json prints {"url", "broker"} once it listens.
    endpoint = await eventually(() => (mcp.stdout.trim().endsWith('}') ? (JSON.parse(mcp.stdout) as { url: string }).url : null), 30_000);
    client = new Client({ name: 'assistant', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(endpoint), {
        requestInit: { headers: { authorization: `Bearer ${mcpCreds.username}:${mcpCreds.password}` } },
      }),
    );
  }, 90_000);
  afterAll(async () => {
    await client?.close();
    await mcp?.stop();
    await llm?.stop();
    await agent?.stop();
    await ollama?.stop();
    await server?.stop();
  });

  it('refuses a request without an mcp token, with a wrong one, with an admin one, and an oversized body', async () => {
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const none = await post({});
    expect(none.status).toBe(401);
    expect(await none.text()).toContain('no Authorization header');
    const wrong = await post({ authorization: `Bearer ${mcpCreds.username}:not-the-password` });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('the broker refused this token');
    const asAdmin = await post({ authorization: `Bearer ${adminCreds.username}:${adminCreds.password}` });
    expect(asAdmin.status).toBe(401);
    expect(await asAdmin.text()).toContain('not an mcp token');
    // A body declared over 4 MiB is refused before a byte of it is read.
    const big = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(endpoint, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${mcpCreds.username}:${mcpCreds.password}`,
          'content-type': 'application/json',
          'content-length': String(5 * 1024 * 1024),
        },
      });
      req.on('response', (res) => (res.resume(), resolve(res.statusCode)));
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(big).toBe(413);
  }, 30_000);

  it('lists every tool, the operations ones included', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['list_nodes', 'run_task', 'copy_file', 'pull_model', 'run_pipeline', 'drain_node']),
    );
  });

  it('copies a file to a node and back, inline and by a path inside --files-dir only', async () => {
    const put = await call('copy_file', {
      direction: 'to_node',
      node: 'worker',
      path: join(allowed, 'note.txt'),
      content: 'hello <mesh>\n',
    });
    expect(put.isError, put.content[0].text).toBeFalsy();
    expect(readFileSync(join(allowed, 'note.txt'), 'utf8')).toBe('hello <mesh>\n');
    const got = await call('copy_file', { direction: 'from_node', node: 'worker', path: join(allowed, 'note.txt') });
    expect(got.content[0].text).toBe('hello <mesh>\n');

    writeFileSync(join(filesDir, 'local.bin'), Buffer.from([0, 1, 2, 255]));
    const byPath = await call('copy_file', {
      direction: 'to_node',
      node: 'worker',
      path: join(allowed, 'local.bin'),
      localPath: 'local.bin',
    });
    expect(byPath.isError, byPath.content[0].text).toBeFalsy();
    const back = await call('copy_file', { direction: 'from_node', node: 'worker', path: join(allowed, 'local.bin'), encoding: 'base64' });
    expect(Buffer.from(back.content[0].text, 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));
    mkdirSync(join(filesDir, 'out'));
    const down = await call('copy_file', {
      direction: 'from_node',
      node: 'worker',
      path: join(allowed, 'note.txt'),
      localPath: 'out/n.txt',
    });
    expect(down.isError, down.content[0].text).toBeFalsy();
    expect(readFileSync(join(filesDir, 'out', 'n.txt'), 'utf8')).toBe('hello <mesh>\n');

    const leaving = await call('copy_file', {
      direction: 'to_node',
      node: 'worker',
      path: join(allowed, 'x'),
      localPath: '../../etc/passwd',
    });
    expect(leaving.isError).toBe(true);
    expect(leaving.content[0].text).toMatch(/outside --files-dir|does not exist/);
    const outside = await call('copy_file', { direction: 'to_node', node: 'worker', path: '/etc/cutter-mcp-test', content: 'x' });
    expect(outside.isError).toBe(true);
    expect(outside.content[0].text).toMatch(/POLICY_DENIED/);
  }, 60_000);

  it('pulls a model onto a node', async () => {
    const r = await call('pull_model', { model: 'tinyllama', node: 'llm', waitSeconds: 60 });
    expect(r.isError, r.content[0].text).toBeFalsy();
    expect(r.content[0].text).toBe('tinyllama pulled on llm');
    expect(ollama.requests.some((q) => q.path === '/api/pull')).toBe(true);
    const missing = await call('pull_model', { model: 'no-such-model', node: 'llm', waitSeconds: 60 });
    expect(missing.isError).toBe(true);
    expect(missing.content[0].text).toContain('file does not exist');
  }, 90_000);

  it('runs a pipeline given inline, each step fed the one it needs', async () => {
    const spec = JSON.stringify({
      name: 'greet',
      steps: [
        { id: 'a', node: 'worker', task: { kind: 'exec', command: ['echo', 'mesh'] } },
        { id: 'b', needs: ['a'], node: 'worker', task: { kind: 'exec', argv: ['sh', '-c', 'echo "hello $CUTTER_INPUT"'] } },
      ],
    });
    const r = await call('run_pipeline', { spec });
    expect(r.isError, r.content[0].text).toBeFalsy();
    expect(r.content[0].text).toContain('pipeline greet succeeded');
    expect(r.content[0].text).toContain('--- output of b ---\nhello mesh');
    const bad = await call('run_pipeline', { spec: 'steps: []' });
    expect(bad.isError).toBe(true);
    expect(bad.content[0].text).toContain('INVALID_ARGUMENT: the pipeline: steps');
    // Checked as `cutter pipeline` checks a file: a misspelled key is named with the nearest valid one.
    const typo = await call('run_pipeline', { spec: 'steps:\n  - id: a\n    task: { kind: exec, comand: [true] }\n' });
    expect(typo.isError).toBe(true);
    expect(typo.content[0].text).toContain('steps[0].task.comand: unknown key "comand" (did you mean "command"?)');
  }, 60_000);

  it('drains and undrains a node, as cutter nodes list shows', async () => {
    const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const drained = await call('drain_node', { node: 'worker', drain: true });
    expect(drained.isError, drained.content[0].text).toBeFalsy();
    const list = async () =>
      (
        JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url, env: admin })).stdout) as { node: string; drained: boolean }[]
      ).find((n) => n.node === 'worker')?.drained;
    expect(await list()).toBe(true);
    await call('drain_node', { node: 'worker', drain: false });
    expect(await list()).toBe(false);
  }, 30_000);

  it('leaves image pushes to admins: an mcp token sending image.put is cut off', async () => {
    const raw = await mqtt.connectAsync(url, { ...mcpCreds, clientId: 'mcp-raw-1', reconnectPeriod: 0 });
    const closed = new Promise((resolve) => raw.once('close', resolve));
    const t = topics();
    raw.publish(
      t.filesIn('worker', 'mcp-raw-1'),
      JSON.stringify({ v: 1, type: 'image.put', xfer: 'a'.repeat(32), image: 'x:1', size: 1, sha256: 'b'.repeat(64) }),
      { qos: 1 },
    );
    await server.waitForLog((l) => l.msg === 'publish denied' && String(l.why).includes('may not push images'));
    await closed;
    raw.end(true);
  }, 30_000);

  it('audits every call under the token that made it', () => {
    const lines = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines.every((l) => l.action === 'mcp.call' && l.who === 'mcp:desk')).toBe(true);
    expect(lines.map((l) => l.detail.split(' ')[0])).toEqual(
      expect.arrayContaining(['copy_file', 'pull_model', 'run_pipeline', 'drain_node']),
    );
  });
});

describe('cutter mcp --http against a broker that checks no tokens', () => {
  it('refuses to start, saying why and what to do', async () => {
    // A bare MQTT broker that lets any username and password in (as a Mosquitto without a password file).
    const broker = await bareBroker();
    try {
      const r = await cli(['mcp', '--http', '127.0.0.1:0'], { broker: broker.url });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('accepts any username and password');
      expect(r.stderr).toContain('--insecure');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await broker.close();
    }
  }, 60_000);
});
