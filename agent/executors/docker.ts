/**
 * The `docker` executor, through dockerode (Docker Engine API).
 *
 * Facts it relies on (../shared/reference/protocol-facts.md §3, Engine API swagger):
 * - `AutoRemove` hides OOMKilled, so containers are created with AutoRemove off, waited on,
 *   inspected, then removed.
 * - `wait({condition: 'next-exit'})` is registered before `start()` so a fast exit is not missed,
 *   and the output is attached before start so no early line is lost.
 * - With Tty off the attach stream is multiplexed; `modem.demuxStream` splits stdout/stderr.
 * - Images are pulled in ./docker-image.ts.
 * - `stop()` on a stopped container answers 304 and on a removed one 404: both mean "stopped".
 * - Re-adoption (`recover()`): containers carry the cutter labels below, so a restarted agent finds
 *   its own with `listContainers({all: true})`. A running one is attached again without `logs`
 *   (only new output: what it printed while no agent watched is not replayed) and waited on with
 *   `condition: 'not-running'` (which, unlike `next-exit`, returns at once when it has exited in
 *   between); one that exited while the agent was down is inspected (ExitCode, OOMKilled,
 *   StartedAt/FinishedAt) and removed.
 */
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { DockerInfo, DockerSpec } from '../../shared/schemas/index.js';
import { ID_RE } from '../../shared/topics.js';
import { engineMessage, ensureImage, statusCode } from './docker-image.js';
import { type DockerPolicy, dockerViolation, withDockerDefaults } from '../policy.js';
import type { Admission, Executor, ExecutorContext, Fingerprint, Outcome, RecoveredTask, TaskHandle } from './executor.js';

/** Labels on every container cutter creates, so an agent can find its own. */
export const LABEL_TASK = 'io.cutter.task';
export const LABEL_ATTEMPT = 'io.cutter.attempt';
export const LABEL_NODE = 'io.cutter.node';
/** Memory the placement committed to the attempt, bytes (decimal string). */
export const LABEL_MEMORY = 'io.cutter.memory';

