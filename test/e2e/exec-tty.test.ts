/**
 * `cutter run -t exec` (issue 15): an exec task in a pseudo-terminal on the node, as `ssh -t` or
 * `docker run -t` gives one. The CLI itself runs in a pseudo-terminal of the test's (node-pty, as
 * a user's terminal): `-it exec -- sh` is an interactive shell with a tty device and the client's
 * window size, a resize reaches it, a typed Ctrl-C interrupts the remote command instead of the
 * CLI, and the CLI exits with the shell's code. `-t` alone gives the same bytes a local `script`
 * run gives (256 byte values through the terminal's output processing); `-it` without a terminal
 * on stdin exits 1 as `docker run -it` does; -e, -w, -u and --memory hold under a TTY; a cancel
 * leaves nothing of the session behind. Real server, real agent (--allow-exec).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as NodePty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, cli, type Daemon, eventually, ISOLATED_ENV, startAgent, startServer } from '../harness.js';
import { needs, onPath } from '../services.js';

const pty = createRequire(import.meta.url)('node-pty') as typeof NodePty;
const cgroups = needs('cgroupLimits');
const NODE = 'tty-node';
const asRoot = process.getuid?.() === 0;

let server: Daemon;
let agent: Daemon;
let url: string;

beforeAll(async () => {
  ({ daemon: server, url } = await startServer());
  agent = await startAgent(url, NODE, ['--allow-exec']);
});
afterAll(async () => {
  await agent?.stop();
  await server?.stop();
});

/** `cutter run ARGS` inside a pseudo-terminal of `cols`x`rows`, as typed in a user's terminal. */
class Terminal {
  out = '';
  readonly exited: Promise<number>;
  private readonly term: NodePty.IPty;

  constructor(args: string[], size = { cols: 101, rows: 33 }) {
    this.term = pty.spawn(process.execPath, [CUTTER, 'run', '--node', NODE, ...args], {
      ...size,
      env: { ...ISOLATED_ENV, CUTTER_BROKER: url },
    });
    this.term.onData((d) => {
      this.out += d;
    });
    this.exited = new Promise((resolve) => this.term.onExit(({ exitCode }) => resolve(exitCode)));
  }

  get pid(): number {
    return this.term.pid;
  }

  type(keys: string): void {
    this.term.write(keys);
  }

  resize(cols: number, rows: number): void {
    this.term.resize(cols, rows);
  }

  /** Waits until the output matches `re`; the output so far when it does not in time. */
  async see(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return eventually(() => this.out.match(re) ?? undefined, timeoutMs).catch(() => {
      throw new Error(`no ${re} in the terminal's output:\n${JSON.stringify(this.out)}`);
    });
  }

  /** Ends the CLI if it still runs: SIGTERM (it cancels its task), SIGKILL when it does not exit. */
  async close(): Promise<void> {
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(this.term.pid, s);
      } catch {
        // gone
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Pids of the processes whose argv is exactly `argv` (a duration no other test uses keeps it unique). */
function pidsOf(argv: string[]): number[] {
  const want = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === want) found.push(Number(d));
    } catch {
      // gone
    }
  }
  return found;
}

/** Runs `cmd args` to its end, its stdout as bytes (stdin: /dev/null). */
function bytesOf(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(cmd, args, { env: { ...ISOLATED_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr })));
}

