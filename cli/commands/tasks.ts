/** `cutter tasks list|show` and `cutter cancel`. */
import type { Command } from 'commander';
import { durationFlag } from '../../shared/duration.js';
import { CutterError } from '../../shared/errors.js';
import {
  isTerminal,
  KEPT_STREAMS,
  type KeptOutput,
  outputCut,
  TaskListResultSchema,
  TaskStateSchema,
  TaskStatusSchema,
  type TaskState,
  type TaskStatus,
} from '../../shared/schemas/index.js';
import { formatBytes, formatDuration } from '../../shared/units.js';
import { keptSummary } from '../kept-output.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

function duration(t: TaskState): string {
  if (!t.startedAt) return '-';
  return formatDuration((t.finishedAt ?? Date.now()) - t.startedAt);
}

/** One line on a task's kept output: `12.0 KiB kept`, or what was dropped past the limit. */
function outputLine(o: KeptOutput | null): string {
  if (!o) return '-';
  const sum = (k: 'kept' | 'dropped' | 'lost') => KEPT_STREAMS.reduce((n, s) => n + o[s][k], 0);
  if (!outputCut(o)) return `${formatBytes(sum('kept'))} kept`;
  const parts = [`${formatBytes(sum('kept'))} kept (the first ${formatBytes(o.headBytes)} and the last ${formatBytes(o.tailBytes)})`];
  for (const s of KEPT_STREAMS) if (o[s].dropped > 0) parts.push(`${o[s].dropped.toLocaleString('en-US')} bytes of ${s} dropped`);
  if (sum('lost') > 0) parts.push(`${sum('lost').toLocaleString('en-US')} bytes lost`);
  if (o.uncounted) parts.push('more dropped uncounted');
  return `${parts.join(', ')}; limit ${formatBytes(o.limit)} (maxLogBytes)`;
}

/**
 * `key: value` lines for one task.
 * @param output what the server kept of its output (task.logs summary); undefined leaves the line out.
 */
export function describeTask(t: TaskState, output?: KeptOutput | null): string {
  const time = (ms: number | null) => (ms ? new Date(ms).toISOString() : '-');
  const lines: [string, string][] = [
    ['Task', t.taskId],
    ['State', t.state],
    ['Kind', t.kind],
    ['Run', t.summary],
    ['Node', t.node ?? '-'],
    ['Attempt', String(t.attempt)],
    ['Memory', t.requirements.memory ? formatBytes(t.requirements.memory) : '-'],
    ['Placement', t.placement ?? '-'],
    ['Created', time(t.createdAt)],
    ['Started', time(t.startedAt)],
    ['Finished', time(t.finishedAt)],
    ['Duration', duration(t)],
    ['Exit code', t.exitCode === null ? '-' : String(t.exitCode)],
    ['OOM killed', t.oomKilled ? 'yes' : 'no'],
    ['Error', t.error ? `${t.error.code}: ${t.error.message}` : '-'],
  ];
  // A queued task waits for something: say what (each node's reason when none fits).
  if (t.state === 'queued' && t.reason) lines.push(['Waiting', t.reason]);
  if (output !== undefined) lines.push(['Output', outputLine(output)]);
  return lines.map(([k, v]) => `${`${k}:`.padEnd(12)}${v}`).join('\n');
}

/**
 * One value of `--state`.
 * @throws CutterError INVALID_ARGUMENT naming the flag and the states there are.
 */
function stateFlag(text: string): TaskStatus {
  const r = TaskStatusSchema.safeParse(text);
  if (!r.success) throw new CutterError('INVALID_ARGUMENT', `--state ${JSON.stringify(text)}: use ${TaskStatusSchema.options.join(', ')}`);
  return r.data;
}

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('tasks of the mesh');
  withClientOptions(tasks.command('list').alias('ls').description('list tasks, newest first'))
    .option('--state <states>', 'only these states, comma separated (queued,assigned,running,succeeded,failed,cancelled,lost)')
    .option('-n, --limit <n>', 'at most this many', '100')
    .action((flags: GlobalFlags & { state?: string; limit: string }) =>
      withClient(flags, async (client) => {
        const states = flags.state ? flags.state.split(',').map((s) => stateFlag(s.trim())) : undefined;
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new CutterError('INVALID_ARGUMENT', `--limit ${flags.limit}: expected a positive whole number`);
        const { tasks: list } = await client.request({ op: 'task.list', states, limit }, TaskListResultSchema);
        if (flags.json) printJson(list);
        else if (list.length === 0) process.stdout.write('no tasks\n');
        else
          process.stdout.write(
            `${table(
              ['TASK', 'STATE', 'NODE', 'KIND', 'RUN', 'CREATED', 'DURATION', 'EXIT'],
              list.map((t) => [
                t.taskId,
                t.state,
                t.node ?? '-',
                t.kind,
                t.summary.slice(0, 40),
                ago(Date.now() - t.createdAt),
                duration(t),
                t.exitCode === null ? '-' : String(t.exitCode),
              ]),
            )}\n`,
          );
        return 0;
      }),
    );
  withClientOptions(
    tasks
      .command('show')
      .argument('<task>', 'task id')
      .description('state, node, attempt, times, exit code of one task, and how much of its output the server kept'),
  ).action((taskId: string, flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const t = await client.request({ op: 'task.get', taskId }, TaskStateSchema);
      const { output } = await keptSummary(client, taskId);
      if (flags.json) printJson({ ...t, output });
      else process.stdout.write(`${describeTask(t, output)}\n`);
      return 0;
    }),
  );

  withClientOptions(
    program.command('cancel').argument('<task>', 'task id').description('stop a task: SIGTERM, then SIGKILL after the grace period'),
  )
    .option('--grace <duration>', 'time between SIGTERM and SIGKILL, e.g. 10s (a bare number is ms)', '3s')
    .option('--no-wait', 'return once the cancel is sent')
    .action((taskId: string, flags: GlobalFlags & { grace: string; wait: boolean }) =>
      withClient(flags, async (client, cfg) => {
        const graceMs = durationFlag('--grace', flags.grace, { max: 3_600_000 });
        let final: TaskState | undefined;
        const done = new Promise<void>((resolve) => {
          void client.follow(
            taskId,
            () => undefined,
            (s) => {
              if (isTerminal(s.state)) {
                final = s;
                resolve();
              }
            },
          );
        });
        const state = await client.request({ op: 'cancel', taskId, graceMs }, TaskStateSchema);
        if (flags.wait) {
          const limit = graceMs + cfg.timeoutMs + 10_000;
          await Promise.race([done, new Promise((r) => setTimeout(r, limit))]);
        }
        const shown = final ?? state;
        if (flags.json) printJson(shown);
        else
          process.stdout.write(
            final
              ? `${taskId} ${final.state}${final.exitCode !== null ? ` (exit code ${final.exitCode})` : ''}\n`
              : `cancelling ${taskId} on ${state.node}\n`,
          );
        return flags.wait && !final ? 1 : 0;
      }),
    );
}
