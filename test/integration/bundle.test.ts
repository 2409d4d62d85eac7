/**
 * The CLI as it ships: `npm run build` bundles tsc's output with esbuild (scripts/bundle-cli.ts),
 * and that bundle is what `cutter` runs for a user, while the rest of the suite runs tsc's files.
 * Here the bundle is built beside the project and run as processes: `--version`, an agent that
 * takes a task from a real server, and the parts of dockerode and MQTT.js the bundle loads only on
 * first use (docker-modem's SSH and HTTPS transports, MQTT.js's WebSocket, SOCKS and TLS
 * transports), which must stay out of an idle agent and still work when asked; and the `debug`
 * package, off unless DEBUG is set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type Daemon, eventually, freePort, ISOLATED_ENV, ROOT, startServer } from '../harness.js';

/** Where the bundle is built: directly in the project, so node_modules and package.json are found. */
const DIR = join(ROOT, `.bundle-test-${process.pid}`);
const MAIN = join(DIR, 'cli', 'main.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** Preloaded into the agent: on SIGUSR2 it writes the built-in modules it has loaded (`process.moduleLoadList`) to argv's file. */
const LIST_BUILTINS = join(DIR, 'list-builtins.cjs');
const BUILTINS_OUT = join(DIR, 'builtins.txt');

/**
 * A TCP listener that keeps the first bytes each connection sends, then closes it: a TLS client
 * opens with a handshake record (content type 22, 0x16; RFC 8446 §5.1), so a first byte of 0x16
 * says the client spoke TLS to it.
 */
async function firstBytes(): Promise<{ port: number; got: Buffer[]; server: Server }> {
  const got: Buffer[] = [];
  const server = createServer((c) => c.once('data', (b: Buffer) => (got.push(b), c.destroy())).on('error', () => undefined));
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, got, server };
}

/** Runs the bundled `cutter` to completion. */
function bundled(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...ISOLATED_ENV, ...env } });
}

