/**
 * Issue 19 as a user meets it: the seed workflows by name (`nodes add` → the printed agent line
 * joins the node; `ollama models import` → a placement file the server accepts), the admin token
 * of a server started with --data-dir, and what a terminal shows (the queued line redrawn in
 * place, daemon logs pretty, NO_COLOR) — the terminal cases in a real pseudo-terminal (node-pty).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as NodePty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, cli, type Daemon, eventually, freePort, ISOLATED_ENV, startServer, tempDir } from '../harness.js';

const pty = createRequire(import.meta.url)('node-pty') as typeof NodePty;

/** `cutter ARGS` in a pseudo-terminal: its output, its exit code, and a way to stop it. */
function inTerminal(args: string[], env: NodeJS.ProcessEnv = {}) {
  const term = pty.spawn(process.execPath, [CUTTER, ...args], { cols: 160, rows: 40, env: { ...ISOLATED_ENV, ...env } });
  const t = {
    out: '',
    exited: new Promise<number>((r) => term.onExit(({ exitCode }) => r(exitCode))),
    kill: (s = 'SIGTERM') => term.kill(s),
  };
  term.onData((d) => {
    t.out += d;
  });
  return t;
}

describe('a secure server started with --data-dir', () => {
  let server: Daemon;
  let url: string;
  let dataDir: string;

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the CLI on the same machine finds its admin token through the hint file', async () => {
    const port = new URL(url).port;
    await eventually(() => readFileSync(join(ISOLATED_ENV.XDG_DATA_HOME!, 'cutter', 'servers', `port-${port}`), 'utf8').trim() === dataDir);
    const r = await cli(['nodes', 'list'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
  });

  it('CUTTER_DATA_DIR finds it too; without either the refusal says where it looked', async () => {
    const elsewhere = tempDir('cutter-test-xdg-');
    const viaEnv = await cli(['nodes', 'list'], { broker: url, env: { XDG_DATA_HOME: elsewhere, CUTTER_DATA_DIR: dataDir } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    const r = await cli(['nodes', 'list'], { broker: url, env: { XDG_DATA_HOME: elsewhere } });
    expect(r.code).toBe(1);
    const port = new URL(url).port;
    expect(r.stderr).toContain(
      `no admin token found, looked in ${join(elsewhere, 'cutter', 'servers', `port-${port}`)} (absent: no cutter server --data-dir on port ${port}), ${join(elsewhere, 'cutter', 'admin.json')}`,
    );
    expect(r.stderr).toContain('set CUTTER_DATA_DIR to its --data-dir; elsewhere give --token-file');
  });

  it('cutter nodes add NAME prints the token and the agent command line that joins the node', async () => {
    const r = await cli(['nodes', 'add', 'seed-node', '--json', '--agent-broker', url], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const added = JSON.parse(r.stdout) as { username: string; password: string; command: string[]; commandLine: string };
    expect(added.username).toBe('agent:seed-node');
    expect(added.command).toEqual(['cutter', 'agent', '--broker', url, '--node-id', 'seed-node', '--token-file', 'seed-node.token.json']);
    const human = await cli(['nodes', 'add', 'seed-other', '--agent-broker', url], { broker: url });
    expect(human.stdout).toContain(`  cutter agent --broker ${url} --node-id seed-other --token-file seed-other.token.json\n`);
    expect(human.stdout).toMatch(/\{"username":"agent:seed-other","password":"[^"]+"\}/);
    refused(await cli(['nodes', 'add', 'seed-node'], { broker: url }), 'cutter token revoke agent:seed-node && cutter nodes add seed-node');

    // On the node: save the token as printed, run the printed line.
    const dir = tempDir();
    writeFileSync(join(dir, 'seed-node.token.json'), JSON.stringify({ username: added.username, password: added.password }), {
      mode: 0o600,
    });
    const agent = spawn(process.execPath, [CUTTER, ...added.command.slice(1)], { cwd: dir, env: ISOLATED_ENV, stdio: 'ignore' });
    try {
      await eventually(async () => (await cli(['nodes', 'list'], { broker: url })).stdout.includes('seed-node  online'), 20_000);
    } finally {
      agent.kill('SIGTERM');
    }
  });
});

function refused(r: { code: number | null; stderr: string }, text: string): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(text);
}

describe('models.yaml of the seed scripts', () => {
  it('is converted to placement rules the server accepts, naming what cannot be mapped', async () => {
    const dir = tempDir();
    const seed = join(dir, 'models.yaml');
    writeFileSync(
      seed,
      'local:\n  - gemma2:2b\n  - { model: nomic-embed-text, keep_alive: 5m }\nprefer_remote: [llama3:70b]\nbackend: ollama\n',
    );
    const out = join(dir, 'placement.yaml');
    const r = await cli(['ollama', 'models', 'import', seed, '--local-node', 'server', '--remote-nodes', 'gpu-box,notebook', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('local[1]: keep_alive cannot be mapped');
    expect(r.stderr).toContain('backend: cannot be mapped');
    expect(r.stderr).toContain('prefer_remote is a pin in cutter, not a preference: llama3:70b run only on gpu-box, notebook');
    expect(r.stderr).toContain(`use them with cutter server --ollama-placement ${out}`);
    const j = await cli(['ollama', 'models', 'import', seed, '--local-node', 'server', '--remote-nodes', 'gpu-box', '--json']);
    expect(JSON.parse(j.stdout).rules).toEqual([
      { model: 'gemma2:2b', nodes: ['server'] },
      { model: 'nomic-embed-text', nodes: ['server'] },
      { model: 'llama3:70b', nodes: ['gpu-box'] },
    ]);
    const { daemon } = await startServer(['--ollama-placement', out]);
    await daemon.stop();
    refused(await cli(['ollama', 'models', 'import', out]), "already cutter's placement format");
  });
});

describe('on a terminal', () => {
  let server: Daemon;
  let url: string;
  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the queued line is redrawn in place (carriage return, clear line), not one line per update', async () => {
    const t = inTerminal(['run', '--memory', '64t', '--timeout', '3s', 'exec', '--', 'true'], { CUTTER_BROKER: url });
    await t.exited;
    expect(t.out).toContain('\r\x1b[2Kcutter: task ');
    const queuedLines = t.out.split('\n').filter((l) => l.includes('queued: '));
    expect(queuedLines).toHaveLength(1);
  });

  it('daemon logs are pretty on a terminal, coloured unless NO_COLOR, JSON with --log-format json', async () => {
    const run = async (extra: string[], env: NodeJS.ProcessEnv = {}) => {
      const port = await freePort();
      const t = inTerminal(['server', '--host', '127.0.0.1', '--port', String(port), '--data-dir', tempDir(), '--insecure', ...extra], env);
      await eventually(() => t.out.includes('broker listening'), 20_000);
      t.kill();
      await t.exited;
      return t.out;
    };
    const pretty = await run([]);
    expect(pretty).toMatch(/INFO.*broker listening/);
    expect(pretty).not.toContain('{"level"');
    expect(pretty).toContain('\x1b[');
    const plain = await run([], { NO_COLOR: '1' });
    expect(plain).toMatch(/INFO.*broker listening/);
    expect(plain).not.toContain('\x1b[');
    const json = await run(['--log-format', 'json']);
    expect(json).toContain('"msg":"broker listening"');
  });

  it('a daemon that cannot start shows the reason on a terminal, without a stack', async () => {
    const port = new URL(url).port;
    const t = inTerminal(['server', '--host', '127.0.0.1', '--port', port, '--data-dir', tempDir(), '--insecure']);
    expect(await t.exited).toBe(1);
    expect(t.out).toMatch(/FATAL.*server failed to start/);
    expect(t.out).toContain(`error: broker cannot listen on 127.0.0.1:${port}`);
    expect(t.out).not.toMatch(/^\s+at .+:\d+:\d+\)?\s*$/m);
  });
});
