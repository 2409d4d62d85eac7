/**
 * How the `cutter` process ends, like `docker run` (docs.docker.com/engine/containers/run/#exit-status):
 * - 125: cutter could not run the task (not placed, not started, lost, an error of cutter's own);
 * - 126: the task's command cannot be invoked (COMMAND_NOT_INVOKABLE);
 * - 127: the task's command was not found (COMMAND_NOT_FOUND);
 * - 137: the task was killed (OOM or SIGKILL) without an exit code of its own;
 * - 141: the output went away (EPIPE: `cutter run … | head -1`), like a shell's SIGPIPE'd job;
 * - 128+n: the CLI was stopped by signal n before the task reported an exit code;
 * - otherwise the task's own exit code.
 * No stack trace reaches a user: output streams that fail and errors nothing caught end the
 * process with one `cutter: …` line (`installProcessGuards`).
 */
import { constants } from 'node:os';
import { COMMAND_EXIT_CODES, type ErrorCode, errorMessage } from '../shared/errors.js';
import type { TaskState } from '../shared/schemas/index.js';

/** cutter itself could not run the task (docker uses 125 the same way). */
export const EXIT_NOT_RUN = 125;
/** Killed by SIGKILL (128 + 9), also the code of an OOM kill. */
export const EXIT_KILLED = 137;
/** stdout or stderr was closed under the CLI (128 + SIGPIPE). */
export const EXIT_BROKEN_PIPE = 141;

/** 128 + the signal's number (SIGINT 130, SIGTERM 143, SIGHUP 129), as a shell reports a job it killed. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * The exit code of `cutter run` for a task's terminal state (module comment).
 * @param signal the signal that made the CLI cancel the task, if one did: a task cancelled
 *   without an exit code of its own then gives 128 + its number (else 130, as after Ctrl-C).
 */
export function taskExitCode(s: TaskState, signal?: NodeJS.Signals): number {
  if (s.state === 'succeeded') return 0;
  // 127 / 126: the command could not be run (the same table the agent puts in the failed event).
  const command = s.error ? COMMAND_EXIT_CODES[s.error.code as ErrorCode] : undefined;
  if (command !== undefined) return command;
  if (s.state === 'lost') return EXIT_NOT_RUN;
  if (s.exitCode !== null) return s.exitCode;
  if (s.oomKilled || s.error?.code === 'OOM_KILLED') return EXIT_KILLED;
  if (s.state === 'cancelled') return signal ? signalExitCode(signal) : signalExitCode('SIGINT');
  return EXIT_NOT_RUN;
}

let brokenPipeHook: (() => Promise<unknown>) | undefined;
let leaving = false;

/**
 * What to do before the process exits because its output went away (EPIPE), e.g. cancel the
 * task it follows; bounded to `limitMs`. Replaces an earlier hook; `undefined` removes it.
 */
export function beforeBrokenPipeExit(hook: (() => Promise<unknown>) | undefined, limitMs = 10_000): void {
  brokenPipeHook = hook && (() => Promise.race([hook(), new Promise((r) => setTimeout(r, limitMs).unref())]));
}

/** Ends the process for a broken pipe: quietly, after the hook, with EXIT_BROKEN_PIPE. */
function brokenPipe(): void {
  if (leaving) return;
  leaving = true;
  const hook = brokenPipeHook ?? (async () => undefined);
  void hook()
    .catch(() => undefined)
    .finally(() => process.exit(EXIT_BROKEN_PIPE));
}

/**
 * Installs the process-wide guards of the CLI:
 * - EPIPE on stdout or stderr: no stack, the broken-pipe hook, exit 141; other errors of those
 *   streams (EIO on a terminal that hung up) are dropped: there is nowhere to say them;
 * - an exception or rejection nothing caught: `cutter: <message>` on stderr, exit 125 (with its
 *   stack when `withStack`: a daemon's log keeps it for whoever debugs it).
 */
export function installProcessGuards(opts: { withStack?: boolean } = {}): void {
  const onStreamError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') brokenPipe();
  };
  process.stdout.on('error', onStreamError);
  process.stderr.on('error', onStreamError);
  const crash = (err: unknown) => {
    if ((err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE') return brokenPipe();
    if (leaving) return;
    leaving = true;
    const detail = opts.withStack && err instanceof Error && err.stack ? err.stack : errorMessage(err);
    try {
      process.stderr.write(`cutter: ${detail}\n`);
    } catch {
      // stderr is gone too
    }
    process.exit(EXIT_NOT_RUN);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}
