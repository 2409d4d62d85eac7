/**
 * Exec tasks with a TTY (`cutter run -t exec -- …`, `ExecSpec.tty`): the command runs in a
 * pseudo-terminal from node-pty (Microsoft's, the pty behind VS Code's terminal; loaded on the
 * first such task only), like `ssh -t host cmd` or `docker run -t`:
 * - the terminal starts at the client's window size (`tty.rows`/`tty.cols`, 80x24 when 0) and
 *   follows its resizes (stdin window-size frames → `resize`); `TERM` is the task's, else `xterm`
 *   (what Docker sets for a `Tty` container);
 * - output is one stream of raw bytes (stderr merged into stdout, the pty's own CRLF line ends),
 *   read as Buffers (node-pty `encoding: null`: no UTF-8 decoding that could split a character)
 *   to its last byte (the agent holds the slave side open, see holdSlave); it honours the output
 *   window (agent/output-window.ts) by pausing the pty's reads;
 * - stdin frames (`-i`) are written to the terminal with backpressure (the agent acknowledges only
 *   what the kernel took); EOF is the terminal's EOF character, ^D, as ssh -t sends it;
 * - the first process is the session leader: a cancel sends SIGTERM to every process of its
 *   session (job control puts a shell's jobs in groups of their own), SIGKILL after the grace; when
 *   it exits, what is left of its session and cgroup is killed, as for a plain exec task;
 * - `-e`, `-w`, memory and CPU limits as exec.ts does them: its cgroup is joined before the
 *   command runs (a shell waits on a FIFO until the agent has moved it there, the pty has no spare
 *   fd to wait on); `-u` switches users with util-linux's `setpriv --clear-groups` inside the
 *   terminal (node-pty's own uid/gid would keep the agent's supplementary groups), so a node
 *   without setpriv refuses `-t` with `-u` instead of running the task with root's groups.
 */
import { execFile } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import type * as NodePty from 'node-pty';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { ExecSpec } from '../../shared/schemas/index.js';
import { forwardOutput } from '../output-window.js';
import type { TaskCgroup } from './exec-limits.js';
import type { ExecUser } from './exec-user.js';
import type { ExecutorContext, Outcome, TaskHandle } from './executor.js';
import { running, signalSession } from './pty-session.js';
import { resolveCommand } from './resolve-command.js';

/** What exec.ts made ready before spawning (environment, user, cgroup). */
export interface PreparedExec {
  env: Record<string, string>;
  user?: ExecUser;
  cgroup?: TaskCgroup;
}

/** The window size a pty starts at when the client sent none (rows, columns), as a terminal's default. */
export const DEFAULT_TTY = { rows: 24, cols: 80 };

/** Waits for the agent's line on the FIFO `$0` (the task is in its cgroup then), then execs `"$@"`. */
const HOLD_ON_FIFO = 'read -r go < "$0" || exit 125; exec "$@"';

/**
 * While the output is paused, how often the agent checks that the first process still runs, ms:
 * node-pty drops what is unread 200 ms after it exits, so reading resumes when it is gone (what is
 * left is bounded by the kernel's pty buffer).
 */
const EXIT_WATCH_MS = 40;

/** Retry delay for stdin bytes the terminal could not take yet (EAGAIN), ms. */
const STDIN_RETRY_MS = 10;

/** The terminal's EOF character (VEOF, ^D), written at the end of stdin. */
const EOF_CHAR = Buffer.from([0x04]);

/** UnixTerminal's members the typings leave out: its master fd, its slave's path, and 'close' (the fd is closed then). */
type UnixPty = NodePty.IPty & { readonly fd?: number; readonly ptsName?: string; on?(event: 'close', listener: () => void): void };

let loaded: typeof NodePty | Error | undefined;

/**
 * node-pty, loaded on first use so agents that run no `-t` exec task never load its native module.
 * @throws CutterError EXECUTOR_UNAVAILABLE when it does not load here.
 */
function nodePty(): typeof NodePty {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('node-pty') as typeof NodePty;
    } catch (err) {
      loaded = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (loaded instanceof Error)
    throw new CutterError(
      'EXECUTOR_UNAVAILABLE',
      `this node cannot give exec tasks a TTY (node-pty did not load: ${loaded.message}); drop -t, or run it as a docker task`,
    );
  return loaded;
}

let installed: boolean | undefined;

/**
 * Whether node-pty and its native module are installed with this agent (for its fingerprint:
 * only looked up, not loaded; the paths its loader tries, node-pty lib/utils.js).
 */
