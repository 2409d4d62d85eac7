/**
 * `cutter logs [-f] TASK`: a task's output as the controller kept it, and live with -f. The kept
 * bytes go out exactly as written; when the server cut the output (past its maxLogBytes it keeps
 * the head and the tail), a notice on stderr says how much of which stream was dropped, where, and
 * how to keep more. With --json: one line per event, then one `{"type":"kept",…}` line with the
 * account (`truncated`, `output`: KeptOutputSchema, null from an older server).
 */
import type { Command } from 'commander';
import { followTask } from '../../shared/client/index.js';
import { type LogEvent, logBytes, logSize } from '../../shared/log-data.js';
import { isTerminal, KEPT_STREAMS, type KeptStream, type TaskEvent, type TaskState, TaskStateSchema } from '../../shared/schemas/index.js';
import { cutNotice, type KeptLogs, keptLogs, keptSummary, printCutNotice } from '../kept-output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { eventPrinter, printTask, unfinished } from './follow.js';

/**
 * Prints the notice on stderr; on a terminal it starts on a line of its own when the output shown
 * did not end with a newline (only then: captured stderr gets the task's bytes, then the notice).
 */
function printNotice(lines: string[], last: LogEvent | undefined): void {
  if (lines.length === 0) return;
  const bytes = last ? logBytes(last) : Buffer.alloc(0);
  if (process.stderr.isTTY && bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) process.stderr.write('\n');
  printCutNotice(lines);
}

/** The last log event with bytes, if any. */
function lastOutput(events: TaskEvent[]): LogEvent | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type === 'log' && logSize(e) > 0) return e;
  }
  return undefined;
}

/** The last line of `cutter logs --json`: the account of what was kept. */
function printKeptLine(taskId: string, kept: Omit<KeptLogs, 'events'>): void {
  process.stdout.write(`${JSON.stringify({ type: 'kept', taskId, truncated: kept.truncated, output: kept.output })}\n`);
}

/**
 * Why a task has no output of a run to show, or null when it ran: it failed, was lost or
 * cancelled before it started (the error the agent or controller recorded), or it is still waiting.
 */
export function whyNoRun(s: TaskState): string | null {
  const why = s.error ? `${s.error.message} (${s.error.code})` : s.reason;
  if (s.state === 'queued' || s.state === 'assigned')
    return `task ${s.taskId} has not started yet: ${s.state}${s.reason ? `: ${s.reason}` : ''}`;
  if (s.startedAt === null && (s.state === 'failed' || s.state === 'lost' || s.state === 'cancelled'))
    return `task ${s.taskId} ${s.state} before it started${s.node ? ` on ${s.node}` : ''}: ${why ?? 'no reason was recorded'}`;
  if (s.state === 'failed' && s.error) return `task ${s.taskId} failed: ${why}`;
  return null;
}

export function registerLogs(program: Command): void {
  withClientOptions(
    program
      .command('logs')
      .argument('<task>', 'task id')
      .description(
        "print a task's output as the server kept it: all of it up to its maxLogBytes per task, past that the first and the last half of it (stderr says what was dropped)",
      ),
  )
    .option('-f, --follow', 'keep printing until the task ends')
    .action((taskId: string, flags: GlobalFlags & { follow?: boolean }) =>
      withClient(flags, async (client) => {
        const json = Boolean(flags.json);
        const state = await client.request({ op: 'task.get', taskId }, TaskStateSchema);
        if (!flags.follow || isTerminal(state.state)) {
          const kept = await keptLogs(client, taskId);
          const print = eventPrinter(json);
          for (const e of kept.events) print(e);
          if (json) printKeptLine(taskId, kept);
          else {
            printNotice(cutNotice(taskId, kept.truncated, kept.output), lastOutput(kept.events));
            const why = whyNoRun(state);
            if (why) process.stderr.write(`cutter: ${why}\n`);
          }
          return 0;
        }
        // Following: the kept part first, then live. Say what was cut only if this terminal missed some of it.
        const shown: Record<KeptStream, number> = { stdout: 0, stderr: 0, chunks: 0 };
        let last: LogEvent | undefined;
        const onPrinted = (e: TaskEvent) => {
          if (e.type === 'log' && logSize(e) > 0) last = e;
          if (e.type === 'log') shown[e.stream] += logSize(e);
          else if (e.type === 'chunks') shown.chunks += JSON.stringify(e.chunks).length;
        };
        const run = await followTask(client, taskId, { history: true });
        const why = unfinished(await printTask(run, { json, narrate: false, onPrinted }));
        if (why) {
          process.stderr.write(`cutter: ${why}\n`);
          return 1;
        }
        const kept = await keptSummary(client, taskId);
        const missed = kept.output ? KEPT_STREAMS.some((s) => (kept.output?.[s].written ?? 0) > shown[s]) : kept.truncated;
        if (json) printKeptLine(taskId, kept);
        else if (missed) printNotice(cutNotice(taskId, kept.truncated, kept.output), last);
        return 0;
      }),
    );
}
