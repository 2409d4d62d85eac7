/**
 * Helpers of the reader-credit tests (output-credit.test.ts): a deliberately slow reader of
 * `cutter run`'s stdout, the CLI piped straight into it (its stdout is the reader's stdin pipe, as
 * in `cutter run … | reader`), a sniffer that counts the log bytes the agent has published, and
 * peak-RSS sampling from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { logSize } from '../../shared/log-data.js';
import { decodeTaskEvent } from '../../shared/log-frame.js';
import { topics } from '../../shared/topics.js';
import { CUTTER, ISOLATED_ENV } from '../harness.js';

/** RSS of a process now, bytes (from /proc; 0 when it cannot be read). */
export function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples the peak RSS of some processes every 100 ms until `stop()`. */
export function peakRss(pids: Record<string, () => number | undefined>): { stop: () => Record<string, number> } {
  const peak: Record<string, number> = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
  const timer = setInterval(() => {
    for (const [k, pid] of Object.entries(pids)) {
      const p = pid();
      if (p) peak[k] = Math.max(peak[k], rss(p));
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

/**
 * The reader: reads its stdin slowly (a pause of 20 ms after every chunk) up to `slowBytes`, then
 * stops reading at `pauseAt` bytes (says `PAUSED n` on stderr) until the file `go` exists (says
 * `RESUMED n`), then reads as fast as it can; at EOF prints `{"bytes","sha256"}` on stdout.
 */
const READER = `
const { createHash } = require('node:crypto');
const { existsSync } = require('node:fs');
const [go, slowBytes, pauseAt] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const h = createHash('sha256');
let n = 0;
let paused = false;
process.stdin.on('data', (c) => {
  h.update(c);
  n += c.length;
  if (!paused && n >= pauseAt) {
    paused = true;
    process.stdin.pause();
    process.stderr.write('PAUSED ' + n + '\\n');
    const t = setInterval(() => {
      if (!existsSync(go)) return;
      clearInterval(t);
      process.stderr.write('RESUMED ' + n + '\\n');
      process.stdin.resume();
    }, 50);
  } else if (n < slowBytes) {
    process.stdin.pause();
    setTimeout(() => process.stdin.resume(), 20);
  }
});
process.stdin.on('end', () => process.stdout.write(JSON.stringify({ bytes: n, sha256: h.digest('hex') })));
`;

/** A running `cutter run … | reader`. */
export interface Piped {
  cli: ChildProcess;
  reader: ChildProcess;
  /** The CLI's stderr so far. */
  cliStderr: () => string;
  /** Resolves with the reader's `PAUSED n` count. */
  paused: Promise<number>;
  /** Lets the reader go on (creates its `go` file). */
  resume: () => void;
  /** Resolves when both have exited: the CLI's code and the reader's result (null when it printed none). */
  done: Promise<{ code: number | null; got: { bytes: number; sha256: string } | null }>;
}

/** Starts `cutter ARGS` with its stdout piped into the slow reader (see READER). */
export function pipeToSlowReader(dir: string, args: string[], broker: string, slowBytes: number, pauseAt: number): Piped {
  const script = join(dir, 'slow-reader.cjs');
  const go = join(dir, 'go');
  writeFileSync(script, READER);
  const reader = spawn(process.execPath, [script, go, String(slowBytes), String(pauseAt)], { stdio: ['pipe', 'pipe', 'pipe'] });
  // The CLI writes into the reader's stdin pipe itself (the fd is duplicated into it), not through this process.
  const cli = spawn(process.execPath, [CUTTER, ...args], {
    env: { ...ISOLATED_ENV, CUTTER_BROKER: broker },
    stdio: ['ignore', reader.stdin!, 'pipe'],
  });
  reader.stdin!.destroy();
  let out = '';
  let readerErr = '';
  let cliErr = '';
  reader.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  cli.stderr!.on('data', (c: Buffer) => (cliErr += c.toString('latin1')));
  const paused = new Promise<number>((resolve) =>
    reader.stderr!.on('data', (c: Buffer) => {
      readerErr += c.toString();
      const m = /PAUSED (\d+)/.exec(readerErr);
      if (m) resolve(Number(m[1]));
    }),
  );
  const exited = (p: ChildProcess) => new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('close', r)));
  const done = Promise.all([exited(cli), exited(reader)]).then(([code]) => ({ code, got: out ? JSON.parse(out) : null }));
  return { cli, reader, cliStderr: () => cliErr, paused, resume: () => writeFileSync(go, ''), done };
}

/**
 * Counts the log bytes the agent has published for tasks on `node`'s events (an MQTT subscriber of
 * its own, reading as fast as they come).
 */
export async function logSniffer(url: string): Promise<{ published: () => number; close: () => Promise<void> }> {
  const t = topics();
  const client = await mqtt.connectAsync(url, { clientId: `credit-sniffer-${process.pid}`, reconnectPeriod: 0 });
  let bytes = 0;
  client.on('message', (_topic, payload) => {
    const d = decodeTaskEvent(payload); // output comes as binary frames (shared/log-frame.ts)
    if (d.ok && d.value.type === 'log') bytes += logSize(d.value);
  });
  await client.subscribeAsync(t.allTaskEvents(), { qos: 0 });
  return { published: () => bytes, close: () => client.endAsync() };
}
