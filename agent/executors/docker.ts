/**
 * The `docker` executor, through dockerode (Docker Engine API).
 *
 * Facts it relies on (../shared/reference/protocol-facts.md §3, Engine API swagger):
 * - `AutoRemove` hides OOMKilled, so containers are created with AutoRemove off, waited on,
 *   inspected, then removed.
 * - `wait({condition: 'next-exit'})` is registered before `start()` (the engine's response headers
 *   say it is: ./docker-wait.ts) so a fast exit is not missed, and the output is attached before
 *   start so no early line is lost.
 * - With Tty off the attach stream is multiplexed; ./docker-demux.ts splits it. Images: ./docker-image.ts.
 * - `stop()` on a stopped container answers 304 and on a removed one 404: both mean "stopped".
 * - Re-adoption (`recover()`, which says how each state is handled): containers carry the cutter
 *   labels, found with `listContainers({all: true})`; a running one is attached without `logs` and
 *   waited on with `condition: 'not-running'` (returns at once when it exited in between).
 * - The engine may die or hang under a running task (./docker-engine.ts): every engine call is
 *   raced against the engine-down signal and given an abortSignal. A task whose engine went down
 *   waits up to `engineGraceMs` for it: back in time, its container is inspected (running: followed
 *   again; exited: its result collected; gone: EXECUTOR_LOST); not back, the task ends
 *   EXECUTOR_LOST (a node fault: the controller retries it by its restart policy) and its container
 *   is removed once the engine answers again. Meanwhile the fingerprint says unavailable, so the
 *   node offers no docker and refuses docker assignments.
 */
import Docker from 'dockerode';
import { CutterError } from '../../shared/errors.js';
import type { DockerInfo, DockerSpec } from '../../shared/schemas/index.js';
import { ID_RE } from '../../shared/topics.js';
import {
  createOptions,
  dockerTime,
  follow,
  LABEL_ATTEMPT,
  LABEL_MEMORY,
  LABEL_NODE,
  LABEL_TASK,
  outlast,
  reportPorts,
  resizeTty,
  type Run,
  startFailure,
  stopContainer,
} from './docker-container.js';
import { EngineDownError, EngineWatch, type EngineWatchOptions } from './docker-engine.js';
import { EngineFacts } from './docker-platform.js';
import { GpuRuntime, gpusFromLabel } from './docker-gpus.js';
import { engineMessage, ensureImage, statusCode } from './docker-image.js';
import { settleOomKilled } from './docker-oom.js';
import { registerWait } from './docker-wait.js';
import { type DockerPolicy, dockerViolation, withDockerDefaults } from '../policy.js';
import type { Admission, Executor, ExecutorContext, Fingerprint, Outcome, RecoveredTask, TaskHandle } from './executor.js';

export { LABEL_ATTEMPT, LABEL_MEMORY, LABEL_NODE, LABEL_TASK } from './docker-container.js';

/** How long a task waits for its engine to answer again before it ends EXECUTOR_LOST, ms. */
export const ENGINE_GRACE_MS = 30_000;

/** Runs docker tasks as labelled containers; re-adopts those a previous agent left (`recover()`). */
export class DockerExecutor implements Executor<DockerSpec> {
  readonly kind = 'docker' as const;
  /** Whether the engine answers (./docker-engine.ts); started by `watch()`. */
  readonly engine: EngineWatch;
  private readonly engineGraceMs: number;
  /** Containers of tasks that ended while the engine was down: removed when it answers again. */
  private readonly orphans = new Set<string>();
  /** The engine's version, platform, free disk and default log driver (./docker-platform.ts). */
  private readonly facts: EngineFacts;
  /** Whether the engine can give containers GPUs (`docker.gpuError`), ./docker-gpus.ts. */
  private readonly gpuRuntime = new GpuRuntime(() => this.fingerprint());

