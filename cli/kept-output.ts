/**
 * What the server kept of a task's output, for `cutter logs` and `cutter tasks show`: the kept
 * events with the account of what was dropped (task.logs pages), and the words that tell a person
 * what was cut, where, and what to do about it. The notice goes to stderr, never into the bytes.
 */
import { sizeText } from '../shared/config/help.js';
import type { MeshClient } from '../shared/client/index.js';
import { KEPT_STREAMS, type KeptOutput, type TaskEvent, TaskLogsResultSchema } from '../shared/schemas/index.js';
import { formatBytes } from '../shared/units.js';

/** A task's kept output: its events in order, whether output was cut, and the account (null from an older server). */
export interface KeptLogs {
  events: TaskEvent[];
  truncated: boolean;
  output: KeptOutput | null;
}

/**
 * Every event the controller kept for a task (paged task.logs), with the account of its output as
 * the last page gives it.
 * @throws CutterError NOT_FOUND (no such task), NO_CONTROLLER.
 */
export async function keptLogs(client: MeshClient, taskId: string): Promise<KeptLogs> {
  const events: TaskEvent[] = [];
  let after: { attempt: number; seq: number } | undefined;
  for (;;) {
    const page = await client.request({ op: 'task.logs', taskId, ...(after ? { after } : {}) }, TaskLogsResultSchema);
    events.push(...page.events);
    const last = page.events.at(-1);
    if (!page.more || !last) return { events, truncated: page.truncated, output: page.output };
    after = { attempt: last.attempt, seq: last.seq };
  }
}

/**
 * The account of a task's output alone (task.logs with summaryOnly: no events).
 * @throws CutterError NOT_FOUND, NO_CONTROLLER.
 */
export async function keptSummary(client: MeshClient, taskId: string): Promise<Omit<KeptLogs, 'events'>> {
  const page = await client.request({ op: 'task.logs', taskId, summaryOnly: true }, TaskLogsResultSchema);
  return { truncated: page.truncated, output: page.output };
}

const n = (bytes: number) => bytes.toLocaleString('en-US');

/** A limit that would have kept `total` bytes whole: the next power of two, as a size (`2m`). */
function enough(total: number): string {
  let size = 1024;
  while (size < total) size *= 2;
  return sizeText(size);
}

/**
 * The lines (without `cutter: `) that tell a person what of a task's output was not kept, or []
 * when everything was: how many bytes of which stream were dropped, where (after the first and
 * before the last bytes kept of that stream), lost bytes, and which setting keeps more.
 * @param truncated the reply's flag: with no account (an older server) it alone says output was cut.
 */
export function cutNotice(taskId: string, truncated: boolean, output: KeptOutput | null): string[] {
  if (!output) {
    return truncated
      ? [
          `the output of task ${taskId} was cut: the server keeps a bounded amount per task (its maxLogBytes) and did not count what it dropped`,
        ]
      : [];
  }
  const lines: string[] = [];
  const dropped = KEPT_STREAMS.filter((s) => output[s].dropped > 0);
  if (dropped.length > 0) {
    lines.push(
      `the output of task ${taskId} was cut to ${formatBytes(output.limit)} (the server's maxLogBytes): ` +
        `shown are its first ${formatBytes(output.headBytes)} and its last ${formatBytes(output.tailBytes)}; the middle was dropped:`,
    );
    for (const s of dropped) {
      const c = output[s];
      const tail = c.kept - c.droppedFrom;
      const where =
        c.droppedFrom > 0 && tail > 0
          ? `between its first ${n(c.droppedFrom)} bytes and its last ${n(tail)} bytes`
          : c.droppedFrom > 0
            ? `after its first ${n(c.droppedFrom)} bytes`
            : tail > 0
              ? `before its last ${n(tail)} bytes`
              : 'all of it';
      lines.push(`  ${s}: ${n(c.dropped)} bytes dropped ${where} (of ${n(c.written)} written)`);
    }
  }
  if (output.uncounted) lines.push(`an older server kept only the start of this task's output and dropped the rest without counting it`);
  for (const s of KEPT_STREAMS.filter((k) => output[k].lost > 0))
    lines.push(
      `${n(output[s].lost)} bytes of ${s} were lost while the server could not store them (its data dir was failing); where is not known`,
    );
  if (dropped.length > 0) {
    const total = KEPT_STREAMS.reduce((sum, s) => sum + output[s].written, 0);
    lines.push(
      `to keep more, start the server with a larger maxLogBytes (CUTTER_MAX_LOG_BYTES=${enough(total)} would have kept all of this; ` +
        `or "maxLogBytes" in its config file) and run the task again`,
    );
  }
  return lines;
}

/** Writes cutNotice's lines on stderr, each as `cutter: …`. */
export function printCutNotice(lines: string[]): void {
  for (const line of lines) process.stderr.write(`cutter: ${line}\n`);
}