describe('the bundled CLI', () => {
  let server: Daemon;
  let url: string;
  let wsPort: number;
  let agent: ChildProcess;
  let agentOut = '';
  let agentErr = '';

  beforeAll(async () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'scripts', 'bundle-cli.js'), DIR], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    wsPort = await freePort();
    ({ daemon: server, url } = await startServer(['--ws-port', String(wsPort)]));
    writeFileSync(
      LIST_BUILTINS,
      `process.on('SIGUSR2', () => require('node:fs').writeFileSync(${JSON.stringify(BUILTINS_OUT)}, process.moduleLoadList.join('\\n')));`,
    );
    // NODE_DEBUG=module: Node names every CommonJS file it loads on stderr.
    // --trace-opt: V8 prints a line for each function it optimises (agent/start-compiler.ts).
    const args = [
      '--require',
      LIST_BUILTINS,
      '--trace-opt',
      MAIN,
      'agent',
      '--broker',
      url,
      '--node-id',
      'bundled',
      '--allow-exec',
      '--heartbeat',
      '500',
    ];
    agent = spawnChild(process.execPath, args, {
      env: { ...ISOLATED_ENV, NODE_DEBUG: 'module' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout!.on('data', (c: Buffer) => (agentOut += c.toString()));
    agent.stderr!.on('data', (c: Buffer) => (agentErr += c.toString()));
    await eventually(() => agentOut.includes('agent started'), 30_000);
  }, 180_000);
  afterAll(async () => {
    agent?.kill('SIGTERM');
    await server?.stop();
    rmSync(DIR, { recursive: true, force: true });
  });

  it('prints its version', () => {
    const r = bundled(['--version']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  // First of the agent's tests: it must not have had work yet.
  it('optimises no code while the agent is idle, and optimises its hot paths once a task streams output', async () => {
    // From the start on, nothing is marked for optimisation (--trace-opt's "marking … for
    // optimization"; the entry's own static imports load before the hold can be set, and are not judged).
    const startedAt = agentOut.indexOf('agent started');
    expect(startedAt).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 3_000)); // six heartbeats
    expect(agentOut.slice(startedAt)).not.toMatch(/marking [^\n]* for optimization/);
    const run = spawnSync(process.execPath, [MAIN, 'run', '--node', 'bundled', 'exec', '--', 'head', '-c', '20000000', '/dev/zero'], {
      encoding: 'latin1',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60_000,
      env: { ...ISOLATED_ENV, CUTTER_BROKER: url },
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.length).toBe(20_000_000);
    await eventually(() => /completed optimizing/.test(agentOut.slice(startedAt)), 10_000);
  });

  it('runs an agent that takes a task, without loading SSH, gRPC, WebSocket or SOCKS code while it waits', () => {
    const run = bundled(['run', '--node', 'bundled', 'exec', '--', 'echo', 'from the bundle'], { CUTTER_BROKER: url });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe('from the bundle\n');
    const loaded = [...agentErr.matchAll(/^MODULE \d+: load "([^"]+)"/gm)].map((m) => m[1]);
    expect(loaded.some((f) => f.includes('/node_modules/pino/'))).toBe(true);
    expect(loaded.filter((f) => /\/node_modules\/(ssh2|@grpc|protobufjs)\//.test(f))).toEqual([]);
    expect(loaded.filter((f) => /\/node_modules\/(ws|socks)\/|\/mqtt\/build\/lib\/connect\//.test(f))).toEqual([]);
  });

  it('leaves TLS and HTTPS out of an idle agent', async () => {
    agent.kill('SIGUSR2');
    await eventually(() => existsSync(BUILTINS_OUT), 10_000);
    const builtins = readFileSync(BUILTINS_OUT, 'utf8').split('\n');
    expect(builtins).toContain('NativeModule http');
    expect(builtins.filter((m) => /^NativeModule (tls|https|_tls_wrap)$/.test(m))).toEqual([]);
  });

  it("loads MQTT.js's TLS transport for an mqtts:// broker", async () => {
    const hello = await firstBytes();
    try {
      // Not `bundled()`: a synchronous spawn would keep this process's listener from reading.
      const r = await cli(['nodes', 'list', '--json'], { main: MAIN, broker: `mqtts://127.0.0.1:${hello.port}`, timeoutMs: 60_000 });
      expect(r.code).not.toBe(0);
      expect(hello.got[0]?.[0]).toBe(0x16);
    } finally {
      hello.server.close();
    }
  });

  it('loads node:https for an engine at DOCKER_HOST with DOCKER_TLS_VERIFY=1', async () => {
    const hello = await firstBytes();
    try {
      const r = await cli(['image', 'push', 'cutter-test/busybox:latest', '--node', 'bundled'], {
        main: MAIN,
        broker: url,
        timeoutMs: 60_000,
        env: { DOCKER_HOST: `tcp://127.0.0.1:${hello.port}`, DOCKER_TLS_VERIFY: '1' },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: image cutter-test\/busybox:latest is not on the local Docker engine/);
      expect(hello.got[0]?.[0]).toBe(0x16);
    } finally {
      hello.server.close();
    }
  });

  it("keeps the debug package's loggers off unless DEBUG is set, and honours DEBUG when it is", () => {
    // The agent above ran without DEBUG: the bundle's stand-in served MQTT.js, and the real package was never loaded.
    const agentLoaded = [...agentErr.matchAll(/^MODULE \d+: load "([^"]+)"/gm)].map((m) => m[1]);
    expect(agentLoaded.filter((f) => f.includes('/node_modules/debug/'))).toEqual([]);
    const r = bundled(['nodes', 'list', '--json'], { CUTTER_BROKER: url, DEBUG: 'mqttjs:client' });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { node: string }[]).map((n) => n.node)).toContain('bundled');
    expect(r.stderr).toMatch(/mqttjs:client connect :: sending queued packets/);
    const quiet = bundled(['nodes', 'list', '--json'], { CUTTER_BROKER: url });
    expect(quiet.stderr).not.toContain('mqttjs');
  });

  it("loads MQTT.js's WebSocket transport for a ws:// broker", () => {
    const r = bundled(['nodes', 'list', '--json'], { CUTTER_BROKER: `ws://127.0.0.1:${wsPort}/mqtt`, NODE_DEBUG: 'module' });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { node: string }[]).map((n) => n.node)).toContain('bundled');
    const loaded = [...r.stderr.matchAll(/^MODULE \d+: load "([^"]+)"/gm)].map((m) => m[1]);
    expect(loaded.some((f) => f.endsWith('/node_modules/mqtt/build/lib/connect/ws.js'))).toBe(true);
  });

  it('loads the SSH transport when DOCKER_HOST asks for it', () => {
    // `image push` reads the image from the local engine first. Nothing listens on port 1: the
    // refusal comes from ssh2's connect, so the SSH transport was loaded and called.
    const r = bundled(['image', 'push', 'cutter-test/busybox:latest', '--node', 'bundled'], {
      CUTTER_BROKER: url,
      DOCKER_HOST: 'ssh://nobody@127.0.0.1:1',
      NODE_NO_WARNINGS: '1',
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      'error: image cutter-test/busybox:latest is not on the local Docker engine (connect ECONNREFUSED 127.0.0.1:1); pull or build it first, or give --input TAR',
    );
  });
});
