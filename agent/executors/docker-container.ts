/**
 * The parts of the `docker` executor (./docker.ts) that handle one container: its create options
 * and labels, its output, its ports, stopping it, and waiting for its exit through outages of the
 * engine (./docker-engine.ts). Facts: see ./docker.ts.
 */
import type { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { CutterError } from '../../shared/errors.js';
import type { DockerSpec } from '../../shared/schemas/index.js';
import { EngineDownError, type EngineWatch } from './docker-engine.js';
import { DockerDemux } from './docker-demux.js';
import { deviceRequests, gpusLabel } from './docker-gpus.js';
import { logConfig } from './docker-logging.js';
import { engineMessage, statusCode } from './docker-image.js';
import type { ExecutorContext } from './executor.js';
import { forwardOutput } from '../output-window.js';

/**
 * Deadline of the fingerprint's calls (version, list), ms. A task's calls have none: a busy engine
 * may take seconds to create or start a container; they are raced against the engine-down signal.
 */
export const CALL_MS = 10_000;

/** Labels on every container cutter creates, so an agent can find its own. */
export const LABEL_TASK = 'io.cutter.task';
export const LABEL_ATTEMPT = 'io.cutter.attempt';
export const LABEL_NODE = 'io.cutter.node';
/** Memory the placement committed to the attempt, bytes (decimal string). */
export const LABEL_MEMORY = 'io.cutter.memory';

/** Docker's RFC 3339 time as ms epoch; undefined for the zero time (`0001-01-01T00:00:00Z`) or garbage. */
export function dockerTime(value: string | undefined): number | undefined {
  if (!value || value.startsWith('0001-')) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** What one run (fresh or re-adopted) shares between its supervisor and its handle's stop(). */
export interface Run {
  container?: Docker.Container;
  stopRequested: boolean;
  graceMs: number;
  /** Ports to publish (`DockerSpec.ports`). */
  ports?: { container: number; server: number }[];
  /** Attach the container's stdin (`DockerSpec.stdin`, `-i`). */
  stdin?: boolean;
  /** The container has a TTY (`DockerSpec.tty`, `-t`), and its size at submit. */
  tty?: { rows: number; cols: number };
  /** Aborted by the handle's stop(): a task waiting for its engine stops waiting. */
  stopped: AbortController;
}

/**
 * The Engine API's create body for a task's container (labelled, AutoRemove off, ports on free node
 * ports, the log driver of ./docker-logging.ts).
 * @param engineLogDriver the engine's default log driver (`GET /info`), null when not known.
 */
export function createOptions(
  spec: DockerSpec,
  ctx: ExecutorContext,
  engineLogDriver: string | null = null,
): Docker.ContainerCreateOptions {
  const logging = logConfig(spec, engineLogDriver);
  return {
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
      ...gpusLabel(ctx.gpus),
    },
    ...(spec.ports?.length ? { ExposedPorts: Object.fromEntries(spec.ports.map((p) => [`${p.container}/tcp`, {}])) } : {}),
    // -t: one raw output stream (no multiplexing), stderr merged into stdout.
    Tty: spec.tty !== undefined,
    // -i, like `docker run -i`: stdin open, closed after the first attached client ends it (EOF).
    OpenStdin: spec.stdin === true,
    StdinOnce: spec.stdin === true,
    AttachStdin: spec.stdin === true,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      AutoRemove: false,
      ...(logging ? { LogConfig: logging } : {}),
      Memory: spec.memoryLimit,
      NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
      // The GPUs reserved for the attempt, by UUID (./docker-gpus.ts).
      ...(ctx.gpus?.length ? { DeviceRequests: deviceRequests(ctx.gpus) } : {}),
      // Volumes and allowed host paths, resolved to absolute directories by agent/volumes/resolve.ts.
      ...(spec.mounts?.length
        ? { Mounts: spec.mounts.map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: m.readOnly === true })) }
        : {}),
      // Each port on a free port of the node (HostPort ""), reported after the start.
      ...(spec.ports?.length
        ? { PortBindings: Object.fromEntries(spec.ports.map((p) => [`${p.container}/tcp`, [{ HostPort: '' }]])) }
        : {}),
    },
  };
}