/** Docker's RFC 3339 time as ms epoch; undefined for the zero time (`0001-01-01T00:00:00Z`) or garbage. */
function dockerTime(value: string | undefined): number | undefined {
  if (!value || value.startsWith('0001-')) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** What one run (fresh or re-adopted) shares between its supervisor and its handle's stop(). */
interface Run {
  container?: Docker.Container;
  stopRequested: boolean;
  graceMs: number;
  /** Ports to publish (`DockerSpec.ports`). */
  ports?: { container: number; server: number }[];
}

/**
 * Reads the node ports the engine chose for the published container ports
 * (NetworkSettings.Ports["80/tcp"][0].HostPort) and hands them to `ctx.published`.
 */
async function reportPorts(
  container: Docker.Container,
  ports: { container: number; server: number }[],
  ctx: ExecutorContext,
): Promise<void> {
  if (!ctx.published) return;
  try {
    const info = await container.inspect();
    const mapped = ports.flatMap((p) => {
      const host = Number(info.NetworkSettings.Ports?.[`${p.container}/tcp`]?.[0]?.HostPort);
      return Number.isInteger(host) && host > 0 ? [{ container: p.container, host, server: p.server }] : [];
    });
    ctx.published(mapped);
  } catch (err) {
    ctx.output('stderr', Buffer.from(`cutter: cannot read the published ports: ${engineMessage(err)}\n`));
  }
}

/** Stops the run's container; 304 (already stopped) and 404 (gone) count as stopped. */
async function stopContainer(run: Run): Promise<void> {
  if (!run.container) return;
  try {
    await run.container.stop({ t: Math.ceil(run.graceMs / 1000) });
  } catch (err) {
    const code = statusCode(err);
    if (code !== 304 && code !== 404) throw err;
  }
}

/**
 * Runs docker tasks as labelled containers (AutoRemove off: waited on, inspected, removed) and
 * re-adopts the ones a previous agent process of the node left behind (`recover()`).
 */
export class DockerExecutor implements Executor<DockerSpec> {
  readonly kind = 'docker' as const;

  /**
   * @param docker a client; default honours DOCKER_HOST or the local socket.
   * @param policy the node owner's rules for containers; default: any image, no memory cap.
   */
  constructor(
    readonly docker: Docker = new Docker(),
    private readonly policy: DockerPolicy = { allowedImages: [] },
  ) {}

  /**
   * Asks the engine its version (`GET /version`) and how many containers run (`GET /containers/json`).
   * Never throws: an unreachable engine gives `{available: false, error}`.
   */
  async probe(): Promise<DockerInfo> {
    try {
      // listContainers() lists running containers only (the API's `all` defaults to false).
      const [v, running] = await Promise.all([this.docker.version(), this.docker.listContainers().catch(() => null)]);
      return { available: true, version: v.Version, apiVersion: v.ApiVersion, ...(running ? { containersRunning: running.length } : {}) };
    } catch (err) {
      return { available: false, error: `Docker engine not reachable: ${errorMessage(err)}` };
    }
  }

  /** The engine as `capacity.docker` (error cut to the wire's 500 characters); available when it answers. */
  async fingerprint(): Promise<Fingerprint> {
    const info = await this.probe();
    const docker: DockerInfo = {
      available: info.available,
      ...(info.version ? { version: info.version } : {}),
      ...(info.apiVersion ? { apiVersion: info.apiVersion } : {}),
      ...(info.error ? { error: info.error.slice(0, 500) } : {}),
      ...(info.containersRunning !== undefined ? { containersRunning: info.containersRunning } : {}),
    };
    return { available: info.available, ...(info.error ? { error: info.error } : {}), capacity: { docker } };
  }

  /** Fills in the default memory limit, then checks the image and memory rules (agent/policy.ts). */
  admit(spec: DockerSpec): Admission<DockerSpec> {
    const withDefaults = withDockerDefaults(spec, this.policy);
    const denied = dockerViolation(withDefaults, this.policy);
    return denied ? { denied } : { spec: withDefaults };
  }

  start(spec: DockerSpec, ctx: ExecutorContext): TaskHandle {
    const abort = new AbortController();
    const run: Run = { stopRequested: false, graceMs: 3_000, ports: spec.ports };

    const go = async (): Promise<Outcome> => {
      await ensureImage(this.docker, spec.image, ctx, abort.signal);
      if (run.stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');

      ctx.progress({ phase: 'create', message: `creating container from ${spec.image}` });
      try {
        run.container = await this.docker.createContainer({
          name: `cutter-${ctx.taskId}-${ctx.attempt}`,
          Image: spec.image,
          Cmd: spec.cmd.length ? spec.cmd : undefined,
          Entrypoint: spec.entrypoint,
          Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          WorkingDir: spec.workdir,
          User: spec.user,
          Labels: {
            ...spec.labels,
            [LABEL_TASK]: ctx.taskId,
            [LABEL_ATTEMPT]: String(ctx.attempt),
            [LABEL_NODE]: ctx.node,
            [LABEL_MEMORY]: String(ctx.memory),
          },
          ...(spec.ports?.length ? { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p.container}/tcp`, {}])) } : {}),
          Tty: false,
          OpenStdin: false,
          AttachStdout: true,
          AttachStderr: true,
          HostConfig: {
            AutoRemove: false,
            Memory: spec.memoryLimit,
            NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
            // Each port on a free port of the node (HostPort ""), reported after the start.
            ...(spec.ports?.length
              ? { PortBindings: Object.fromEntries(spec.ports.map((p) => [`${p.container}/tcp`, [{ HostPort: '' }]])) }
              : {}),
          },
        });
      } catch (err) {
        throw new CutterError('START_FAILED', `cannot create the container: ${engineMessage(err)}`);
      }
      return this.supervise(run.container, run, ctx, 'start');
    };

    return this.handle(run, go(), abort);
  }

  /**
   * Finds the containers (any state) labelled `io.cutter.node=<node>` and re-adopts each:
   * - running (also paused, restarting): attached again (new output only), waited on, inspected
   *   and removed like a fresh run; `stop()` works on it;
   * - exited (also dead, removing): inspected and removed; `done` resolves with its exit code,
   *   OOMKilled and the engine's StartedAt/FinishedAt;
   * Every container that ran is reported `started` again (ctx.started).
   * - created (the previous agent died between create and start: nothing ran): removed; `done`
   *   rejects with AGENT_SHUTDOWN so the controller can place the attempt again.
   * Containers whose task or attempt label is missing or malformed are left alone.
   * @throws the engine's error when the containers cannot be listed.
   */
  async recover(node: string, makeCtx: (taskId: string, attempt: number, memory: number) => ExecutorContext): Promise<RecoveredTask[]> {
    const found = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL_NODE}=${node}`] } });
    const out: RecoveredTask[] = [];
    for (const info of found) {
      const labels = info.Labels ?? {};
      const taskId = labels[LABEL_TASK];
      const attempt = Number(labels[LABEL_ATTEMPT]);
      const memory = Number(labels[LABEL_MEMORY] ?? 0);
      if (!taskId || !ID_RE.test(taskId) || !Number.isSafeInteger(attempt) || attempt < 1) continue;
      const ctx = makeCtx(taskId, attempt, Number.isSafeInteger(memory) && memory >= 0 ? memory : 0);
      const run: Run = { container: this.docker.getContainer(info.Id), stopRequested: false, graceMs: 3_000 };
      const ref = info.Id.slice(0, 12);
      let done: Promise<Outcome>;
      // A container that ran is reported started again: the previous agent may have died between
      // starting it and saying so, and the task would stay `assigned` (the controller keeps the
      // first start time it heard).
      if (info.State !== 'created') ctx.started(ref);
      switch (info.State) {
        case 'running':
        case 'paused':
        case 'restarting':
          done = this.supervise(run.container!, run, ctx, 'running');
          break;
        case 'created':
          done = (async () => {
            await run.container!.remove({ force: true, v: true }).catch(() => undefined);
            throw new CutterError(
              'AGENT_SHUTDOWN',
              `the agent on ${node} stopped between creating container ${ref} and starting it; nothing ran`,
            );
          })();
          break;
        default:
          done = this.collect(run.container!, ctx);
      }
      // Callers attach their handlers later; do not let an early rejection count as unhandled.
      done.catch(() => undefined);
      out.push({ taskId, attempt, memory: ctx.memory, ref, handle: this.handle(run, done) });
    }
    return out;
  }

  /** Wraps a run into a handle whose stop() aborts a pull and stops the container. */
  private handle(run: Run, done: Promise<Outcome>, abort?: AbortController): TaskHandle {
    return {
      done,
      async stop(ms: number) {
        run.graceMs = ms;
        run.stopRequested = true;
        abort?.abort();
        await stopContainer(run);
      },
    };
  }

  /**
   * Streams a container's output to `ctx`, waits for its exit, inspects and removes it.
   * `mode: 'start'`: a fresh container, attached and waited on before it is started so neither an
   * early line nor a fast exit is missed. `mode: 'running'`: a re-adopted container that runs
   * already: attached for new output only, waited on with `not-running`.
   * @throws CutterError CANCELLED, START_FAILED (fresh) or NODE_LOST (re-adopted, and the engine
   *   lost track of it: its result is unknown); the container is removed either way.
   */
  private async supervise(container: Docker.Container, run: Run, ctx: ExecutorContext, mode: 'start' | 'running'): Promise<Outcome> {
    try {
      let outputEnded: Promise<void> = Promise.resolve();
      try {
        const stream = await container.attach({ stream: true, stdout: true, stderr: true });
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        stdout.on('data', (c: Buffer) => ctx.output('stdout', c));
        stderr.on('data', (c: Buffer) => ctx.output('stderr', c));
        this.docker.modem.demuxStream(stream, stdout, stderr);
        outputEnded = new Promise<void>((resolve) => {
          stream.once('end', resolve);
          stream.once('close', resolve);
          stream.once('error', () => resolve());
        });
      } catch (err) {
        // A re-adopted container may exit between listing and attaching: its result still counts.
        if (mode === 'start') throw err;
      }
      const exited = container.wait({ condition: mode === 'start' ? 'next-exit' : 'not-running' });
      // A failed wait is reported through `await exited` below; do not let it go unhandled meanwhile.
      exited.catch(() => undefined);

      let startedAt: number;
      if (mode === 'start') {
        if (run.stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');
        ctx.progress({ phase: 'start', message: `starting container ${container.id.slice(0, 12)}` });
        try {
          await container.start();
        } catch (err) {
          throw new CutterError('START_FAILED', `cannot start the container: ${engineMessage(err)}`);
        }
        startedAt = Date.now();
        ctx.started(container.id.slice(0, 12));
        if (run.ports?.length) await reportPorts(container, run.ports, ctx);
        // A stop that came while the engine was starting it found nothing running (304): stop it now.
        if (run.stopRequested) await stopContainer(run);
      } else {
        startedAt = 0; // taken from the engine's StartedAt below
      }
      let waited: { StatusCode: number };
      try {
        waited = (await exited) as { StatusCode: number };
      } catch (err) {
        throw new CutterError(
          mode === 'start' ? 'START_FAILED' : 'NODE_LOST',
          `lost track of container ${container.id.slice(0, 12)}: ${engineMessage(err)}`,
        );
      }
      // The attach stream ends right after the exit; bound the wait in case the engine keeps it open.
      await Promise.race([outputEnded, new Promise((r) => setTimeout(r, 2_000))]);
      const info = await container.inspect();
      const finishedAt = Date.now();
      const outcome: Outcome = {
        exitCode: info.State.ExitCode ?? waited.StatusCode,
        oomKilled: info.State.OOMKilled === true,
        cancelled: run.stopRequested,
        startedAt: mode === 'start' ? startedAt : (dockerTime(info.State.StartedAt) ?? finishedAt),
        finishedAt: mode === 'start' ? finishedAt : (dockerTime(info.State.FinishedAt) ?? finishedAt),
      };
      // Removal is off the critical path: the result is reported while the engine cleans up.
      // After a stop it is awaited, so a cancelled (or fenced, or drained) task leaves no container behind.
      const removed = container.remove({ force: true, v: true }).catch(() => undefined);
      if (run.stopRequested) await removed;
      return outcome;
    } catch (err) {
      await container.remove({ force: true, v: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The result of a re-adopted container that exited while no agent watched it: inspected, then
   * removed. Output it printed meanwhile is not replayed.
   * @throws CutterError NODE_LOST when the engine cannot inspect it (its result is unknown).
   */
  private async collect(container: Docker.Container, ctx: ExecutorContext): Promise<Outcome> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (err) {
      throw new CutterError(
        'NODE_LOST',
        `cannot inspect container ${container.id.slice(0, 12)} of task ${ctx.taskId}: ${engineMessage(err)}`,
      );
    }
    const now = Date.now();
    void container.remove({ force: true, v: true }).catch(() => undefined);
    return {
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled === true,
      cancelled: false,
      startedAt: dockerTime(info.State.StartedAt) ?? now,
      finishedAt: dockerTime(info.State.FinishedAt) ?? now,
    };
  }
}
