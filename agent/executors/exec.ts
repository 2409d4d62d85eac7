/**
 * The `exec` executor: runs an argv on the node without a shell, in its own process group so a
 * cancel reaches every process it started. Only enabled on agents started with --allow-exec
 * (like Nomad's raw_exec driver, off unless its config says `enabled`).
 *
 * Contained like a container where the node can (agent/executors/cgroup-find.ts): each task gets
 * a cgroup of its own, with the memory and CPU limits it asks for (`memoryLimit`, `cpus`), joined
 * before its command runs; an OOM kill in it is reported like Docker's (`oomKilled`). A task that
 * asks for a limit the node cannot enforce is refused, never run unlimited. When the task's first
 * process exits, what it left behind in its group and cgroup is killed, as Docker does when a
 * container's main process exits. `user` runs it as another user (root agents only).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { ExecSpec } from '../../shared/schemas/index.js';
import { forwardOutput } from '../output-window.js';
import { execViolation } from '../policy.js';
import { findLimitSupport, type LimitSupport } from './cgroup-find.js';
import { checkPty, ptyInstalled, runInPty } from './exec-pty.js';
import { type ExecLimits, removeStaleCgroups, TaskCgroup, taskCgroupName, unenforceable } from './exec-limits.js';
import { type ExecUser, resolveExecUser } from './exec-user.js';
import type { Admission, Executor, ExecutorContext, Fingerprint, Outcome, TaskHandle } from './executor.js';
import { resolveCommand } from './resolve-command.js';

/** Agent environment variables a job inherits; everything else (tokens, …) stays with the agent. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

/**
 * Runs the task's argv once the agent has moved it into its cgroup: waits for a line on fd 3,
 * closes fd 3 and execs `"$@"` in the same process (so the pid, the group and the cgroup stay the
 * command's). A closed fd 3 without the line (the agent died) runs nothing: exit 125.
 */
const HOLD_UNTIL_JOINED = 'read -r go <&3 || exit 125; exec "$@" 3<&-';

/**
 * How long output is still read after the task's first process exited when it has no cgroup, ms
 * (what is in the pipes arrives at once; a setsid'd process may hold them open for ever).
 */
const STREAMS_AFTER_EXIT_MS = 2_000;

/** What the node's owner allows (agent config `allowExec`, `execAllowlist`). */
export interface ExecOptions {
  /** Exec tasks run here at all (--allow-exec). Off: the fingerprint says `disabled`. */
  enabled: boolean;
  /** Commands exec tasks may run (argv[0], exact path or bare name); empty = any. */
  allowlist: string[];
  /** What the node can enforce; found on first use when absent (a test may give another). */
  limitSupport?: LimitSupport;
}

/**
 * Runs exec tasks as child processes of the agent.
 *
 * No `recover()`: an exec task cannot be re-adopted after an agent restart. Its stdout/stderr are
 * pipes to the agent process and die with it, and nothing outside the agent records which process
 * group belongs to which (task, attempt). Its process group is detached, so a job whose agent was
 * SIGKILLed may run on (and get SIGPIPE on its next write); it is left alone, and the controller
 * counts the attempt lost when the restarted agent does not list it as running.
 */
export class ExecExecutor implements Executor<ExecSpec> {
  readonly kind = 'exec' as const;
  private support: LimitSupport | undefined;

  /** @param options what the node's owner allows; default: enabled, any command. */
  constructor(readonly options: ExecOptions = { enabled: true, allowlist: [] }) {
    this.support = options.limitSupport;
  }

  /**
   * What this node can enforce for exec tasks (found once: it also makes the `cutter` cgroup
   * directories and removes the empty ones agents that are gone left there).
   */
  limits(): LimitSupport {
    if (!this.support) {
      this.support = findLimitSupport();
      removeStaleCgroups(this.support);
    }
    return this.support;
  }

  /** Available when enabled; adds the limits it can enforce to the node's capacity (`exec`), so tasks asking for others go elsewhere. */
  async fingerprint(): Promise<Fingerprint> {
    if (!this.options.enabled)
      return { available: false, disabled: true, error: 'this node does not run exec tasks (start its agent with --allow-exec)' };
    const s = this.limits();
    const exec = { limits: { memory: s.memory, cpus: s.cpus }, ...(s.via ? { via: s.via } : {}), ...(s.why ? { why: s.why } : {}) };
    // `tty`: it can run `-t` tasks in a pseudo-terminal (node-pty looked up, not loaded).
    return { available: true, capacity: { exec: { ...exec, tty: ptyInstalled() } } };
  }

