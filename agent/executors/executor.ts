/**
 * The one interface every executor (docker, exec, ollama) implements, after Nomad's driver
 * plugin (`plugins/drivers/driver.go`): `probe()` feeds the node's capacity, `start()` returns a
 * handle whose output and progress stream out through the context, `stop(grace)` cancels, and the
 * optional `recover()` (Nomad's RecoverTask) re-adopts what survived an agent restart.
 */
import type { TaskKind, TaskSpec } from '../../shared/schemas/index.js';

/** Where an executor sends what happens while a task runs. */
export interface ExecutorContext {
  taskId: string;
  attempt: number;
  node: string;
  /**
   * Memory the placement committed to this attempt, bytes (the assignment's
   * `requirements.memory`; 0 when none). Executors that can re-adopt a task keep it with the
   * workload (Docker: the `io.cutter.memory` label) so a restarted agent reports it again.
   */
  memory: number;
  /** Raw output; the agent batches it into log events. */
  output(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Long preparatory work (image pulls): bytes done / total when known. */
  progress(p: { phase: 'pull' | 'create' | 'start'; message: string; current?: number; total?: number }): void;
  /**
   * Structured output (ollama: each response object of Ollama's stream, verbatim); the agent
   * batches them by time into `chunks` events. Absent in contexts that take only raw output.
   */
  chunk?(obj: Record<string, unknown>): void;
  /** The workload is running now; `ref` is the container id or pid. */
  started(ref: string): void;
  /** Container ports published on the node (docker tasks with `ports`): node port per container port. */
  published?(ports: { container: number; host: number; server: number }[]): void;
}

/** How a run ended. Times are ms epoch. */
export interface Outcome {
  exitCode: number;
  /** The kernel's OOM killer ended it (Docker's State.OOMKilled); false for exec. */
  oomKilled: boolean;
  /** It ended because stop() was called. */
  cancelled: boolean;
  startedAt: number;
  finishedAt: number;
}

/** A started (or re-adopted) task. */
export interface TaskHandle {
  /**
   * Resolves when the workload has exited (any exit code).
   * Rejects with a CutterError when it could not run: IMAGE_PULL_FAILED, START_FAILED, CANCELLED
   * (stopped before it started); for a re-adopted task also AGENT_SHUTDOWN (the previous agent
   * died between creating and starting it: nothing ran) and NODE_LOST (the engine lost track of
   * it, so its result is unknown).
   */
  readonly done: Promise<Outcome>;
  /** Asks the workload to stop: SIGTERM, then SIGKILL after `graceMs`. Safe to call more than once. */
  stop(graceMs: number): Promise<void>;
}

/**
 * A task a previous agent process started on this node that is still known to the executor:
 * running, or exited while no agent watched it (its result not yet reported).
 */
export interface RecoveredTask {
  taskId: string;
  attempt: number;
  /** Memory the placement committed to the attempt, bytes (0 when the workload does not say). */
  memory: number;
  /**
   * Supervises the workload exactly like a fresh start: `done` resolves with its outcome (at once
   * for one that already exited), `stop()` stops it, output from now on goes to the context.
   */
  handle: TaskHandle;
  /** The container id (12 hex digits) or pid, for logs. */
  ref: string;
}

/** What probe() found. */
export interface ExecutorProbe {
  available: boolean;
  version?: string;
  apiVersion?: string;
  error?: string;
  /** Containers running on the engine now (docker executor). */
  containersRunning?: number;
}

export interface Executor<S extends TaskSpec = TaskSpec> {
  readonly kind: TaskKind;
  /** Checks the executor can run work here now (engine reachable, …). Never throws. */
  probe(): Promise<ExecutorProbe>;
  /** Starts a task. Never throws: failures surface through `handle.done`. */
  start(spec: S, ctx: ExecutorContext): TaskHandle;
  /**
   * Re-adopts the tasks a previous agent process of `node` left behind (Nomad's RecoverTask).
   * Called once at agent start, before any assignment is handled. For each workload found it
   * calls `makeCtx(taskId, attempt, memory)` (memory in bytes) for the context that workload's
   * output streams into, then returns it with its handle. Workloads that are not cutter's or
   * belong to another node are left alone. Absent when the executor cannot re-adopt (exec).
   * @throws when the executor's backend cannot be asked (engine unreachable); nothing is touched then.
   */
  recover?(node: string, makeCtx: (taskId: string, attempt: number, memory: number) => ExecutorContext): Promise<RecoveredTask[]>;
}
