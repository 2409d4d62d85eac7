/**
 * The `exec` executor: runs an argv on the node without a shell, in its own process group so a
 * cancel reaches every process it started. Only enabled on agents started with --allow-exec
 * (like Nomad's raw_exec driver, off unless its config says `enabled`).
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { CutterError } from '../../shared/errors.js';
import type { ExecSpec } from '../../shared/schemas/index.js';
import { execViolation } from '../policy.js';
import type { Admission, Executor, ExecutorContext, Fingerprint, Outcome, TaskHandle } from './executor.js';
import { resolveCommand } from './resolve-command.js';

/** Agent environment variables a job inherits; everything else (tokens, …) stays with the agent. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

/** What the node's owner allows (agent config `allowExec`, `execAllowlist`). */
export interface ExecOptions {
  /** Exec tasks run here at all (--allow-exec). Off: the fingerprint says `disabled`. */
  enabled: boolean;
  /** Commands exec tasks may run (argv[0], exact path or bare name); empty = any. */
  allowlist: string[];
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

  /** @param options what the node's owner allows; default: enabled, any command. */
  constructor(readonly options: ExecOptions = { enabled: true, allowlist: [] }) {}

  /** Available when enabled; adds nothing to the node's capacity. */
  async fingerprint(): Promise<Fingerprint> {
    if (!this.options.enabled)
      return { available: false, disabled: true, error: 'this node does not run exec tasks (start its agent with --allow-exec)' };
    return { available: true };
  }

  /** Refuses a command outside the allowlist (POLICY_DENIED). */
  admit(spec: ExecSpec): Admission<ExecSpec> {
    const denied = execViolation(spec.argv[0], this.options.allowlist);
    return denied ? { denied } : { spec };
  }

  start(spec: ExecSpec, ctx: ExecutorContext): TaskHandle {
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    Object.assign(env, spec.env);
    // Told apart before spawning: spawn's ENOENT also means a missing cwd, and a command that
    // cannot run is the user's to fix (126/127), not cutter's (125).
    const unrunnable = cannotRun(spec, env.PATH);
    if (unrunnable) {
      const done = Promise.reject(unrunnable);
      done.catch(() => undefined); // the agent awaits it a little later
      return { done, stop: async () => undefined };
    }

    const startedAt = Date.now();
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd: spec.cwd,
      env,
      detached: true,
      stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
    // -i: the agent feeds the pipe from the submitter's frames (agent/stdin.ts), before `started`.
    if (spec.stdin && child.stdin) ctx.stdin?.(child.stdin);
    child.stdout.on('data', (c: Buffer) => ctx.output('stdout', c));
    child.stderr.on('data', (c: Buffer) => ctx.output('stderr', c));

    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // the group is gone already
      }
    };

    const done = new Promise<Outcome>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(killTimer);
        // Checked before spawning; these are left for a file changed in between.
        if (err.code === 'ENOENT') reject(new CutterError('COMMAND_NOT_FOUND', `exec: "${spec.argv[0]}": ${err.message}`));
        else if (err.code === 'EACCES' || err.code === 'EISDIR')
          reject(new CutterError('COMMAND_NOT_INVOKABLE', `exec: "${spec.argv[0]}": ${err.message}`));
        else reject(new CutterError('START_FAILED', err.message));
      });
      child.once('spawn', () => ctx.started(String(child.pid)));
      child.once('close', (code, signal) => {
        clearTimeout(killTimer);
        const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
        resolve({ exitCode, oomKilled: false, cancelled, startedAt, finishedAt: Date.now() });
      });
    });

    return {
      done,
      async stop(graceMs: number) {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
        cancelled = true;
        signalGroup('SIGTERM');
        clearTimeout(killTimer);
        killTimer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      },
    };
  }
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