  /** Refuses a command outside the allowlist (POLICY_DENIED). */
  admit(spec: ExecSpec): Admission<ExecSpec> {
    const denied = execViolation(spec.argv[0], this.options.allowlist);
    return denied ? { denied } : { spec };
  }

  /**
   * Starts the task. `done` rejects (nothing ran) with EXECUTOR_UNAVAILABLE when the task asks
   * for a limit this node cannot enforce, START_FAILED (bad cwd or user, a cgroup the kernel
   * refused), COMMAND_NOT_FOUND / COMMAND_NOT_INVOKABLE. With `tty` it runs in a pseudo-terminal
   * (./exec-pty.ts; EXECUTOR_UNAVAILABLE where the node cannot give it one).
   */
  start(spec: ExecSpec, ctx: ExecutorContext): TaskHandle {
    let prepared: { env: Record<string, string>; user?: ExecUser; cgroup?: TaskCgroup } | undefined;
    try {
      prepared = this.prepare(spec, ctx);
      if (spec.tty) return runInPty(spec, ctx, prepared, checkPty(spec, prepared.user));
      return run(spec, ctx, prepared);
    } catch (err) {
      // prepare()'s refusals, or spawn() throwing on an argument it cannot pass (a NUL byte).
      void prepared?.cgroup?.remove();
      const done = Promise.reject(err instanceof CutterError ? err : new CutterError('START_FAILED', errorMessage(err)));
      done.catch(() => undefined); // the agent awaits it a little later
      return { done, stop: async () => undefined };
    }
  }

  /**
   * Everything checked and made before spawning: the environment, the user, the cgroup.
   * @throws CutterError as start()'s `done` rejects.
   */
  private prepare(spec: ExecSpec, ctx: ExecutorContext): { env: Record<string, string>; user?: ExecUser; cgroup?: TaskCgroup } {
    const limits: ExecLimits = { ...(spec.memoryLimit ? { memory: spec.memoryLimit } : {}), ...(spec.cpus ? { cpus: spec.cpus } : {}) };
    const support = this.limits();
    const refused = unenforceable(support, limits, ctx.node);
    if (refused) throw new CutterError('EXECUTOR_UNAVAILABLE', refused);
    const user = spec.user !== undefined ? resolveExecUser(spec.user) : undefined;
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    if (user?.name) env.USER = user.name;
    if (user?.home) env.HOME = user.home;
    Object.assign(env, spec.env);
    Object.assign(env, cudaEnv(ctx.gpus));
    // Told apart before spawning: spawn's ENOENT also means a missing cwd, and a command that
    // cannot run is the user's to fix (126/127), not cutter's (125).
    const unrunnable = cannotRun(spec, env.PATH);
    if (unrunnable) throw unrunnable;
    // Every task gets a cgroup where the node has them (kill-all backstop, OOM report); only a
    // task that asked for limits fails without one.
    let cgroup: TaskCgroup | undefined;
    if (support.base) {
      try {
        cgroup = TaskCgroup.create(support, taskCgroupName(ctx.taskId, ctx.attempt), limits);
      } catch (err) {
        if (limits.memory || limits.cpus) throw err;
      }
    }
    return { env, ...(user ? { user } : {}), ...(cgroup ? { cgroup } : {}) };
  }
}

/**
 * The environment that gives a job exactly its GPUs (NVIDIA CUDA docs, "Environment Variables"):
 * `CUDA_VISIBLE_DEVICES` lists their UUIDs (UUIDs, unlike indices, mean the same GPU whatever the
 * enumeration order), `CUDA_DEVICE_ORDER=PCI_BUS_ID` makes any index the job uses match
 * nvidia-smi's. Set after the task's own env: the reservation wins. Nothing for a job without GPUs.
 */
export function cudaEnv(gpus: readonly string[] | undefined): Record<string, string> {
  if (!gpus?.length) return {};
  return { CUDA_VISIBLE_DEVICES: gpus.join(','), CUDA_DEVICE_ORDER: 'PCI_BUS_ID' };
}

