/**
 * Following a task from a terminal: prints its output and the changes of its state as they
 * happen. Submitting, following, gap filling and the rule for "done" are shared/client/run-task.ts;
 * this is only how a terminal shows it.
 */
import type { TaskOutcome, TaskRun } from '../../shared/client/index.js';
import { logBytes } from '../../shared/log-data.js';
import { isTerminal, type TaskEvent, type TaskState } from '../../shared/schemas/index.js';
import { ProgressBar } from '../progress.js';
import { isTerminal as isTty, StatusLine } from '../tty.js';
import type { OutputCredit } from '../output-credit.js';

export interface PrintOptions {
  json: boolean;
  /** Print state changes (placement, queueing, node lost) on stderr. */
  narrate: boolean;
  /** Told of every event after it is printed (e.g. to count the bytes shown). */
  onPrinted?: (e: TaskEvent) => void;
  /**
   * `cutter run` attached: the output of a credit-gated attempt is written one event at a time,
   * each credited once the OS took it (../output-credit.ts).
   */
  credit?: OutputCredit;
}

/**
 * A printer of task events: stdout logs on stdout, stderr logs and image pull progress on stderr
 * (log output as the task's raw bytes, exactly as written), or each event as one JSON line with
 * `json` (log `data` then stays base64, as sent).
 */
export function eventPrinter(json: boolean): (e: TaskEvent, written?: () => void) => void {
  const pull = pullProgress();
  // `written` is the write's callback (called once the OS took the bytes, or on its error), or called at once when nothing is written.
  return (e, written = () => undefined) => {
    if (json) process.stdout.write(`${JSON.stringify(e)}\n`, () => written());
    else if (e.type === 'log') {
      pull.end();
      (e.stream === 'stdout' ? process.stdout : process.stderr).write(logBytes(e), () => written());
    } else if (e.type === 'progress' && e.phase === 'pull') {
      pull.show(e.message, e.current ?? 0, e.total ?? 0);
      written();
    } else written();
  };
}

/**
 * How an image or model pull shows: the progress bar (../progress.ts) on a terminal; elsewhere one
 * `cutter: pull: <status>` line per status (not one per byte count).
 */
export function pullProgress(prefix = 'pull'): { show(message: string, done: number, total: number): void; end(): void } {
  const bar = new ProgressBar(prefix, 0);
  const tty = isTty(process.stderr);
  let last = '';
  return {
    show(message, done, total) {
      if (tty && total > 0) bar.update(done, total, `${prefix}: ${message}`);
      else if (message !== last) {
        bar.end();
        process.stderr.write(`cutter: ${prefix}: ${message}\n`);
      }
      last = message;
    },
    end: () => bar.end(),
  };
}

/**
 * Prints a follow's events (eventPrinter) and, with `narrate`, its state changes on stderr, until
 * the follow ends.
 * @returns the follow's outcome.
 */
export async function printTask(run: TaskRun, opts: PrintOptions): Promise<TaskOutcome> {
  let lastState: string | undefined;
  const onEvent = eventPrinter(opts.json);
  // The queued line is redrawn in place on a terminal, printed once elsewhere (../tty.ts StatusLine).
  const queued = new StatusLine(process.stderr);
  const onState = (s: TaskState) => {
    const shown = `${s.state}/${s.attempt}/${s.node}/${s.reason}`;
    if (s.state !== 'queued') queued.end();
    if (opts.narrate && !opts.json && shown !== lastState && !isTerminal(s.state)) {
      if (s.state === 'queued' && s.reason) queued.show(`cutter: task ${s.taskId} queued: ${s.reason}`);
      else if (s.state === 'assigned')
        process.stderr.write(
          `cutter: task ${s.taskId} placed on ${s.placement ?? s.node}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}\n`,
        );
      else if (s.state === 'unknown') process.stderr.write(`cutter: task ${s.taskId}: ${s.reason}\n`);
    }
    lastState = shown;
  };
  for await (const u of run.events) {
    if (u.type === 'event') {
      if (opts.credit?.gated(u.event)) {
        const e = u.event;
        await new Promise<void>((r) => onEvent(e, r));
        opts.credit.written(e);
      } else onEvent(u.event);
      opts.onPrinted?.(u.event);
    } else if (u.type === 'state') onState(u.state);
    else if (!opts.json)
      process.stderr.write(`cutter: ${u.items} events not shown (this terminal fell behind): cutter logs ${run.taskId}\n`);
  }
  queued.end();
  return run.result;
}

/** What to tell the user when a follow ended without the task's end (the connection was gone), or null. */
export function unfinished(o: TaskOutcome): string | null {
  if (o.end === 'terminal') return null;
  return `lost the connection to the controller; task ${o.taskId} may still run (follow it with cutter logs -f ${o.taskId})`;
}
