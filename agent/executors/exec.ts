/**
 * The `exec` executor: runs an argv on the node without a shell, in its own process group so a
 * cancel reaches every process it started. Only enabled on agents started with --allow-exec.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { CutterError } from '../../shared/errors.js';
import type { ExecSpec } from '../../shared/schemas/index.js';
import type { Executor, ExecutorContext, ExecutorProbe, Outcome, TaskHandle } from './executor.js';

/** Agent environment variables a job inherits; everything else (tokens, …) stays with the agent. */
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

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

  async probe(): Promise<ExecutorProbe> {
    return { available: true, version: process.version };
  }

  start(spec: ExecSpec, ctx: ExecutorContext): TaskHandle {
    const env: Record<string, string> = {};
    for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    Object.assign(env, spec.env);

    const startedAt = Date.now();
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn(spec.argv[0], spec.argv.slice(1), { cwd: spec.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
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
        const why =
          err.code === 'ENOENT'
            ? `command not found: ${spec.argv[0]}`
            : err.code === 'EACCES'
              ? `permission denied: ${spec.argv[0]}`
              : err.message;
        reject(new CutterError('START_FAILED', why));
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
