/**
 * `cutter run [--node N | --auto-select] [--memory SIZE] docker run [FLAGS] IMAGE [CMD…]`
 * `cutter run … exec [-e K=V] [-w DIR] [-u USER] [-m SIZE] [--cpus N] -- CMD [ARGS…]`
 *
 * For an exec task `--memory` and `--cpus` are also its limits (the node enforces them with a
 * cgroup or refuses the task), unless exec's own `-m` / `--cpus` say otherwise.
 *
 * Submits the task, streams its stdout and stderr to this terminal's stdout and stderr, and exits
 * with its exit code — like `docker run`. A task no node can take now waits in the queue
 * (`--no-queue` fails at once with the reason per node); `--timeout` bounds waiting and running.
 * Exit codes of its own, like docker's (../exit.ts): 125 when the task could not be placed or
 * started, 126/127 when its command cannot be invoked / was not found, 137 when it was killed.
 * Like `docker run --sig-proxy`: SIGINT, SIGTERM and SIGHUP cancel the task (SIGTERM, then SIGKILL
 * after the grace) and the CLI exits with the task's code, or 128+signal when it reported none; a
 * second signal exits at once. A closed stdout (`| head -1`) cancels the task and exits 141.
 * With `-i` (on `cutter run`, or `docker run -i`) this process's stdin, EOF included, is streamed to
 * the task's stdin (../stdin-pump.ts); without it the task's stdin is empty and nothing here is read.
 * With `-t` the task gets a TTY the size of this terminal (a docker task its container's, an exec
 * task a pty on the node); with `-i` too, a terminal stdin is put in raw mode (keys, Ctrl-C and
 * Ctrl-D go to the task) and resizes follow the window; `-it` with a stdin that is no terminal
 * exits 1 saying so, as `docker run -it` does (`-t` alone allocates the TTY anyway).
 * Attached (not -d), the task's output is credit-gated (../output-credit.ts): a slow reader of this
 * process's stdout slows the task instead of the output piling up here.
 */
import type { Command } from 'commander';
import { newTaskId, type RunRequest, runTask, type TaskRun, taskOptionsFor } from '../../shared/client/index.js';
import { DurationSchema } from '../../shared/config.js';
import { CutterError } from '../../shared/errors.js';
import {
  RestartPolicySchema,
  type Requirements,
  SubmitResultSchema,
  TaskOptionsSchema,
  type TaskSpec,
  NodeListResultSchema,
} from '../../shared/schemas/index.js';
import { parseBytes } from '../../shared/units.js';
import { parseDockerRun, parsePublish } from '../docker-args.js';
import { parseExecArgs } from '../exec-args.js';
import { gpuRequirement } from '../gpu-args.js';
import { beforeBrokenPipeExit, EXIT_NOT_RUN, signalExitCode, taskExitCode } from '../exit.js';
import { watchForwards } from '../forwards.js';
import { OutputCredit } from '../output-credit.js';
import { printJson } from '../output.js';
import { localImagePlatform, type PlacementFlags, placementRequirements, withPlacementOptions } from '../placement-flags.js';
import { StdinPump } from '../stdin-pump.js';
import { applyVolumeFlags, refuseUnallowedHostPaths } from '../volume-args.js';
import { applyIoFlags } from '../io/args.js';
import { TaskIo } from '../io/session.js';
import { type GlobalFlags, withClient, withClientOptions } from './common.js';
import { printTask, unfinished } from './follow.js';

export { EXIT_NOT_RUN } from '../exit.js';

/** Signals that cancel the task, as `docker run --sig-proxy` passes them to the container. */
const PROXIED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

interface RunFlags extends GlobalFlags, PlacementFlags {
  node?: string;
  autoSelect?: boolean;
  memory?: string;
  cpus?: string;
  detach?: boolean;
  queue: boolean;
  timeout?: string;
  restart?: string;
  maxAttempts?: string;
  lostAfter?: string;
  priority?: string;
  publish?: string[];
  interactive?: boolean;
  tty?: boolean;
  gpus?: string;
  gpuMemory?: string;
  volume?: string[];
  mount?: string[];
  input?: string[];
  output?: string[];
}