  /**
   * @param docker a client; default honours DOCKER_HOST or the local socket.
   * @param policy the node owner's rules for containers; default: any image, no memory cap.
   * @param opts `engineGraceMs`: how long a task waits for its engine to return, ms (default 30 s); `watch`: its timings.
   */
  constructor(
    readonly docker: Docker = new Docker(),
    private readonly policy: DockerPolicy = { allowedImages: [] },
    opts: { engineGraceMs?: number; watch?: EngineWatchOptions } = {},
  ) {
    this.engine = new EngineWatch(docker, opts.watch);
    this.engineGraceMs = opts.engineGraceMs ?? ENGINE_GRACE_MS;
    this.facts = new EngineFacts(docker, this.engine);
  }

  /**
   * Starts watching the engine; `onChange` gets the new fingerprint whenever it goes down (at
   * once) or comes back (after a fresh probe). Containers left by tasks that ended while it was
   * down are removed when it comes back.
   * @returns a function that stops the watch.
   */
  watch(onChange: (fp: Fingerprint) => void): () => void {
    this.gpuRuntime.notify = onChange;
    const off = this.engine.onChange((state) => {
      if (!state.up) {
        onChange(this.downFingerprint(state.reason));
        return;
      }
      this.gpuRuntime.clear();
      this.facts.engineBack();
      for (const id of [...this.orphans]) void this.removeContainer(this.docker.getContainer(id));
      void this.fingerprint().then(onChange);
    });
    this.engine.start();
    return () => {
      off();
      this.engine.stop();
    };
  }

  /** The engine's answers for `capacity.docker` (./docker-platform.ts `EngineFacts.probe`); never throws. */
  probe(): Promise<DockerInfo> {
    return this.facts.probe();
  }

