/**
 * Typed errors. Every error cutter shows a user has a stable `code` (for scripts and `--json`)
 * and a message that says what to do.
 */

/** Stable error codes; documented in docs/protocol.md (reply errors use the same codes). */
export type ErrorCode =
  | 'INVALID_SIZE'
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'INVALID_REQUEST'
  | 'NO_FIT'
  | 'NOT_FOUND'
  | 'ALREADY_FINISHED'
  | 'NO_CONTROLLER'
  | 'BROKER_UNREACHABLE'
  | 'EXECUTOR_UNAVAILABLE'
  | 'EXECUTOR_DISABLED'
  | 'IMAGE_PULL_FAILED'
  | 'START_FAILED'
  /** The task's command does not exist (exec: not on the task's PATH; docker: not in the image). Exit code 127, like a shell's. */
  | 'COMMAND_NOT_FOUND'
  /** The task's command exists but cannot be run: not executable, or a directory. Exit code 126, like a shell's. */
  | 'COMMAND_NOT_INVOKABLE'
  | 'LEASE_EXPIRED'
  | 'NODE_LOST'
  | 'AGENT_SHUTDOWN'
  | 'CANCELLED'
  | 'EXIT_CODE'
  | 'OOM_KILLED'
  | 'NODE_BUSY'
  | 'TIMEOUT'
  | 'NODE_RESTARTED'
  | 'RATE_LIMITED'
  | 'POLICY_DENIED'
  /** The Ollama server has no such model (its HTTP 404). */
  | 'MODEL_NOT_FOUND'
  /** The Ollama server answered with an error (its message is kept). */
  | 'OLLAMA_ERROR'
  /** The server's data dir is full, read-only or failing: new work is refused until it takes writes again. */
  | 'STORAGE_UNAVAILABLE'
  | 'INTERNAL'
  /** A Wake-on-LAN magic packet could not be sent (no route, broadcast not allowed): the OS's reason is in the message. */
  | 'WAKE_FAILED'
  /**
   * The node's Docker engine died or hung under the task and did not come back within the
   * agent's grace (or came back without the container): the result is unknown. A node fault.
   */
  | 'EXECUTOR_LOST'
  /**
   * The GPUs an assignment names cannot be given on its node (not found there, or held by another
   * task): the controller's picture was stale. A node fault (placed again).
   */
  | 'GPU_UNAVAILABLE'
  /**
   * The node stopped lending (its owner came back, went on battery, left its time window: issue 17)
   * and the task, suspended past the node's preempt time, was stopped; or the node refused a new
   * task because it is not lending now. A node fault (placed again by the restart policy).
   */
  | 'PREEMPTED'
  /** A task's inputs (`cutter run --input`) could not be staged on its node: the task was not started (exit 125). */
  | 'STAGING_FAILED'
  /** A task's outputs (`cutter run --output`) could not be collected from its node: the reason says why. */
  | 'COLLECT_FAILED';

/**
 * The exit code a shell (and `docker run`) gives for a command that could not be run, by error
 * code: a `failed` event with one of these codes carries it as `exitCode`, and `cutter run` exits with it.
 */
export const COMMAND_EXIT_CODES: Readonly<Partial<Record<ErrorCode, number>>> = { COMMAND_NOT_FOUND: 127, COMMAND_NOT_INVOKABLE: 126 };

/** An error with a stable code and optional structured details (e.g. per-node rejections). */
export class CutterError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CutterError';
  }
}

/** Returns a readable message for any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
