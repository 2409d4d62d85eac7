/**
 * Test harness: starts real cutter processes (server, agents, CLI) from dist/ on loopback ports
 * and reads their pino JSON logs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe } from 'vitest';
import { startMosquitto, type RunningMosquitto } from '../scripts/mosquitto.js';
import { freePort } from '../scripts/procs.js';
import { needs, skipTag } from './services.js';

export { freePort };

/**
 * The broker the end-to-end tests run on: `embedded` (cutter's own Aedes, the default) or
 * `mosquitto` (CUTTER_TEST_BROKER=mosquitto: a real Mosquitto per server, with `cutter server
 * --broker`). `npm test` runs the e2e tests on both (vitest.config.ts, project `e2e-mosquitto`).
 */
export const TEST_BROKER: 'embedded' | 'mosquitto' = process.env.CUTTER_TEST_BROKER === 'mosquitto' ? 'mosquitto' : 'embedded';
export const ON_MOSQUITTO = TEST_BROKER === 'mosquitto';
// vitest.config.ts leaves the Mosquitto pass out when mosquitto is missing; this catches
// CUTTER_TEST_BROKER=mosquitto set by hand (and CUTTER_REQUIRE_ALL=1 throws in needs()).
if (ON_MOSQUITTO && needs('mosquitto').skip) throw new Error(`CUTTER_TEST_BROKER=mosquitto ${skipTag('mosquitto')}`);
/**
 * Why a test of the embedded broker's own features (tokens and ACL, packet limits, TLS and
 * WebSocket listeners, flood protection) is skipped on Mosquitto: there those are Mosquitto's
 * job, configured in mosquitto.conf, not cutter's.
 */
export const EMBEDDED_BROKER_ONLY =
  "embedded broker only (skipped with CUTTER_TEST_BROKER=mosquitto: tokens, ACL, limits and listeners are then the external broker's job)";
/**
 * `describe` for a test of the embedded broker's own features: skipped on Mosquitto, with the
 * reason in its name so the report says why.
 */
export function describeEmbeddedBroker(name: string, fn: () => void): void {
  describe.skipIf(ON_MOSQUITTO)(ON_MOSQUITTO ? `${name} [${EMBEDDED_BROKER_ONLY}]` : name, fn);
}
/** The Mosquitto behind each port a test server used, kept across a server restart on the same port. */
const mosquittos = new Map<number, RunningMosquitto>();
process.once('exit', () => {
  for (const m of mosquittos.values()) m.child.kill('SIGKILL');
});
// Each test file stops the Mosquittos it started when it is done (a vitest hook at the top level
// of an imported module belongs to the importing file).
afterAll(async () => {
  await Promise.all([...mosquittos.keys()].map((port) => stopTestBroker(port)));
});

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CUTTER = `${ROOT}dist/cli/main.js`;
/** The busybox image the Docker tests build with scripts/build-test-image.sh. */
export const TEST_IMAGE = 'cutter-test/busybox:latest';