describe('cutter run -it exec: an interactive shell in a pty on the node', () => {
  it("has a tty device and the client's window size, follows a resize, and exits with the shell's code", async () => {
    const t = new Terminal(['-it', 'exec', '--', 'sh']);
    try {
      t.type('tty; stty size; echo $((6*7))\r');
      // (\r+: the CLI's raw mode keeps the local terminal's own \n → \r\n, as the docker -t test sees too.)
      await t.see(/\/dev\/pts\/\d+\r+\n33 101\r+\n42\r+\n/);
      // The client's window grows: SIGWINCH to the CLI, a window-size frame, the node's pty resized.
      t.resize(120, 40);
      await eventually(
        () => {
          t.type('stty size\r');
          return /\n40 120\r+\n/.test(t.out);
        },
        30_000,
        500,
      );
      t.type('exit 3\r');
      expect(await t.exited, t.out).toBe(3);
    } finally {
      await t.close();
    }
  });

  it('raw mode: a typed Ctrl-C interrupts the remote command, not the CLI', async () => {
    const t = new Terminal(['-it', 'exec', '--', 'sh']);
    const sleeper = ['sleep', String(3000 + Math.floor(Math.random() * 5000))];
    try {
      t.type(`echo S$((2+3))T; ${sleeper.join(' ')}\r`);
      await t.see(/S5T\r+\n/);
      const pids = await eventually(() => (pidsOf(sleeper).length > 0 ? pidsOf(sleeper) : undefined), 30_000);
      t.type('\x03');
      // The remote sleep got SIGINT; the shell and the CLI go on.
      await eventually(() => pidsOf(sleeper).filter((p) => pids.includes(p)).length === 0, 30_000).catch((err) => {
        throw new Error(`${err.message}; the terminal shows: ${JSON.stringify(t.out)}`);
      });
      t.type('echo I$((4+5))\r');
      await t.see(/I9\r+\n/);
      expect(t.out).not.toContain('cancelling task');
      t.type('exit\r');
      expect(await t.exited, t.out).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('a cancel (SIGTERM to the CLI) ends the whole session: the shell and a job in a group of its own', async () => {
    const t = new Terminal(['-it', 'exec', '--', 'sh']);
    const job = ['sleep', String(8000 + Math.floor(Math.random() * 5000))];
    try {
      t.type(`${job.join(' ')} &\r`);
      const [jobPid] = await eventually(() => (pidsOf(job).length > 0 ? pidsOf(job) : undefined), 30_000);
      const stat = readFileSync(`/proc/${jobPid}/stat`, 'utf8').split(') ')[1].split(' ');
      const [pgrp, session] = [Number(stat[2]), Number(stat[3])];
      expect(pgrp, 'job control gave the job its own process group').not.toBe(session);
      // The CLI's own process is the pty's session leader here (node-pty's child).
      process.kill(t.pid, 'SIGTERM');
      await t.exited;
      await eventually(() => pidsOf(job).length === 0 && !readdirSync('/proc').includes(String(session)), 30_000);
    } finally {
      await t.close();
    }
  });
});

describe('cutter run -t exec without -i', () => {
  it('gives the same bytes as a local pty (`script`) for all 256 byte values, and the exit code', async () => {
    const printf = onPath('printf') ?? '/usr/bin/printf';
    const format = Array.from({ length: 256 }, (_, b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const remote = await bytesOf(process.execPath, [CUTTER, 'run', '-t', '--node', NODE, 'exec', '--', printf, format], {
      CUTTER_BROKER: url,
    });
    expect(remote.code, remote.stderr).toBe(0);
    const local = spawnSync('script', ['-qec', `${printf} '${format}'`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    expect(local.status, local.stderr.toString()).toBe(0);
    // The pty's output processing turns \n into \r\n, the rest as written: 257 bytes.
    expect(local.stdout.length).toBe(257);
    expect(remote.stdout.equals(local.stdout), `${remote.stdout.toString('hex')}\n${local.stdout.toString('hex')}`).toBe(true);

    const tty = await cli(['run', '-t', '--node', NODE, 'exec', '--', 'sh', '-c', 'tty; stty size; exit 5'], { broker: url });
    expect(tty.code, tty.stderr).toBe(5);
    // No terminal on the client: the node's default size.
    expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r\n24 80\r\n$/);
  });

  it('to the last byte: 25 MB of lines through -t give the sha256 a local `script` run gives', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const remote = await bytesOf(process.execPath, [CUTTER, 'run', '-t', '--node', NODE, 'exec', '--', 'seq', '1', '3000000'], {
      CUTTER_BROKER: url,
    });
    expect(remote.code, remote.stderr).toBe(0);
    const local = spawnSync('script', ['-qec', 'seq 1 3000000', '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    expect(local.stdout.length).toBe(25_888_896);
    expect({ bytes: remote.stdout.length, sha256: sha(remote.stdout) }).toEqual({ bytes: local.stdout.length, sha256: sha(local.stdout) });
  });

  it('-it with a stdin that is no terminal exits 1, as docker run -it does; a missing command is 127, a signal 128+n', async () => {
    const r = await cli(['run', '-it', '--node', NODE, 'exec', '--', 'sh'], { broker: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the input device is not a TTY');
    const missing = await cli(['run', '-t', '--node', NODE, 'exec', '--', 'no-such-command-here'], { broker: url });
    expect(missing.code, missing.stderr).toBe(127);
    const signalled = await cli(['run', '-t', '--node', NODE, 'exec', '--', 'sh', '-c', 'kill -TERM $$'], { broker: url });
    expect(signalled.code, signalled.stderr).toBe(128 + 15);
  });

  it.skipIf(!asRoot)('-e, -w and -u hold under a TTY (-u: the user and only its own groups)', async () => {
    // id by its path: the PATH the agent passes on may start with a directory only root can enter
    // (the fresh-machine test's does), and nobody then finds no `id` (127).
    const script = 'echo "$GREETING"; pwd; /usr/bin/id -u; /usr/bin/id -G';
    const r = await cli(
      ['run', '-t', '--node', NODE, 'exec', '-e', 'GREETING=hello', '-w', '/tmp', '-u', 'nobody', '--', '/bin/sh', '-c', script],
      { broker: url },
    );
    expect(r.code, r.stderr).toBe(0);
    const nobody = spawnSync('id', ['-u', 'nobody']).stdout.toString().trim();
    const group = spawnSync('id', ['-g', 'nobody']).stdout.toString().trim();
    expect(r.stdout).toBe(`hello\r\n/tmp\r\n${nobody}\r\n${group}\r\n`);
  });

  it.skipIf(cgroups.skip)(`--memory holds under a TTY: over it, killed with 137${cgroups.tag}`, async () => {
    const alloc = ['awk', 'BEGIN { s = "x"; while (length(s) < 100000000) s = s s; print length(s) }'];
    const over = await cli(['run', '-t', '--node', NODE, '--memory', '64m', 'exec', '--', ...alloc], { broker: url, timeoutMs: 60_000 });
    expect(over.code, over.stderr).toBe(137);
    const fits = await cli(['run', '-t', '--node', NODE, 'exec', '--', ...alloc], { broker: url, timeoutMs: 60_000 });
    expect(fits.code, fits.stderr).toBe(0);
    expect(fits.stdout).toBe('134217728\r\n');
  });
});
