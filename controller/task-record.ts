/**
 * A task as the controller keeps it (and stores it): its public TaskState plus the bookkeeping
 * of the current attempt. Pure helpers for the lifecycle rules live here too.
 */
import type { RestartPolicy, TaskSpec, TaskState } from '../shared/schemas/index.js';

export interface TaskRecord {
  state: TaskState;
  spec: TaskSpec;
  /** The node accepted the current attempt. */
  accepted: boolean;
  /** A cancel was asked for: the task ends `cancelled` whatever the exit code. */
  cancelRequested: boolean;
  /** The task's timeout ran out while it ran: it ends `failed` with TIMEOUT. */
  timedOut: boolean;
  /** An unaccepted assignment expires at this time, ms epoch; null when not assigned. */
  leaseExpiresAt: number | null;
  /** Not placed again before this time (restart backoff), ms epoch. */
  notBefore: number;
  /** When the current attempt counts as lost because its node is disconnected, ms epoch. */
  lostAt: number | null;
  /** Consecutive heartbeats of its node that did not list the current, accepted attempt. */
  missing: number;
  /** Every node an attempt was placed on (agents may publish events only for tasks placed on them). */
  nodes?: string[];
  /**
   * The identity (`ROLE:NAME` username) that submitted it, or its client id when the broker knows
   * no identity (an external broker, `--insecure`): only it may write the task's stdin (broker/acl.ts).
   */
  submitter?: string;
  /** The GPUs (UUIDs) the current attempt was given (its assignment's `gpus`); absent: none. */
  gpus?: string[];
}

/**
 * Codes of `failed` events that are the node's doing, not the task's: the attempt counts as lost
 * (and is retried under the default `on-lost` policy).
 */
export const NODE_FAULT_CODES: readonly string[] = [
  'AGENT_SHUTDOWN',
  'EXECUTOR_UNAVAILABLE',
  'EXECUTOR_DISABLED',
  'NODE_BUSY',
  'NODE_RESTARTED',
  'EXECUTOR_LOST',
  'GPU_UNAVAILABLE',
  'PREEMPTED',
];

/**
 * Codes of `failed` events no restart policy retries: the task's command is missing or cannot be
 * executed, and another attempt would find it the same.
 */
export const FINAL_CODES: readonly string[] = ['COMMAND_NOT_FOUND', 'COMMAND_NOT_INVOKABLE'];

/** How an attempt ended. */
export type AttemptEnd = 'succeeded' | 'failed' | 'lost';

/**
 * Delay before the next attempt, ms: after a failure 1 s, 2 s, 4 s … at most 60 s; after a lost
 * attempt the same sequence one step earlier, so a node failure is answered at once the first time.
 */
export function backoffMs(attempt: number, end: AttemptEnd): number {
  const n = end === 'lost' ? attempt - 1 : attempt;
  return n <= 0 ? 0 : Math.min(60_000, 1000 * 2 ** (n - 1));
}

/** Whether the restart policy asks for another attempt after one that ended this way. */
export function wantsRetry(policy: RestartPolicy, end: AttemptEnd): boolean {
  switch (policy) {
    case 'never':
      return false;
    case 'on-lost':
      return end === 'lost';
    case 'on-failure':
      return end !== 'succeeded';
    case 'always':
      return true;
  }
}

/** Image (docker), argv (exec) or `op model` (ollama): the short name listings show. */
export function summarize(spec: TaskSpec): string {
  if (spec.kind === 'docker') return spec.image;
  if (spec.kind === 'ollama') return `${spec.op} ${spec.model}`.slice(0, 512);
  return spec.argv.join(' ').slice(0, 512);
}