/** Environment for spawned processes: no config file from the developer's home, no inherited CUTTER_* settings. */
export const ISOLATED_ENV: NodeJS.ProcessEnv = (() => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), 'cutter-test-config-')),
    XDG_DATA_HOME: mkdtempSync(join(tmpdir(), 'cutter-test-data-')),
  };
  for (const k of Object.keys(env)) if (k.startsWith('CUTTER_') && !k.startsWith('CUTTER_REQUIRE_')) delete env[k];
  // No test reaches for a real Ollama or binds Ollama's port unless it asks (--ollama-url, --ollama-port).
  env.CUTTER_OLLAMA_URL = 'off';
  env.CUTTER_OLLAMA_API = 'false';
  // No HTTP server (dashboard, /metrics) unless a test asks for one: parallel servers would share its port.
  env.CUTTER_HTTP_PORT = '0';
  return env;
})();

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A running daemon with its output collected. */
export class Daemon {
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    let partial = '';
    child.stdout!.on('data', (c: Buffer) => {
      this.stdout += c.toString();
      partial += c.toString();
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const raw = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          line = { msg: raw, raw: true };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.test(line) ? (w.resolve(line), false) : true));
      }
    });
    child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Resolves with the first log line (past or future) that passes `test`. */
  waitForLog(test: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `${this.name}: no matching log line within ${timeoutMs} ms\nstdout:\n${this.stdout.slice(-4000)}\nstderr:\n${this.stderr.slice(-2000)}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({ test, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  waitForMsg(msg: string, timeoutMs?: number): Promise<LogLine> {
    return this.waitForLog((l) => l.msg === msg, timeoutMs);
  }

  /** Sends a signal and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Daemons started during the current test, whose output is printed when it fails. */
const startedInTest: Daemon[] = [];
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') {
    for (const d of startedInTest) {
      const tail = d.lines
        .slice(-40)
        .map((l) => JSON.stringify(l))
        .join('\n');
      process.stderr.write(
        `--- ${d.name} (last ${Math.min(40, d.lines.length)} log lines)\n${tail}\n${d.stderr ? `stderr: ${d.stderr.slice(-2000)}\n` : ''}`,
      );
    }
  }
  startedInTest.length = 0;
});

function spawnCutter(args: string[], name: string, env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(process.execPath, [CUTTER, ...args], { env: { ...ISOLATED_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon = new Daemon(child, name);
  startedInTest.push(daemon);
  return daemon;
}

/** A fresh, empty directory. */
export function tempDir(prefix = 'cutter-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts `cutter server` on a loopback port (a free one unless given) with its own data dir
 * (fresh unless given), and waits until the broker listens.
 */
export async function startServer(
  extra: string[] = [],
  opts: { port?: number; dataDir?: string; secure?: boolean; host?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ daemon: Daemon; url: string; port: number; dataDir: string }> {
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? tempDir('cutter-test-data-');
  const url = `mqtt://127.0.0.1:${port}`;
  if (ON_MOSQUITTO) {
    // The broker outlives the controller: a server "restarted" on the same port finds its Mosquitto
    // still there, with the sessions and retained messages it holds.
    let mosquitto = mosquittos.get(port);
    if (!mosquitto || mosquitto.child.exitCode !== null || mosquitto.child.signalCode !== null) {
      mosquitto = await startMosquitto(port, { host: opts.host });
      mosquittos.set(port, mosquitto);
    }
    const daemon = spawnCutter(['server', '--broker', url, '--data-dir', dataDir, ...extra], 'server', opts.env);
    await daemon.waitForMsg('controller started');
    return { daemon, url, port, dataDir };
  }
  // Tests of other features run the broker open; the security tests pass { secure: true }.
  const daemon = spawnCutter(
    [
      'server',
      '--host',
      opts.host ?? '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
      ...(opts.secure ? [] : ['--insecure']),
      ...extra,
    ],
    'server',
    opts.env,
  );
  await daemon.waitForMsg('broker listening');
  return { daemon, url, port, dataDir };
}

/** Stops the Mosquitto behind a test server's port, if any (CUTTER_TEST_BROKER=mosquitto). */
export async function stopTestBroker(port: number): Promise<void> {
  const m = mosquittos.get(port);
  mosquittos.delete(port);
  await m?.stop();
}

/** Starts `cutter agent` and waits for its first heartbeat to be out. */
export async function startAgent(url: string, nodeId: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const daemon = spawnCutter(['agent', '--broker', url, '--node-id', nodeId, '--heartbeat', '500', ...extra], `agent ${nodeId}`, env);
  await daemon.waitForMsg('agent started');
  return daemon;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs one `cutter …` command to completion, as a user would. `main`: the CLI entry to run
 * instead of tsc's dist/cli/main.js (the bundle, test/integration/bundle.test.ts).
 */
export function cli(
  args: string[],
  opts: { broker?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; main?: string } = {},
): Promise<CliResult> {
  const started = Date.now();
  const child = spawn(process.execPath, [opts.main ?? CUTTER, ...args], {
    env: { ...ISOLATED_ENV, ...(opts.broker ? { CUTTER_BROKER: opts.broker } : {}), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`cutter ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, opts.timeoutMs ?? 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Starts a CLI command in the background (for cancel and Ctrl-C tests). */
export function cliBackground(args: string[], broker: string): Daemon {
  return spawnCutter(args, `cli ${args[0]}`, { CUTTER_BROKER: broker });
}

/** Builds the busybox test image when missing. */
export function ensureTestImage(): void {
  const r = spawnSync('bash', [`${ROOT}scripts/build-test-image.sh`, TEST_IMAGE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building ${TEST_IMAGE} failed: ${r.stderr}`);
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