/** Spawns the prepared task and supervises it to its end. */
function run(spec: ExecSpec, ctx: ExecutorContext, p: { env: Record<string, string>; user?: ExecUser; cgroup?: TaskCgroup }): TaskHandle {
  const { cgroup } = p;
  const startedAt = Date.now();
  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  const options = { cwd: spec.cwd, env: p.env, detached: true, ...(p.user ? { uid: p.user.uid, gid: p.user.gid } : {}) };
  // -i: a stdin pipe the agent feeds from the submitter's frames (agent/stdin.ts); else /dev/null.
  const stdin = spec.stdin ? 'pipe' : 'ignore';
  const child: ChildProcess = cgroup
    ? spawn('/bin/sh', ['-c', HOLD_UNTIL_JOINED, 'sh', ...spec.argv], { ...options, stdio: [stdin, 'pipe', 'pipe', 'pipe'] })
    : spawn(spec.argv[0], spec.argv.slice(1), { ...options, stdio: [stdin, 'pipe', 'pipe'] });
  if (spec.stdin && child.stdin) ctx.stdin?.(child.stdin);
  // When the mesh is behind, the pipes are not read: the task blocks on its own writes (agent/output-window.ts).
  for (const [name, readable] of [
    ['stdout', child.stdout!],
    ['stderr', child.stderr!],
  ] as const) {
    readable.on('data', (c: Buffer) => forwardOutput(ctx, readable, name, c));
  }

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // the group is gone already
    }
  };
  const killAll = () => {
    signalGroup('SIGKILL');
    cgroup?.killAll();
  };

  const done = new Promise<Outcome>((resolve, reject) => {
    let failed: CutterError | undefined;
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(killTimer);
      void cgroup?.remove();
      // Checked before spawning; these are left for a file changed in between.
      if (err.code === 'ENOENT') reject(new CutterError('COMMAND_NOT_FOUND', `exec: "${spec.argv[0]}": ${err.message}`));
      else if (err.code === 'EACCES' || err.code === 'EISDIR')
        reject(new CutterError('COMMAND_NOT_INVOKABLE', `exec: "${spec.argv[0]}": ${err.message}`));
      else reject(new CutterError('START_FAILED', err.message));
    });
    child.once('spawn', () => {
      if (cgroup) {
        const go = child.stdio[3] as Writable;
        go.on('error', () => undefined); // the wrapper died first: said by its exit
        try {
          cgroup.join(child.pid!);
        } catch (err) {
          // Not run outside its cgroup: the wrapper reads EOF and exits 125 without exec'ing.
          failed = err instanceof CutterError ? err : new CutterError('START_FAILED', errorMessage(err));
          go.end();
          return;
        }
        go.end('\n');
      }
      ctx.started(String(child.pid));
    });
    // The first process has exited: what it left running goes too, as with a container; and
    // without a cgroup, a process out of reach (setsid) that still holds stdout does not keep the
    // task open: the pipes are closed once they are no longer paused for the mesh to catch up.
    const closeStreamsSoon = (): void => {
      setTimeout(() => {
        if (child.stdout?.isPaused() || child.stderr?.isPaused()) return closeStreamsSoon();
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, STREAMS_AFTER_EXIT_MS).unref();
    };
    child.once('exit', () => {
      killAll();
      if (!cgroup) closeStreamsSoon();
    });
    child.once('close', (code, signal) => {
      clearTimeout(killTimer);
      const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
      const oomKilled = (cgroup?.oomKills() ?? 0) > 0;
      const finish = () => {
        if (failed) reject(failed);
        else resolve({ exitCode, oomKilled, cancelled, startedAt, finishedAt: Date.now() });
      };
      if (cgroup) void cgroup.remove().then(finish);
      else finish();
    });
  });

  return {
    done,
    async stop(graceMs: number) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      cancelled = true;
      signalGroup('SIGTERM');
      clearTimeout(killTimer);
      killTimer = setTimeout(killAll, graceMs);
    },
  };
}

/**
 * Why the task cannot be started, or undefined: its cwd is not a directory (START_FAILED), its
 * command is not found on `pathVar` (COMMAND_NOT_FOUND) or cannot be invoked (COMMAND_NOT_INVOKABLE).
 */
function cannotRun(spec: ExecSpec, pathVar: string | undefined): CutterError | undefined {
  if (spec.cwd !== undefined) {
    let dir = false;
    try {
      dir = statSync(spec.cwd).isDirectory();
    } catch {
      // missing: said below
    }
    if (!dir) return new CutterError('START_FAILED', `working directory ${spec.cwd} is not a directory on this node`);
  }
  const r = resolveCommand(spec.argv[0], pathVar, spec.cwd);
  return r.ok ? undefined : new CutterError(r.code, r.message);
}