  /** The fingerprint of an engine that is down. */
  private downFingerprint(reason: string): Fingerprint {
    const error = reason.slice(0, 500);
    return { available: false, error, capacity: { docker: { available: false, error } } };
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
      ...(info.platform ? { platform: info.platform } : {}),
      ...(info.diskFree !== undefined ? { diskFree: info.diskFree } : {}),
      ...(info.available ? this.gpuRuntime.field() : {}),
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
    const run: Run = { stopRequested: false, graceMs: 3_000, ports: spec.ports, stdin: spec.stdin, tty: spec.tty, stopped: abort };
    const engine = this.engine;

    const go = async (): Promise<Outcome> => {
      await engine.guard((down) => ensureImage(this.docker, spec.image, ctx, AbortSignal.any([abort.signal, down])));
      if (run.stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');

      ctx.progress({ phase: 'create', message: `creating container from ${spec.image}` });
      const body = createOptions(spec, ctx, this.facts.loggingDriver);
      try {
        run.container = await engine.guard((abortSignal) => this.docker.createContainer({ ...body, abortSignal }));
      } catch (err) {
        if (err instanceof EngineDownError) throw err;
        throw new CutterError('START_FAILED', `cannot create the container: ${engineMessage(err)}`);
      }
      return this.supervise(run.container, run, ctx, 'start');
    };

    return this.handle(run, this.lostBeforeStart(go(), ctx), abort);
  }

  /** An engine that went down before the container ran: EXECUTOR_LOST (nothing ran; retried by policy). */
  private async lostBeforeStart(done: Promise<Outcome>, ctx: ExecutorContext): Promise<Outcome> {
    try {
      return await done;
    } catch (err) {
      if (!(err instanceof EngineDownError)) throw err;
      throw new CutterError('EXECUTOR_LOST', `the Docker engine on node ${ctx.node} stopped answering before the task ran: ${err.reason}`);
    }
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
   * @throws the engine's error (or EngineDownError) when the containers cannot be listed.
   */
  async recover(node: string, makeCtx: (taskId: string, attempt: number, memory: number) => ExecutorContext): Promise<RecoveredTask[]> {
    const found = await this.engine.guard((abortSignal) =>
      this.docker.listContainers({ all: true, filters: { label: [`${LABEL_NODE}=${node}`] }, abortSignal }),
    );
    const out: RecoveredTask[] = [];
    for (const info of found) {
      const labels = info.Labels ?? {};
      const taskId = labels[LABEL_TASK];
      const attempt = Number(labels[LABEL_ATTEMPT]);
      const memory = Number(labels[LABEL_MEMORY] ?? 0);
      if (!taskId || !ID_RE.test(taskId) || !Number.isSafeInteger(attempt) || attempt < 1) continue;
      const ctx = makeCtx(taskId, attempt, Number.isSafeInteger(memory) && memory >= 0 ? memory : 0);
      const container = this.docker.getContainer(info.Id);
      const run: Run = { container, stopRequested: false, graceMs: 3_000, stopped: new AbortController() };
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
          done = this.supervise(container, run, ctx, 'running');
          break;
        case 'created':
          done = (async () => {
            await this.removeContainer(container);
            throw new CutterError(
              'AGENT_SHUTDOWN',
              `the agent on ${node} stopped between creating container ${ref} and starting it; nothing ran`,
            );
          })();
          break;
        default:
          done = this.collect(container, ctx);
      }
      // Callers attach their handlers later; do not let an early rejection count as unhandled.
      done.catch(() => undefined);
      out.push({ taskId, attempt, memory: ctx.memory, ref, handle: this.handle(run, done), ...gpusFromLabel(labels) });
    }
    return out;
  }

  /** Wraps a run into a handle whose stop() aborts a pull and stops the container. */
  private handle(run: Run, done: Promise<Outcome>, abort?: AbortController): TaskHandle {
    const engine = this.engine;
    return {
      done,
      async stop(ms: number) {
        run.graceMs = ms;
        run.stopRequested = true;
        abort?.abort();
        run.stopped.abort();
        await stopContainer(engine, run);
      },
    };
  }

  /** Removes a container (force, with its volumes); one the engine cannot remove now is removed when it answers again. */
  private async removeContainer(container: Docker.Container): Promise<void> {
    try {
      await this.engine.guard((abortSignal) => container.remove({ force: true, v: true, abortSignal }));
      this.facts.containersChanged();
      this.orphans.delete(container.id);
    } catch (err) {
      if (statusCode(err) === 404) this.orphans.delete(container.id);
      else if (err instanceof EngineDownError) this.orphans.add(container.id);
    }
  }

  /**
   * Streams a container's output to `ctx`, waits for its exit, inspects and removes it.
   * `mode: 'start'`: a fresh container, attached and waited on before it is started so neither an
   * early line nor a fast exit is missed. `mode: 'running'`: a re-adopted container that runs
   * already: attached for new output only, waited on with `not-running`.
   * @throws CutterError CANCELLED, START_FAILED, COMMAND_NOT_FOUND, COMMAND_NOT_INVOKABLE (fresh), NODE_LOST (re-adopted, and the engine
   *   lost track of it: its result is unknown), EXECUTOR_LOST (the engine went down: `outlast()`);
   *   the container is removed either way (once the engine answers, if it is down).
   */
  private async supervise(container: Docker.Container, run: Run, ctx: ExecutorContext, mode: 'start' | 'running'): Promise<Outcome> {
    const engine = this.engine;
    try {
      let outputEnded: Promise<void> = Promise.resolve();
      try {
        // A re-adopted container's stdin is not attached again: it closed with the previous agent's attach (StdinOnce).
        outputEnded = (await follow(engine, container, ctx, mode === 'start' && run.stdin === true, run.tty !== undefined)).ended;
      } catch (err) {
        // A re-adopted container may exit between listing and attaching: its result still counts.
        if (mode === 'start') throw err;
      }
      // A fresh container starts only once the engine holds its wait, or a fast exit is missed (./docker-wait.ts).
      const waiting = registerWait(engine, container, mode === 'start' ? 'next-exit' : 'not-running');
      const exited = mode === 'start' ? (await waiting).exited : waiting.then((w) => w.exited);
      // A failed wait is reported through `outlast()` below; do not let it go unhandled meanwhile.
      exited.catch(() => undefined);

      let startedAt: number;
      if (mode === 'start') {
        if (run.stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');
        ctx.progress({ phase: 'start', message: `starting container ${container.id.slice(0, 12)}` });
        try {
          await engine.guard((abortSignal) => container.start({ abortSignal }));
          this.facts.containersChanged();
        } catch (err) {
          if (err instanceof EngineDownError) throw err;
          if (ctx.gpus?.length) this.gpuRuntime.check(ctx.node, engineMessage(err));
          throw await startFailure(engine, container, err);
        }
        startedAt = Date.now();
        // The size the terminal had at submit (`-t`); later sizes come as stdin window-size frames.
        if (run.tty) await resizeTty(container, run.tty.rows, run.tty.cols);
        ctx.started(container.id.slice(0, 12));
        if (run.ports?.length) await reportPorts(engine, container, run.ports, ctx);
        // A stop that came while the engine was starting it found nothing running (304): stop it now.
        if (run.stopRequested) await stopContainer(engine, run);
      } else {
        startedAt = 0; // taken from the engine's StartedAt below
      }
      let waited: { StatusCode: number };
      try {
        waited = await outlast(
          { engine, docker: this.docker, graceMs: this.engineGraceMs, orphans: this.orphans },
          container,
          exited,
          run,
          ctx,
          (ended) => (outputEnded = ended),
        );
      } catch (err) {
        if (err instanceof CutterError) throw err;
        throw new CutterError(
          mode === 'start' ? 'START_FAILED' : 'NODE_LOST',
          `lost track of container ${container.id.slice(0, 12)}: ${engineMessage(err)}`,
        );
      }
      // The attach stream ends right after the exit; bound the wait in case the engine keeps it open.
      await Promise.race([outputEnded, new Promise((r) => setTimeout(r, 2_000))]);
      // An engine that goes down now still gave the exit code: the rest is told from it.
      const inspect = () =>
        engine
          .guard((abortSignal) => container.inspect({ abortSignal }))
          .catch((err) => {
            if (err instanceof EngineDownError) return undefined;
            throw err;
          });
      const info = await settleOomKilled(await inspect(), inspect, run.stopRequested);
      const finishedAt = Date.now();
      const outcome: Outcome = {
        exitCode: info?.State.ExitCode ?? waited.StatusCode,
        oomKilled: info?.State.OOMKilled === true,
        cancelled: run.stopRequested,
        startedAt: mode === 'start' ? startedAt : (dockerTime(info?.State.StartedAt) ?? finishedAt),
        finishedAt: mode === 'start' ? finishedAt : (dockerTime(info?.State.FinishedAt) ?? finishedAt),
      };
      // Removal is off the critical path: the result is reported while the engine cleans up.
      // After a stop it is awaited, so a cancelled (or fenced, or drained) task leaves no container behind.
      const removed = this.removeContainer(container);
      if (run.stopRequested) await removed;
      return outcome;
    } catch (err) {
      await this.removeContainer(container);
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
      info = await this.engine.guard((abortSignal) => container.inspect({ abortSignal }));
    } catch (err) {
      throw new CutterError(
        'NODE_LOST',
        `cannot inspect container ${container.id.slice(0, 12)} of task ${ctx.taskId}: ${err instanceof EngineDownError ? err.reason : engineMessage(err)}`,
      );
    }
    const now = Date.now();
    void this.removeContainer(container);
    return {
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled === true,
      cancelled: false,
      startedAt: dockerTime(info.State.StartedAt) ?? now,
      finishedAt: dockerTime(info.State.FinishedAt) ?? now,
    };
  }
}
