/**
 * Starting cutter processes from scripts (demo, benchmarks): a free loopback port, and a daemon
 * started from dist/ that resolves once it logs a given pino message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file runs from dist/scripts/). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The built CLI. */
export const CUTTER = `${ROOT}dist/cli/main.js`;

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `cutter ARGS…` and resolves with the child once its stdout carries a pino line with
 * `"msg":"<ready>"`. Its stderr goes to ours.
 * @throws when the process exits first (with the tail of its output).
 */
export function startDaemon(args: string[], ready: string, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CUTTER, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (c: Buffer) => {
      out = (out + c.toString()).slice(-20_000);
      if (out.includes(`"msg":"${ready}"`)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.off('exit', onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`cutter ${args[0]} exited with ${code}:\n${out.slice(-2000)}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Starts an insecure bench server (embedded broker) on a free loopback port with a fresh data dir
 * and the submission and broker rate limits lifted, and resolves once `ready` is logged.
 * @returns the child (also pushed to `children` when given) and its broker URL.
 * @throws as startDaemon.
 */
export async function startBenchServer(
  opts: { ready?: string; children?: ChildProcess[] } = {},
): Promise<{ child: ChildProcess; broker: string }> {
  const port = await freePort();
  const child = await startDaemon(
    [
      'server',
      '--insecure',
      '--submits-per-minute',
      '1000000',
      '--broker-requests-per-minute',
      '100000000',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      mkdtempSync(join(tmpdir(), 'cutter-bench-')),
    ],
    opts.ready ?? 'broker listening',
  );
  opts.children?.push(child);
  return { child, broker: `mqtt://127.0.0.1:${port}` };
}