/** What `outlast()` needs from the executor. */
export interface OutageDeps {
  engine: EngineWatch;
  docker: Docker;
  /** How long to wait for the engine to come back, ms. */
  graceMs: number;
  /** Containers to remove once the engine answers again (ids). */
  orphans: Set<string>;
}

/**
 * Reads the node ports the engine chose for the published container ports
 * (NetworkSettings.Ports["80/tcp"][0].HostPort) and hands them to `ctx.published`.
 */
export async function reportPorts(
  engine: EngineWatch,
  container: Docker.Container,
  ports: { container: number; server: number }[],
  ctx: ExecutorContext,
): Promise<void> {
  if (!ctx.published) return;
  try {
    const info = await engine.guard((abortSignal) => container.inspect({ abortSignal }));
    const mapped = ports.flatMap((p) => {
      const host = Number(info.NetworkSettings.Ports?.[`${p.container}/tcp`]?.[0]?.HostPort);
      return Number.isInteger(host) && host > 0 ? [{ container: p.container, host, server: p.server }] : [];
    });
    ctx.published(mapped);
  } catch (err) {
    ctx.output('stderr', Buffer.from(`cutter: cannot read the published ports: ${engineMessage(err)}\n`));
  }
}

/**
 * The error a task whose container would not start fails with. The engine records a command the
 * runtime could not exec in the container's State.ExitCode, as a shell does: 127 (not found:
 * COMMAND_NOT_FOUND) or 126 (not executable, a directory: COMMAND_NOT_INVOKABLE); anything else is
 * START_FAILED. The message keeps the runtime's `exec: "CMD": why` part when it has one.
 * @throws EngineDownError when the engine went down meanwhile.
 */
export async function startFailure(engine: EngineWatch, container: Docker.Container, err: unknown): Promise<CutterError> {
  const message = engineMessage(err);
  const exitCode = await engine
    .guard((abortSignal) => container.inspect({ abortSignal }))
    .then(
      (info) => info.State.ExitCode,
      (e) => {
        if (e instanceof EngineDownError) throw e;
        return undefined;
      },
    );
  const code = exitCode === 127 ? 'COMMAND_NOT_FOUND' : exitCode === 126 ? 'COMMAND_NOT_INVOKABLE' : undefined;
  if (!code) return new CutterError('START_FAILED', `cannot start the container: ${message}`);
  const exec = /exec: "[^"]*": .*?(?=: unknown$|$)/.exec(message)?.[0];
  return new CutterError(code, exec ?? `cannot start the container: ${message}`);
}

/**
 * Stops the run's container; 304 (already stopped) and 404 (gone) count as stopped, and so does
 * an engine that is down (the task's supervisor ends it EXECUTOR_LOST).
 */
export async function stopContainer(engine: EngineWatch, run: Run): Promise<void> {
  const container = run.container;
  if (!container) return;
  try {
    await engine.guard((abortSignal) => container.stop({ t: Math.ceil(run.graceMs / 1000), abortSignal }));
  } catch (err) {
    const code = statusCode(err);
    if (code !== 304 && code !== 404 && !(err instanceof EngineDownError)) throw err;
  }
}

/**
 * Attaches to the container's output (new output only for one that runs) and streams it to `ctx`.
 * With `stdin` (a fresh `-i` container, attached before its start) the attach also takes stdin:
 * hijacked (`Upgrade: tcp`, docker-modem hands back the raw socket, whose `end()` is the
 * half-close the engine turns into EOF; facts §2), and the socket goes to `ctx.stdin`. docker-modem
 * writes the options' JSON as the request body with a Content-Length (that write also sends the
 * headers: an attach without a body is never sent), so the engine reads it as the body, not as
 * stdin; the query is given as `_query` so only the attach parameters go into it.
 * @returns once attached, with `ended`: resolves when the output ends.
 * @throws the engine's error, EngineDownError.
 */