export function ptyInstalled(): boolean {
  if (installed === undefined) {
    try {
      const root = join(dirname(createRequire(import.meta.url).resolve('node-pty')), '..');
      const dirs = ['build/Release', 'build/Debug', `prebuilds/${process.platform}-${process.arch}`];
      installed = dirs.some((d) => existsSync(join(root, d, 'pty.node')));
    } catch {
      installed = false;
    }
  }
  return installed;
}

/**
 * Checks what a `-t` exec task needs beyond a plain one: node-pty, and setpriv when it switches users.
 * @returns setpriv's path when the task runs as another user than the agent.
 * @throws CutterError EXECUTOR_UNAVAILABLE naming what is missing and what to do.
 */
export function checkPty(spec: ExecSpec, user: ExecUser | undefined): string | undefined {
  nodePty();
  if (!user || (user.uid === process.getuid?.() && user.gid === process.getgid?.())) return undefined;
  const r = resolveCommand('setpriv', process.env.PATH);
  if (!r.ok)
    throw new CutterError(
      'EXECUTOR_UNAVAILABLE',
      `-t with -u ${spec.user}: this node has no setpriv (util-linux) to switch users inside the TTY; install util-linux there, or drop -t or -u`,
    );
  return r.path;
}

/**
 * Starts the prepared task in a pty. `done` rejects START_FAILED when the FIFO, the pty or the
 * cgroup cannot be had, CANCELLED when stopped before the command ran; otherwise it resolves with
 * the exit code (128+n for a signal n).
 * @param setpriv checkPty()'s result.
 */
export function runInPty(spec: ExecSpec, ctx: ExecutorContext, p: PreparedExec, setpriv: string | undefined): TaskHandle {
  let stopRequested = false;
  let live: TaskHandle | undefined;
  const done = (async () => {
    const hold = p.cgroup ? await makeFifo() : undefined;
    if (stopRequested) {
      hold?.close();
      throw new CutterError('CANCELLED', 'cancelled before the command started');
    }
    live = supervise(spec, ctx, p, setpriv, hold);
    return live.done;
  })();
  done.catch(() => {
    void p.cgroup?.remove();
  });
  return {
    done,
    async stop(graceMs) {
      stopRequested = true;
      await live?.stop(graceMs);
    },
  };
}

/** A FIFO the wrapper waits on: `go()` lets it run, `close()` removes it. */
interface Hold {
  path: string;
  go(): void;
  close(): void;
}

