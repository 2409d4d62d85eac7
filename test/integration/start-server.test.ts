/**
 * controller/server.ts used as a library: `startServer(config)` runs the broker on a real socket,
 * the controller and the extensions the config asks for in this process, and `stop()` closes every
 * port. One extension that cannot start (a taken port, a bug) is logged with its stack and the
 * server runs on without it.
 */
import { createServer, connect, type Server } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Extension } from '../../controller/extensions/extension.js';
import { startServer, type RunningServer } from '../../controller/server.js';
import { ServerConfigSchema } from '../../shared/config.js';
import { cli, freePort, tempDir } from '../harness.js';

/** A pino logger whose JSON lines land in `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** Resolves true when something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Config for a test server: loopback, a free broker port, its own data dir, anonymous clients allowed. */
const config = (extra: Record<string, unknown> = {}) =>
  ServerConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    dataDir: tempDir(),
    insecure: true,
    ha: false,
    httpPort: 0,
    ollamaApi: false,
    ...extra,
  });

/** `cutter nodes list --json` against the server's TCP listener: the controller answers through a real socket. */
async function nodesList(server: RunningServer) {
  const r = await cli(['nodes', 'list', '--json', '--connect-timeout', '5000'], { broker: `mqtt://127.0.0.1:${server.ports.mqtt}` });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as unknown[];
}

let running: RunningServer | undefined;
const blockers: Server[] = [];
afterEach(async () => {
  await running?.stop();
  running = undefined;
  for (const b of blockers.splice(0)) await new Promise((r) => b.close(r));
});

describe('startServer', () => {
  it('runs the broker and the controller without any extension, and stop() closes the broker port', async () => {
    const { log } = capture();
    running = await startServer(config(), { log, extensions: () => [] });
    const port = running.ports.mqtt!;
    expect(port).toBeGreaterThan(0);
    expect(running.extensions!.names).toEqual([]);
    expect(await nodesList(running)).toEqual([]);
    await running.stop();
    running = undefined;
    expect(await accepts(port)).toBe(false);
  });

  it('starts the extensions the config asks for, in order, serves HTTP and the Ollama API, and stops them all', async () => {
    const [httpPort, ollamaPort] = [await freePort(), await freePort()];
    const { log } = capture();
    running = await startServer(config({ ha: true, httpPort, ollamaApi: true, ollamaPort }), { log });
    expect(running.extensions!.names).toEqual(['file-audit', 'port-proxy', 'homeassistant', 'metrics', 'dashboard', 'http', 'ollama-api']);
    expect(await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).text()).toBe('ok\n');
    expect(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).toContain('cutter_nodes');
    expect((await fetch(`http://127.0.0.1:${ollamaPort}/api/tags`)).status).toBe(200);
    expect(await nodesList(running)).toEqual([]);
    const mqtt = running.ports.mqtt!;
    await running.stop();
    running = undefined;
    for (const port of [mqtt, httpPort, ollamaPort]) expect(await accepts(port), `port ${port}`).toBe(false);
  });

  it('runs on without an extension that cannot start (HTTP on a taken port), logging it with its stack', async () => {
    const httpPort = await freePort();
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen(httpPort, '127.0.0.1', r));
    const { log, lines } = capture();
    running = await startServer(config({ httpPort }), { log });
    expect(running.extensions!.names).toEqual(['file-audit', 'port-proxy', 'metrics', 'dashboard']);
    const failed = lines.find((l) => l.extension === 'http' && l.level === 50);
    expect(failed?.msg).toMatch(/^extension http not started: http server cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*--http-port/);
    expect((failed?.err as { stack?: string } | undefined)?.stack).toMatch(/\n\s+at /);
    expect(await nodesList(running)).toEqual([]);
  });

  it('leaves out an extension whose start throws, and the ones that require it; stops the rest in reverse order', async () => {
    const calls: string[] = [];
    const ext = (name: string, opts: { fails?: boolean; requires?: string[] } = {}): Extension => ({
      name,
      requires: opts.requires,
      async start() {
        calls.push(`start ${name}`);
        if (opts.fails) throw new Error(`${name} is broken`);
      },
      async stop() {
        calls.push(`stop ${name}`);
      },
    });
    const { log, lines } = capture();
    running = await startServer(config(), {
      log,
      extensions: () => [ext('a'), ext('broken', { fails: true }), ext('needs-broken', { requires: ['broken'] }), ext('b')],
    });
    expect(running.extensions!.names).toEqual(['a', 'b']);
    expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([
      'extension broken not started: broken is broken',
      'extension needs-broken not started: broken failed',
    ]);
    expect(await nodesList(running)).toEqual([]);
    await running.stop();
    running = undefined;
    // A failed start is followed by a stop (it may be half started); the others stop in reverse order.
    expect(calls).toEqual(['start a', 'start broken', 'stop broken', 'start b', 'stop b', 'stop a']);
  });

  it('fails to start, naming the address, when the broker port is taken, and leaves nothing running', async () => {
    const port = await freePort();
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    const httpPort = await freePort();
    const { log } = capture();
    await expect(startServer(config({ port, httpPort }), { log })).rejects.toThrow(`broker cannot listen on 127.0.0.1:${port}`);
    expect(await accepts(httpPort)).toBe(false);
  });
});
