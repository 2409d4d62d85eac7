/**
 * The one interface every executor (docker, exec, ollama) implements, after Nomad's driver
 * plugin (`plugins/drivers/driver.go`: Fingerprint, StartTask, WaitTask, StopTask, RecoverTask;
 * the idea, not the code):
 * - `fingerprint()` (Fingerprint) says whether the executor can run tasks here now and what it
 *   adds to the node's announced capacity; the agent merges every executor's fingerprint into its
 *   NodeStatus (agent/capacity.ts) and offers only the kinds whose fingerprint is available;
 * - `admit(spec)` applies the node owner's policy for this kind (Nomad keeps such rules in the
 *   driver's config too: docker `allow_privileged`, raw_exec `enabled`);
 * - `start(spec, ctx)` (StartTask) returns a handle: `done` is WaitTask, `stop(grace)` StopTask;
 * - the optional `recover()` (RecoverTask) re-adopts what survived an agent restart.
 * The agent dispatches by `spec.kind` through agent/executors/registry.ts and has no per-kind code.
 */
import type { Writable } from 'node:stream';
import type { Capacity, TaskKind, TaskSpec } from '../../shared/schemas/index.js';

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
  /**
   * Raw output; the agent batches it into log events.
   * @returns false when the mesh is behind (agent/output-window.ts): stop reading the workload's
   *   output until `drained()` resolves, so it blocks on its own pipe instead of the agent's
   *   memory growing. Output given while paused is still sent.
   */
  output(stream: 'stdout' | 'stderr', chunk: Buffer): boolean;
  /** Resolves when output may be read again after `output()` returned false. */
  drained?(): Promise<void>;
  /** Long preparatory work (image pulls): bytes done / total when known. */
  progress(p: { phase: 'pull' | 'create' | 'start'; message: string; current?: number; total?: number }): void;
  /**
   * Structured output (ollama: each response object of Ollama's stream, verbatim); the agent
   * batches them by time into `chunks` events. Absent in contexts that take only raw output.
   */
  chunk?(obj: Record<string, unknown>): void;
  /**
   * A task whose spec asks for `stdin` hands over the workload's stdin (the container's attached
   * stream, the process's pipe) before it calls `started`: the agent writes what the submitter
   * streams into it and ends it at EOF (agent/stdin.ts); `resize` sets the TTY's window size (`-t`).
   * Absent in contexts without stdin.
   */
  stdin?(stream: Writable, resize?: (rows: number, cols: number) => void): void;
  /** The workload is running now; `ref` is the container id or pid. */
  started(ref: string): void;
  /** Container ports published on the node (docker tasks with `ports`): node port per container port. */
  published?(ports: { container: number; host: number; server: number }[]): void;
  /**
   * UUIDs of the GPUs the controller reserved for this attempt (the assignment's `gpus`); the
   * executor gives the workload these and no others. Absent: none.
   */
  gpus?: readonly string[];
}

/** How a run ended. Times are ms epoch. */
export interface Outcome {
  exitCode: number;
  /** The kernel's OOM killer killed it or one of its processes (Docker's State.OOMKilled; exec: its cgroup's `oom_kill` count). */
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
   * Rejects with a CutterError when it could not run: IMAGE_PULL_FAILED, START_FAILED,
   * COMMAND_NOT_FOUND / COMMAND_NOT_INVOKABLE (its command is missing / cannot be executed), CANCELLED
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
  /** UUIDs of the GPUs the workload was given (Docker: the `io.cutter.gpus` label); absent: none. */
  gpus?: string[];
}

/**
 * What an executor adds to the node's announced capacity (NodeStatus `capacity`, shared/schemas/node.ts):
 * docker its engine (`docker`), ollama its server's models (`ollama`), exec the limits it can enforce (`exec`).
 */
export type ExecutorCapacity = Partial<Pick<Capacity, 'docker' | 'ollama' | 'exec'>>;

/** What an executor says it can do now (Nomad's `Fingerprint`: attributes plus health). */
export interface Fingerprint {
  /** It can run tasks here now; only available kinds are in the node's `offer.executors`. */
  available: boolean;
  /**
   * Turned off by the node's owner (exec on an agent started without --allow-exec), as opposed to
   * failing: an assignment of this kind is refused EXECUTOR_DISABLED instead of EXECUTOR_UNAVAILABLE.
   */
  disabled?: boolean;
  /** Why it is not available, one line a user can act on (the refusal's message). */
  error?: string;
  /** Its part of the node's capacity; merged with the other executors' parts (agent/capacity.ts). */
  capacity?: ExecutorCapacity;
}

/** What `admit()` decided: the spec to run (the policy's defaults filled in), or the rule that refuses it. */
export type Admission<S extends TaskSpec = TaskSpec> = { spec: S } | { denied: string };

/**
 * One kind of task runner on a node (Nomad's DriverPlugin). The agent holds them in an
 * ExecutorRegistry (agent/executors/registry.ts) and reaches them only through this interface.
 */
export interface Executor<S extends TaskSpec = TaskSpec> {
  /** The task kind it runs (`spec.kind`); one executor per kind on a node. */
  readonly kind: TaskKind;
  /**
   * Whether the node status goes out again as soon as one of its tasks has started (default
   * true), so the controller sees the task without waiting for the next heartbeat.
   */
  readonly announceOnStart?: boolean;
  /**
   * Probes what it can do now (engine reachable, server's models, …). Should not throw; the
   * registry reports one that throws or hangs as unavailable and goes on.
   */
  fingerprint(): Promise<Fingerprint>;
  /**
   * Optional: starts watching the executor's backend and calls `onChange` with a new fingerprint as
   * soon as it changes (docker: the engine died, hung or came back), so the node can say so at once
   * instead of at its next probe. @returns a function that stops the watch.
   */
  watch?(onChange: (fp: Fingerprint) => void): () => void;
  /**
   * Applies the node owner's policy to a task of this kind (agent/policy.ts). Absent: any spec of
   * its kind is admitted as it is.
   */
  admit?(spec: S): Admission<S>;
  /** Starts a task. Never throws: failures surface through `handle.done`. */
  start(spec: S, ctx: ExecutorContext): TaskHandle;
  /**
   * Re-adopts the tasks a previous agent process of `node` left behind (Nomad's RecoverTask).
   * Called once at agent start, before any assignment is handled. For each workload found it
   * calls `makeCtx(taskId, attempt, memory)` (memory in bytes) for the context that workload's
   * output streams into, then returns it with its handle. Workloads that are not cutter's or
   * belong to another node are left alone. Absent when the executor cannot re-adopt (exec).
   * Not called while its fingerprint says it is unavailable.
   * @throws when the executor's backend cannot be asked (engine unreachable); nothing is touched then.
   */
  recover?(node: string, makeCtx: (taskId: string, attempt: number, memory: number) => ExecutorContext): Promise<RecoveredTask[]>;
}
