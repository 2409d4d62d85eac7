/**
 * The `docker` executor, through dockerode (Docker Engine API).
 *
 * Facts it relies on (../shared/reference/protocol-facts.md §3, Engine API swagger):
 * - `AutoRemove` hides OOMKilled, so containers are created with AutoRemove off, waited on,
 *   inspected, then removed.
 * - `wait({condition: 'next-exit'})` is registered before `start()` so a fast exit is not missed,
 *   and the output is attached before start so no early line is lost.
 * - With Tty off the attach stream is multiplexed; `modem.demuxStream` splits stdout/stderr.
 * - `pull()` resolves with the progress stream before the pull is done, and `followProgress`
 *   reports `{"error": …}` lines as ordinary events: every event is checked for `error`.
 * - `stop()` on a stopped container answers 304 and on a removed one 404: both mean "stopped".
 */
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { DockerSpec } from '../../shared/schemas/index.js';
import type { Executor, ExecutorContext, ExecutorProbe, Outcome, TaskHandle } from './executor.js';

/** Labels on every container cutter creates, so an agent can find its own. */
export const LABEL_TASK = 'io.cutter.task';
export const LABEL_ATTEMPT = 'io.cutter.attempt';
export const LABEL_NODE = 'io.cutter.node';

/** Minimum ms between two pull progress events. */
const PROGRESS_INTERVAL_MS = 250;

type ProgressEvent = { status?: string; id?: string; progressDetail?: { current?: number; total?: number }; error?: string; errorDetail?: { message?: string } };

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

export class DockerExecutor implements Executor<DockerSpec> {
  readonly kind = 'docker' as const;

  /** @param docker a client; default honours DOCKER_HOST or the local socket. */
  constructor(readonly docker: Docker = new Docker()) {}

  async probe(): Promise<ExecutorProbe> {
    try {
      const v = await this.docker.version();
      return { available: true, version: v.Version, apiVersion: v.ApiVersion };
    } catch (err) {
      return { available: false, error: `Docker engine not reachable: ${errorMessage(err)}` };
    }
  }

  start(spec: DockerSpec, ctx: ExecutorContext): TaskHandle {
    const abort = new AbortController();
    let container: Docker.Container | undefined;
    let stopRequested = false;
    let graceMs = 3_000;

    const stopContainer = async () => {
      if (!container) return;
      try {
        await container.stop({ t: Math.ceil(graceMs / 1000) });
      } catch (err) {
        const code = statusCode(err);
        if (code !== 304 && code !== 404) throw err;
      }
    };

    const run = async (): Promise<Outcome> => {
      await this.ensureImage(spec.image, ctx, abort.signal);
      if (stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');

      ctx.progress({ phase: 'create', message: `creating container from ${spec.image}` });
      try {
        container = await this.docker.createContainer({
          name: `cutter-${ctx.taskId}-${ctx.attempt}`,
          Image: spec.image,
          Cmd: spec.cmd.length ? spec.cmd : undefined,
          Entrypoint: spec.entrypoint,
          Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          WorkingDir: spec.workdir,
          User: spec.user,
          Labels: { ...spec.labels, [LABEL_TASK]: ctx.taskId, [LABEL_ATTEMPT]: String(ctx.attempt), [LABEL_NODE]: ctx.node },
          Tty: false,
          OpenStdin: false,
          AttachStdout: true,
          AttachStderr: true,
          HostConfig: {
            AutoRemove: false,
            Memory: spec.memoryLimit,
            NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
          },
        });
      } catch (err) {
        throw new CutterError('START_FAILED', `cannot create the container: ${(err as { json?: { message?: string } }).json?.message ?? errorMessage(err)}`);
      }

      try {
        const stream = await container.attach({ stream: true, stdout: true, stderr: true });
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        stdout.on('data', (c: Buffer) => ctx.output('stdout', c));
        stderr.on('data', (c: Buffer) => ctx.output('stderr', c));
        this.docker.modem.demuxStream(stream, stdout, stderr);
        const outputEnded = new Promise<void>((resolve) => {
          stream.once('end', resolve);
          stream.once('close', resolve);
          stream.once('error', () => resolve());
        });
        const exited = container.wait({ condition: 'next-exit' });

        if (stopRequested) throw new CutterError('CANCELLED', 'cancelled before the container started');
        ctx.progress({ phase: 'start', message: `starting container ${container.id.slice(0, 12)}` });
        try {
          await container.start();
        } catch (err) {
          throw new CutterError('START_FAILED', `cannot start the container: ${(err as { json?: { message?: string } }).json?.message ?? errorMessage(err)}`);
        }
        const startedAt = Date.now();
        ctx.started(container.id.slice(0, 12));
        const waited = (await exited) as { StatusCode: number };
        // The attach stream ends right after the exit; bound the wait in case the engine keeps it open.
        await Promise.race([outputEnded, new Promise((r) => setTimeout(r, 2_000))]);
        const info = await container.inspect();
        const outcome = {
          exitCode: info.State.ExitCode ?? waited.StatusCode,
          oomKilled: info.State.OOMKilled === true,
          cancelled: stopRequested,
          startedAt,
          finishedAt: Date.now(),
        };
        // Removal is off the critical path: the result is reported while the engine cleans up.
        void container.remove({ force: true, v: true }).catch(() => undefined);
        return outcome;
      } catch (err) {
        await container.remove({ force: true, v: true }).catch(() => undefined);
        throw err;
      }
    };

    return {
      done: run(),
      async stop(ms: number) {
        graceMs = ms;
        stopRequested = true;
        abort.abort();
        await stopContainer();
      },
    };
  }

  /**
   * Makes sure the image is on this engine, pulling it with progress when it is not.
   * @throws CutterError IMAGE_PULL_FAILED with the registry's message.
   */
  private async ensureImage(image: string, ctx: ExecutorContext, signal: AbortSignal): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (err) {
      if (statusCode(err) !== 404) throw new CutterError('START_FAILED', `cannot inspect image ${image}: ${errorMessage(err)}`);
    }
    ctx.progress({ phase: 'pull', message: `image ${image} is not on ${ctx.node}: pulling` });
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
    } catch (err) {
      throw new CutterError('IMAGE_PULL_FAILED', `image ${image} is not on node ${ctx.node} and cannot be pulled: ${(err as { json?: { message?: string } }).json?.message ?? errorMessage(err)}`);
    }
    const layers = new Map<string, { current: number; total: number }>();
    let lastSent = 0;
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      this.docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (err || failure) reject(new CutterError('IMAGE_PULL_FAILED', `pulling ${image} failed: ${failure ?? errorMessage(err)}`));
          else resolve();
        },
        (event: ProgressEvent) => {
          if (event.error || event.errorDetail?.message) {
            failure = event.errorDetail?.message ?? event.error;
            return;
          }
          if (event.id && event.progressDetail?.total) layers.set(event.id, { current: event.progressDetail.current ?? 0, total: event.progressDetail.total });
          const now = Date.now();
          if (now - lastSent < PROGRESS_INTERVAL_MS) return;
          lastSent = now;
          let current = 0;
          let total = 0;
          for (const l of layers.values()) {
            current += l.current;
            total += l.total;
          }
          ctx.progress({ phase: 'pull', message: `${event.id ? `${event.id}: ` : ''}${event.status ?? 'pulling'}`, ...(total ? { current, total } : {}) });
        },
      );
    });
    ctx.progress({ phase: 'pull', message: `pulled ${image}` });
  }
}
