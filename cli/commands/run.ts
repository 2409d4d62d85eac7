/**
 * `cutter run [--node N | --auto-select] [--memory SIZE] docker run [FLAGS] IMAGE [CMD…]`
 * `cutter run … exec -- CMD [ARGS…]`
 *
 * Submits the task, streams its stdout and stderr to this terminal's stdout and stderr, and exits
 * with its exit code — like `docker run`. Exit codes of its own, like docker's: 125 when the task
 * could not be placed or started, 130 when it was cancelled without an exit code.
 * Ctrl-C cancels the task (a second Ctrl-C leaves it running and exits).
 */
import type { Command } from 'commander';
import { CutterError } from '../../shared/errors.js';
import { SubmitResultSchema, isTerminal, type Requirements, type TaskEvent, type TaskSpec, type TaskState } from '../../shared/schemas/index.js';
import { formatBytes, parseBytes } from '../../shared/units.js';
import { newTaskId } from '../client.js';
import { parseDockerRun } from '../docker-args.js';
import { printJson } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/** Exit code when cutter itself could not run the task (docker uses 125 the same way). */
export const EXIT_NOT_RUN = 125;

interface RunFlags extends GlobalFlags {
  node?: string;
  autoSelect?: boolean;
  memory?: string;
  cpus?: string;
  detach?: boolean;
}

function buildSpec(executor: string, args: string[]): { spec: TaskSpec; detach: boolean } {
  if (executor === 'docker') return parseDockerRun(args);
  if (executor === 'exec') {
    const argv = args[0] === '--' ? args.slice(1) : args;
    if (argv.length === 0) throw new CutterError('INVALID_ARGUMENT', 'exec needs a command: cutter run exec -- CMD [ARGS…]');
    return { spec: { kind: 'exec', argv, env: {} }, detach: false };
  }
  throw new CutterError('INVALID_ARGUMENT', `unknown executor "${executor}": use "docker run …" or "exec -- CMD"`);
}

function exitCodeOf(s: TaskState): number {
  if (s.state === 'succeeded') return 0;
  if (s.exitCode !== null) return s.exitCode;
  return s.state === 'cancelled' ? 130 : EXIT_NOT_RUN;
}

export function registerRun(program: Command): void {
  withClientOptions(
    program
      .command('run')
      .description('run a task on the node that fits: docker run … | exec -- CMD')
      .argument('<executor>', '"docker" (then: run [FLAGS] IMAGE [CMD…]) or "exec" (then: -- CMD [ARGS…])')
      .argument('[args...]', 'the docker run command line, or the command to exec')
      .option('--node <node>', 'run on this node')
      .option('--auto-select', 'let the scheduler choose the node (the default without --node)')
      .option('--memory <size>', 'memory to reserve for placement (e.g. 24g); default: the container\'s -m')
      .option('--cpus <n>', 'CPUs the node must have')
      .option('-d, --detach', 'print the task id and return at once')
      .passThroughOptions(),
  ).action((executor: string, args: string[], flags: RunFlags) =>
    withClient(
      flags,
      async (client) => {
        if (flags.node && flags.autoSelect) throw new CutterError('INVALID_ARGUMENT', '--node and --auto-select exclude each other');
        const { spec, detach: dockerDetach } = buildSpec(executor, args);
        const detach = Boolean(flags.detach) || dockerDetach;
        const cpus = flags.cpus === undefined ? (spec.kind === 'docker' ? (spec.cpus ?? 0) : 0) : Number(flags.cpus);
        if (!Number.isFinite(cpus) || cpus < 0) throw new CutterError('INVALID_ARGUMENT', `--cpus ${flags.cpus}: expected a number`);
        const requirements: Requirements = {
          ...(flags.node ? { node: flags.node } : {}),
          memory: flags.memory !== undefined ? parseBytes(flags.memory) : spec.kind === 'docker' ? (spec.memoryLimit ?? 0) : 0,
          cpus,
        };
        const taskId = newTaskId();

        if (detach) {
          const state = await client.request({ op: 'submit', taskId, spec, requirements }, SubmitResultSchema);
          if (flags.json) printJson(state);
          else process.stdout.write(`${state.taskId}\n`);
          return 0;
        }

        // Follow before submitting, so no event is missed.
        let final: TaskState | undefined;
        let resultSeen = false;
        let resolveDone!: () => void;
        const done = new Promise<void>((r) => (resolveDone = r));
        let lastProgress = '';
        const onEvent = (e: TaskEvent) => {
          if (flags.json) process.stdout.write(`${JSON.stringify(e)}\n`);
          else if (e.type === 'log') (e.stream === 'stdout' ? process.stdout : process.stderr).write(e.data);
          else if (e.type === 'progress' && e.phase === 'pull') {
            const pct = e.total ? ` ${formatBytes(e.current ?? 0)} / ${formatBytes(e.total)}` : '';
            const line = `${e.phase}: ${e.message}${pct}`;
            if (line !== lastProgress) process.stderr.write(`cutter: ${line}\n`);
            lastProgress = line;
          }
          if (e.type === 'result' || e.type === 'failed') {
            resultSeen = true;
            if (final) resolveDone();
          }
        };
        const onState = (s: TaskState) => {
          if (!isTerminal(s.state)) return;
          final = s;
          // The result event carries the last output in order; wait briefly for it if it is still in flight.
          if (resultSeen || s.exitCode === null) resolveDone();
          else setTimeout(resolveDone, 1_000);
        };
        await client.follow(taskId, onEvent, onState);

        let interrupts = 0;
        process.on('SIGINT', () => {
          if (++interrupts > 1) process.exit(130);
          process.stderr.write(`\ncutter: cancelling task ${taskId} (Ctrl-C again to leave it running)\n`);
          void client.request({ op: 'cancel', taskId }, SubmitResultSchema).catch(() => undefined);
        });

        const placed = await client.request({ op: 'submit', taskId, spec, requirements }, SubmitResultSchema);
        if (!flags.json) process.stderr.write(`cutter: task ${taskId} placed on ${placed.placement ?? placed.node}\n`);
        await done;
        const f = final!;
        if (flags.json) printJson(f);
        else if (f.state !== 'succeeded' && f.error && f.error.code !== 'EXIT_CODE') process.stderr.write(`cutter: task ${taskId} ${f.state}: ${f.error.message}\n`);
        return exitCodeOf(f);
      },
      EXIT_NOT_RUN,
    ),
  );
}