/** Makes the FIFO in a private directory. @throws CutterError START_FAILED. */
async function makeFifo(): Promise<Hold> {
  const dir = mkdtempSync(join(tmpdir(), 'cutter-pty-'));
  const path = join(dir, 'go');
  try {
    await new Promise<void>((resolve, reject) => execFile('mkfifo', ['-m', '600', path], (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new CutterError('START_FAILED', `cannot make a FIFO for the task's start (mkfifo: ${errorMessage(err)})`);
  }
  let fd: number | undefined;
  return {
    path,
    // Read-write and non-blocking: opening does not wait for the reader, and the line stays in the
    // pipe while this end is open (until the task ends).
    go() {
      fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
      writeSync(fd, '\n');
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The file and arguments node-pty runs: the command, behind setpriv (-u) and the FIFO wait (cgroup). */
function commandLine(spec: ExecSpec, p: PreparedExec, setpriv: string | undefined, fifo: string | undefined): [string, string[]] {
  let argv = spec.argv;
  if (setpriv && p.user) argv = [setpriv, `--reuid=${p.user.uid}`, `--regid=${p.user.gid}`, '--clear-groups', '--', ...argv];
  if (fifo) return ['/bin/sh', ['-c', HOLD_ON_FIFO, fifo, ...argv]];
  return [argv[0], argv.slice(1)];
}

function supervise(spec: ExecSpec, ctx: ExecutorContext, p: PreparedExec, setpriv: string | undefined, hold: Hold | undefined): TaskHandle {
  const { cgroup } = p;
  const startedAt = Date.now();
  const [file, args] = commandLine(spec, p, setpriv, hold?.path);
  let term: UnixPty;
  try {
    term = nodePty().spawn(file, args, {
      name: spec.env.TERM ?? 'xterm',
      rows: spec.tty?.rows || DEFAULT_TTY.rows,
      cols: spec.tty?.cols || DEFAULT_TTY.cols,
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      env: p.env,
      encoding: null,
    }) as UnixPty;
  } catch (err) {
    hold?.close();
    throw new CutterError('START_FAILED', `cannot open a pseudo-terminal: ${errorMessage(err)}`);
  }
  const pid = term.pid;
  const slave = holdSlave(term);
  let closed = false; // the master fd is closed: nothing more is written to it
  let exited = false;
  let cancelled = false;
  let failed: CutterError | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  term.on?.('close', () => {
    closed = true;
  });
  const killAll = () => {
    signalSession(pid, 'SIGKILL');
    cgroup?.killAll();
  };

  // Output: paused while the mesh is behind, except once the first process is gone.
  let paused = false;
  let watch: NodeJS.Timeout | undefined;
  const source = {
    isPaused: () => paused,
    pause() {
      if (exited || paused) return;
      paused = true;
      term.pause();
      watch = setInterval(() => {
        if (!running(pid)) {
          exited = true;
          source.resume();
        }
      }, EXIT_WATCH_MS);
    },
    resume() {
      clearInterval(watch);
      if (!paused) return;
      paused = false;
      term.resume();
    },
  };
  term.onData((data) => forwardOutput(ctx, source, 'stdout', data as unknown as Buffer));

  const done = new Promise<Outcome>((resolve, reject) => {
    term.onExit(({ exitCode, signal }) => {
      closed = true;
      exited = true;
      clearTimeout(killTimer);
      clearInterval(watch);
      killAll();
      hold?.close();
      if (slave !== undefined) closeSync(slave);
      const code = signal ? 128 + signal : exitCode;
      const oomKilled = (cgroup?.oomKills() ?? 0) > 0;
      const finish = () => (failed ? reject(failed) : resolve({ exitCode: code, oomKilled, cancelled, startedAt, finishedAt: Date.now() }));
      if (cgroup) void cgroup.remove().then(finish);
      else finish();
    });
  });

  if (cgroup && hold) {
    try {
      cgroup.join(pid);
      hold.go();
    } catch (err) {
      // Not run outside its cgroup: the wrapper still waits; it goes with its session.
      failed = err instanceof CutterError ? err : new CutterError('START_FAILED', errorMessage(err));
      killAll();
      return { done, stop: async () => undefined };
    }
  }
  if (spec.stdin) {
    const fd = term.fd;
    const input = typeof fd === 'number' ? new PtyInput(fd, () => closed) : fallbackInput(term);
    ctx.stdin?.(input, (rows, cols) => {
      if (closed || rows < 1 || cols < 1) return;
      try {
        term.resize(cols, rows);
      } catch {
        // closed meanwhile
      }
    });
  }
  ctx.started(String(pid));

  return {
    done,
    async stop(graceMs: number) {
      if (exited) return;
      cancelled = true;
      signalSession(pid, 'SIGTERM');
      clearTimeout(killTimer);
      killTimer = setTimeout(killAll, graceMs);
    },
  };
}

/**
 * The task's stdin into the pty's master fd: a write completes when the kernel took all its
 * bytes (so the agent's acks are true and a task that reads nothing holds back its client);
 * ending writes ^D. Nothing is written once `isClosed()` (the fd may be another file's by then).
 */
class PtyInput extends Writable {
  constructor(
    private readonly fd: number,
    private readonly isClosed: () => boolean,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    let rest = chunk;
    const attempt = (): void => {
      while (rest.length > 0) {
        if (this.isClosed()) {
          cb(Object.assign(new Error('the terminal is closed'), { code: 'EIO' }));
          return;
        }
        try {
          rest = rest.subarray(writeSync(this.fd, rest));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
            setTimeout(attempt, STDIN_RETRY_MS);
            return;
          }
          cb(err as Error);
          return;
        }
      }
      cb();
    };
    attempt();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this._write(EOF_CHAR, 'binary', cb);
  }
}

/** Where the fd is not exposed: node-pty's own queued writes (acknowledged at once). */
function fallbackInput(term: NodePty.IPty): Writable {
  return new Writable({
    write(chunk: Buffer, _e, cb) {
      term.write(chunk);
      cb();
    },
    final(cb) {
      term.write(EOF_CHAR);
      cb();
    },
  });
}

/**
 * Opens the terminal's slave side in the agent (never as its controlling terminal) until the task
 * ends. Without it the last close of the slave (the task's exit) is a hang-up on the master, and
 * libuv, reading a pty 4095 bytes at a time, takes the hang-up after a short read for the end of
 * the output: the last kilobytes still in the kernel were lost (12 KiB of 25 MB in a test). Held
 * open, the output is read to its end; node-pty closes its side 200 ms after the task's exit.
 * @returns the fd, or undefined when the path is not known or cannot be opened (read as before).
 */
function holdSlave(term: UnixPty): number | undefined {
  if (!term.ptsName) return undefined;
  try {
    return openSync(term.ptsName, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
}