export async function follow(
  engine: EngineWatch,
  container: Docker.Container,
  ctx: ExecutorContext,
  stdin = false,
  tty = false,
): Promise<{ ended: Promise<void> }> {
  const stream = await engine.guard((abortSignal) =>
    stdin
      ? container.attach({
          _query: { stream: true, stdin: true, stdout: true, stderr: true },
          stream: true,
          stdin: true,
          stdout: true,
          stderr: true,
          hijack: true,
          abortSignal,
        } as Docker.ContainerAttachOptions)
      : container.attach({ stream: true, stdout: true, stderr: true, abortSignal }),
  );
  if (stdin) ctx.stdin?.(stream as unknown as Writable, (rows, cols) => void resizeTty(container, rows, cols));
  // When the mesh is behind, the attach stream is not read: the engine stops reading the container's
  // output and the container blocks on its own writes (agent/output-window.ts).
  const emit = (name: 'stdout' | 'stderr', c: Buffer) => forwardOutput(ctx, stream, name, c);
  if (tty) {
    // A TTY's stream is raw bytes: no frame headers to take apart (a first byte 0-2 would fool the demuxer).
    stream.on('data', (c: Buffer) => emit('stdout', c));
  } else {
    const demux = new DockerDemux(emit);
    stream.on('data', (c: Buffer) => demux.write(c));
  }
  const ended = new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  return { ended };
}

/**
 * Sets a TTY container's window size (`POST /containers/{id}/resize?h=&w=`; dockerode
 * `container.resize`). A size of 0 (unknown) and the engine's refusal (the container has exited)
 * are ignored: the size is a nicety, never a reason to fail the task.
 */
export async function resizeTty(container: Docker.Container, rows: number, cols: number): Promise<void> {
  if (rows <= 0 || cols <= 0) return;
  await container.resize({ h: rows, w: cols }).catch(() => undefined);
}

/**
 * Waits for the container's exit through outages of the engine: when it goes down, waits up to
 * `engineGraceMs` for it; back in time, inspects the container (running: followed again and
 * waited on; exited: its exit code). The wait's own errors (not the engine's) are rethrown.
 * @throws CutterError EXECUTOR_LOST when the engine is not back in time (the container is
 *   removed when it is), or the container is gone when it is; CANCELLED when stopped meanwhile.
 */
export async function outlast(
  deps: OutageDeps,
  container: Docker.Container,
  first: Promise<{ StatusCode: number }>,
  run: Run,
  ctx: ExecutorContext,
  onFollow: (ended: Promise<void>) => void,
): Promise<{ StatusCode: number }> {
  const ref = container.id.slice(0, 12);
  const where = `the Docker engine on node ${ctx.node}`;
  let pending = first;
  let deadline: number | undefined;
  for (;;) {
    let down: EngineDownError;
    try {
      return await pending;
    } catch (err) {
      if (!(err instanceof EngineDownError)) throw err;
      down = err;
    }
    if (deadline === undefined) {
      const state = deps.engine.state;
      deadline = (state.up ? Date.now() : state.since) + deps.graceMs;
      ctx.output(
        'stderr',
        Buffer.from(`cutter: ${where} stopped answering (${down.reason}); waiting up to ${deps.graceMs / 1000} s for it\n`),
      );
    }
    if (!(await deps.engine.waitUp(deadline! - Date.now(), run.stopped.signal))) {
      deps.orphans.add(container.id);
      if (run.stopRequested)
        throw new CutterError(
          'CANCELLED',
          `stopped while ${where} was down (${down.reason}); container ${ref} is removed when it answers again`,
        );
      throw new CutterError(
        'EXECUTOR_LOST',
        `${where} did not answer again within ${deps.graceMs / 1000} s (${down.reason}); the task's result is unknown and container ${ref} is removed when it answers again`,
      );
    }
    let info: Docker.ContainerInspectInfo;
    try {
      info = await deps.engine.guard((abortSignal) => container.inspect({ abortSignal }));
    } catch (err) {
      if (err instanceof EngineDownError) {
        pending = Promise.reject(err);
        continue;
      }
      if (statusCode(err) === 404)
        throw new CutterError('EXECUTOR_LOST', `container ${ref} is gone after ${where} came back; the task's result is unknown`);
      throw err;
    }
    if (!info.State.Running) return { StatusCode: info.State.ExitCode };
    ctx.output('stderr', Buffer.from(`cutter: ${where} answers again; container ${ref} still runs\n`));
    // Not awaited through: `ended` resolves only when the output ends.
    const followed = await follow(deps.engine, container, ctx, false, run.tty !== undefined).catch(() => undefined);
    if (followed) onFollow(followed.ended);
    pending = deps.engine.guard((abortSignal) => container.wait({ condition: 'not-running', abortSignal }));
  }
}
