/**
 * A throwaway Mosquitto (Debian's `mosquitto`, 2.x) on a loopback port, for the end-to-end tests
 * run against an external broker (`CUTTER_TEST_BROKER=mosquitto`) and for the benchmarks.
 *
 * The generated config (mosquitto.conf(5)):
 *  - `listener PORT 127.0.0.1` and `allow_anonymous true`: Mosquitto 2 refuses anonymous clients
 *    on a listener unless told (tokens are the embedded broker's feature, not Mosquitto's);
 *  - `persistence false`: sessions and retained messages live as long as the process, like Aedes'
 *    in-memory persistence;
 *  - `max_queued_messages 0` (no limit; default 1000) and `max_inflight_messages 0`: a
 *    persistent session (the controller's, an agent's) may have thousands of QoS 1 messages queued
 *    in the flood tests, and Mosquitto would otherwise drop the excess silently;
 *  - `set_tcp_nodelay true`: small request/reply messages do not wait for Nagle's algorithm.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether a `mosquitto` binary is on the PATH. */
export function haveMosquitto(): boolean {
  return spawnSync('sh', ['-c', 'command -v mosquitto'], { stdio: 'ignore' }).status === 0;
}

export interface RunningMosquitto {
  child: ChildProcess;
  port: number;
  url: string;
  /** Everything Mosquitto wrote (its log goes to stderr). */
  output(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${output().slice(-2000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms: ${output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts `mosquitto -c <generated config>` on 127.0.0.1:`port` (or `host`) and waits until it listens.
 * @throws when mosquitto exits or does not listen within 10 s (with its output).
 */
export async function startMosquitto(port: number, opts: { host?: string; extraConfig?: string[] } = {}): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'cutter-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} ${opts.host ?? '127.0.0.1'}`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 0',
      'max_inflight_messages 0',
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  child.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  const output = () => out;
  await waitForPort(port, child, output);
  const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    child,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