function buildSpec(
  executor: string,
  args: string[],
  interactive: boolean,
  tty: boolean,
): { spec: TaskSpec; detach: boolean; platform?: string; gpus?: ReturnType<typeof parseDockerRun>['gpus']; node?: string } {
  if (executor === 'docker') {
    const parsed = parseDockerRun(args);
    if (interactive) parsed.spec.stdin = true;
    if (tty || parsed.spec.tty) parsed.spec.tty = { rows: process.stdout.rows ?? 0, cols: process.stdout.columns ?? 0 };
    return parsed;
  }
  if (executor === 'exec') {
    const spec = parseExecArgs(args);
    if (interactive) spec.stdin = true;
    // A pty on the node (agent/executors/exec-pty.ts), the size of this terminal (0: the node's default).
    if (tty) spec.tty = { rows: process.stdout.rows ?? 0, cols: process.stdout.columns ?? 0 };
    return { spec, detach: false };
  }
  throw new CutterError('INVALID_ARGUMENT', `unknown executor "${executor}": use "docker run …" or "exec -- CMD"`);
}

/**
 * Turns the scheduling flags into the task options they set (the rest keep the defaults of
 * shared/client/task-options.ts). @throws CutterError INVALID_ARGUMENT naming the flag.
 */
function buildOptions(flags: RunFlags): NonNullable<RunRequest['options']> {
  const duration = (flag: string, v: string | undefined) => {
    if (v === undefined) return null;
    const r = DurationSchema.safeParse(v);
    if (!r.success) throw new CutterError('INVALID_ARGUMENT', `${flag} ${v}: ${r.error.issues[0]?.message}`);
    return r.data;
  };
  const parsed = TaskOptionsSchema.safeParse({
    queue: flags.queue,
    timeoutMs: duration('--timeout', flags.timeout),
    lostAfterMs: duration('--lost-after', flags.lostAfter),
    ...(flags.restart !== undefined ? { restart: flags.restart } : {}),
    ...(flags.maxAttempts !== undefined ? { maxAttempts: Number(flags.maxAttempts) } : {}),
    ...(flags.priority !== undefined ? { priority: Number(flags.priority) } : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const flag =
      { restart: '--restart', maxAttempts: '--max-attempts', priority: '--priority', timeoutMs: '--timeout' }[String(issue.path[0])] ??
      String(issue.path[0]);
    throw new CutterError('INVALID_ARGUMENT', `${flag}: ${issue.message}`);
  }
  const o = parsed.data;
  return {
    queue: flags.queue,
    ...(flags.timeout !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(flags.lostAfter !== undefined ? { lostAfterMs: o.lostAfterMs } : {}),
    ...(flags.restart !== undefined ? { restart: o.restart } : {}),
    ...(flags.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts } : {}),
    ...(flags.priority !== undefined ? { priority: o.priority } : {}),
  };
}

export function registerRun(program: Command): void {
  withClientOptions(
    withPlacementOptions(program.command('run'))
      .description('run a task on the node that fits: docker run … | exec -- CMD')
      .argument('<executor>', '"docker" (then: run [FLAGS] IMAGE [CMD…]) or "exec" (then: -- CMD [ARGS…])')
      .argument('[args...]', 'the docker run command line, or the command to exec')
      .option('--node <node>', 'run on this node')
      .option('--auto-select', 'let the scheduler choose the node (the default without --node)')
      .option('--memory <size>', "memory to reserve for placement (e.g. 24g; an exec task's limit too); default: the task's -m")
      .option('--cpus <n>', "CPUs the node must have (an exec task's limit too); default: the task's --cpus")
      .option(
        '--gpus <n|all>',
        'GPUs the task gets, reserved per device: a count, all, or \'"device=GPU-…,GPU-…"\' (same as docker run --gpus)',
      )
      .option('--gpu-memory <size>', 'free VRAM each of its GPUs must have, e.g. 20g (alone: one GPU)')
      .option('-d, --detach', 'print the task id and return at once')
      .option('-i, --interactive', "stream this terminal's stdin to the task, EOF included (docker run -i does the same)")
      .option(
        '-t, --tty',
        'give the task a TTY (exec: a pty on the node): with -i an interactive shell (raw mode, window size); docker run -t does the same',
      )
      .option('--no-queue', 'fail at once when no node fits now, instead of waiting in the queue')
      .option('--timeout <duration>', 'bound waiting and running together, e.g. 30s, 2h')
      .option('--restart <policy>', `after an attempt ends: ${RestartPolicySchema.options.join(' | ')} (default on-lost)`)
      .option('--max-attempts <n>', 'attempts in all (default 3)')
      .option('--lost-after <duration>', "how long the task may stay on a disconnected node before it is rescheduled (default: the node's)")
      .option('--priority <n>', 'queue priority, higher first (default 0)')
      .option(
        '-p, --publish <server:container>',
        'reach a container port at this server port (repeatable; same as docker run -p)',
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        '-v, --volume <volume>',
        "mount a volume of the node: VOLUME:/data[:ro] (docker), VOLUME (exec: its path is in $CUTTER_VOLUME_<NAME>, and -w VOLUME:SUBDIR works inside it); NODE:VOLUME… runs on that node; /host/path:/data only where the node's policy allows it (repeatable)",
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        '--mount <spec>',
        'docker: type=volume,src=VOLUME,dst=/data[,readonly] (or type=bind,src=/host/path,…; repeatable)',
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        '--input <local:path>',
        "upload a local directory before the start, seen read-only at PATH (docker) or in $CUTTER_INPUT_<NAME> (exec); only files the node's cache lacks are sent (repeatable)",
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        '--output <path:local>',
        'collect the directory the task writes at PATH (docker; exec: $CUTTER_OUTPUT_<NAME>) into a local directory after it exits, SHA-256 checked (repeatable)',
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .passThroughOptions(),
  ).action((executor: string, args: string[], flags: RunFlags) =>
    withClient(
      flags,
      async (client, cfg) => {
        if (flags.node && flags.autoSelect) throw new CutterError('INVALID_ARGUMENT', '--node and --auto-select exclude each other');
        const {
          spec,
          detach: dockerDetach,
          platform: dockerPlatform,
          gpus: dockerGpus,
          node: dockerNode,
        } = buildSpec(executor, args, Boolean(flags.interactive), Boolean(flags.tty));
        const gpus = gpuRequirement(flags, dockerGpus);
        const node = applyVolumeFlags(spec, flags.volume ?? [], flags.mount ?? [], flags.node ?? dockerNode);
        if (flags.node && dockerNode && flags.node !== dockerNode)
          throw new CutterError('INVALID_ARGUMENT', `docker run -v names node ${dockerNode}, but --node is ${flags.node}`);
        if (spec.kind === 'docker' && spec.mounts?.some((m) => m.type === 'bind')) {
          const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
          refuseUnallowedHostPaths(spec, new Map(nodes.map((n) => [n.node, n.status.hostPaths ?? []])), node);
        }
        if (flags.publish?.length) {
          if (spec.kind !== 'docker') throw new CutterError('INVALID_ARGUMENT', '-p forwards container ports: it needs a docker task');
          spec.ports = [...(spec.ports ?? []), ...flags.publish.map((p) => parsePublish(p))];
        }
        const io = applyIoFlags(spec, flags.input ?? [], flags.output ?? []);
        const options = buildOptions(flags);
        const detach = Boolean(flags.detach) || dockerDetach;
        if (detach && (io.inputs.length || io.outputs.length))
          throw new CutterError(
            'INVALID_ARGUMENT',
            '--input/--output with -d: cutter run sends the inputs and collects the outputs while it follows the task; drop -d',
          );
        const stdin = spec.kind !== 'ollama' && spec.stdin === true;
        if (stdin && detach)
          throw new CutterError(
            'INVALID_ARGUMENT',
            '-i with -d: nothing would feed the task its stdin once cutter returns; drop -d to stream stdin, or -i to run detached',
          );
        // As `docker run -it` says (and exits 1) when its stdin is a pipe or a file: raw keys need a terminal.
        if (stdin && spec.tty && !process.stdin.isTTY) {
          process.stderr.write('cutter: the input device is not a TTY\n');
          return 1;
        }
        const cpus = flags.cpus === undefined ? (spec.kind !== 'ollama' ? (spec.cpus ?? 0) : 0) : Number(flags.cpus);
        if (!Number.isFinite(cpus) || cpus < 0) throw new CutterError('INVALID_ARGUMENT', `--cpus ${flags.cpus}: expected a number`);
        const memory = flags.memory !== undefined ? parseBytes(flags.memory) : spec.kind !== 'ollama' ? (spec.memoryLimit ?? 0) : 0;
        // An exec task has no limits but these: what it reserves, it is held to.
        if (spec.kind === 'exec') {
          if (memory > 0) spec.memoryLimit ??= memory;
          if (cpus > 0) spec.cpus ??= cpus;
        }
        // The platform asked for, else that of an image built on this machine (cli/placement-flags.ts).
        const platform =
          flags.platform ?? dockerPlatform ?? (spec.kind === 'docker' ? ((await localImagePlatform(spec.image)) ?? undefined) : undefined);
        const requirements: Requirements = {
          ...(node ? { node } : {}),
          memory,
          cpus,
          ...(gpus ? { gpus } : {}),
          ...placementRequirements(flags, platform, cfg.machineId),
        };
        const taskId = newTaskId();

        if (detach) {
          const { options: submitted } = taskOptionsFor(spec, options);
          const state = await client.request({ op: 'submit', taskId, spec, requirements, options: submitted }, SubmitResultSchema);
          if (flags.json) printJson(state);
          else process.stdout.write(`${state.taskId}\n`);
          return 0;
        }

        let run: TaskRun | undefined;
        const cancelTask = async () => {
          await (run ? run.cancel() : client.request({ op: 'cancel', taskId }, SubmitResultSchema));
        };
        const cancel = () => void cancelTask().catch(() => undefined);
        let signalled: NodeJS.Signals | undefined;
        const onSignal = (signal: NodeJS.Signals) => {
          if (signalled) process.exit(signalExitCode(signal));
          signalled = signal;
          const again = signal === 'SIGINT' ? 'Ctrl-C' : signal;
          process.stderr.write(
            `${signal === 'SIGINT' ? '\n' : ''}cutter: ${signal}: cancelling task ${taskId} (${again} again to stop waiting for it)\n`,
          );
          cancel();
        };
        for (const signal of PROXIED_SIGNALS) process.on(signal, onSignal);
        // Nobody reads the output any more (`| head -1`): the task is not left running for nobody.
        // Its output is no longer held for this process either: what the task writes while it stops goes to the kept logs.
        const credit = new OutputCredit(client, taskId);
        beforeBrokenPipeExit(() => Promise.all([credit.stop(true), cancelTask()]));
        // Watches for the attempt's start before submitting; reads nothing until then.
        const pump = stdin
          ? new StdinPump(client, taskId, process.stdin, (line) => process.stderr.write(`cutter: ${line}\r\n`), {
              terminal: spec.tty !== undefined ? process.stdout : undefined,
            })
          : undefined;
        await pump?.start();
        // Attached: the task's output is held to what this process has written (../output-credit.ts).
        if (spec.kind !== 'ollama') spec.credit = true;
        // Inputs go to the node that accepts the task; outputs come back after it (../io/session.ts).
        const taskIo = new TaskIo(client, taskId, io.inputs, io.outputs, Boolean(flags.json));
        await taskIo.watch();
        // Subscribes before submitting, so no event is missed (shared/client/run-task.ts).
        run = await runTask(client, { taskId, spec, requirements, options });
        // A signal during the submit may have found no task to cancel yet.
        if (signalled) cancel();
        // Forwards (-p): say where the port is reachable, or why not (and then cancel the task).
        let refused: string | undefined;
        if (spec.kind === 'docker' && spec.ports?.length) {
          await watchForwards(client, taskId, (s) => {
            if (s.state === 'open' && !flags.json)
              for (const x of s.forwards)
                process.stderr.write(`cutter: forwarding server port ${x.server} → ${x.target} (container port ${x.container})\n`);
            if (s.state === 'refused' && !refused) {
              refused = s.reason ?? 'refused';
              cancel();
            }
          });
        }
        const outcome = await printTask(run, { json: Boolean(flags.json), narrate: true, credit });
        await credit.stop(outcome.end !== 'terminal');
        await pump?.stop();
        const why = unfinished(outcome);
        if (why || !outcome.state) {
          process.stderr.write(`cutter: ${why}\n`);
          return EXIT_NOT_RUN;
        }
        const f = outcome.state;
        if (refused) {
          if (flags.json) printJson({ ...f, error: { code: 'PORT_FORWARD_REFUSED', message: refused } });
          else process.stderr.write(`cutter: port forward refused, task ${taskId} cancelled: ${refused}\n`);
          return EXIT_NOT_RUN;
        }
        const collectFailed = taskIo.active ? await taskIo.finish() : null;
        if (flags.json) printJson(taskIo.active ? { ...f, io: taskIo.report } : f);
        else if (f.state !== 'succeeded' && f.error && f.error.code !== 'EXIT_CODE')
          process.stderr.write(`cutter: task ${taskId} ${f.state}: ${f.error.message}\n`);
        if (taskIo.active && !flags.json) process.stderr.write(`cutter: ${taskIo.summary()}\n`);
        if (collectFailed) {
          if (!flags.json) process.stderr.write(`cutter: ${collectFailed}\n`);
          return EXIT_NOT_RUN;
        }
        return taskExitCode(f, signalled);
      },
      EXIT_NOT_RUN,
    ),
  );
}
