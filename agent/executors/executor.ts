/**
 * The one interface every executor (docker, exec, later ollama) implements, after Nomad's driver
 * plugin (`plugins/drivers/driver.go`): `probe()` feeds the node's capacity, `start()` returns a
 * handle whose output and progress stream out through the context, `stop(grace)` cancels.
 */
import type { TaskKind, TaskSpec } from '../../shared/schemas/index.js';

/** Where an executor sends what happens while a task runs. */
export interface ExecutorContext {
  taskId: string;
  attempt: number;
  node: string;
  /** Raw output; the agent batches it into log events. */
  output(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Long preparatory work (image pulls): bytes done / total when known. */
  progress(p: { phase: 'pull' | 'create' | 'start'; message: string; current?: number; total?: number }): void;
  /** The workload is running now; `ref` is the container id or pid. */
  started(ref: string): void;
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

/** A started task. */
export interface TaskHandle {
  /**
   * Resolves when the workload has exited (any exit code).
   * Rejects with a CutterError when it could not run: IMAGE_PULL_FAILED, START_FAILED, CANCELLED
   * (stopped before it started).
   */
  readonly done: Promise<Outcome>;
  /** Asks the workload to stop: SIGTERM, then SIGKILL after `graceMs`. Safe to call more than once. */
  stop(graceMs: number): Promise<void>;
}

/** What probe() found. */
export interface ExecutorProbe {
  available: boolean;
  version?: string;
  apiVersion?: string;
  error?: string;
}

export interface Executor<S extends TaskSpec = TaskSpec> {
  readonly kind: TaskKind;
  /** Checks the executor can run work here now (engine reachable, …). Never throws. */
  probe(): Promise<ExecutorProbe>;
  /** Starts a task. Never throws: failures surface through `handle.done`. */
  start(spec: S, ctx: ExecutorContext): TaskHandle;
}
