/**
 * The controller's tasks, in memory, with the lifecycle rules:
 *   assigned (lease) → running → succeeded | failed | cancelled;  assigned/running → lost.
 * Terminal states are final. Finished tasks beyond `keepFinished` are evicted oldest first.
 */
import type { Requirements, TaskSpec, TaskState, TaskStatus } from '../shared/schemas/index.js';
import { isTerminal } from '../shared/schemas/index.js';
import { compareIds } from '../shared/topics.js';

export interface TaskRecord {
  state: TaskState;
  spec: TaskSpec;
  /** The agent accepted the current attempt. */
  accepted: boolean;
  /** A cancel was asked for; the final state is `cancelled` whatever the exit code. */
  cancelRequested: boolean;
  /** ms epoch after which an unaccepted assignment has expired. */
  leaseExpiresAt: number;
}

/** Image (docker) or argv[0] (exec): the short name listings show. */
export function summarize(spec: TaskSpec): string {
  return spec.kind === 'docker' ? spec.image : spec.argv.join(' ').slice(0, 512);
}

export class TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();

  constructor(private readonly keepFinished: number) {}

  get(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  /** Creates a task in `assigned` state on `node`, attempt 1. */
  createAssigned(args: {
    taskId: string;
    spec: TaskSpec;
    requirements: Requirements;
    node: string;
    placement: string;
    submittedBy: string;
    now: number;
    leaseMs: number;
  }): TaskRecord {
    const record: TaskRecord = {
      spec: args.spec,
      accepted: false,
      cancelRequested: false,
      leaseExpiresAt: args.now + args.leaseMs,
      state: {
        v: 1,
        taskId: args.taskId,
        state: 'assigned',
        kind: args.spec.kind,
        summary: summarize(args.spec),
        node: args.node,
        attempt: 1,
        requirements: args.requirements,
        placement: args.placement,
        createdAt: args.now,
        updatedAt: args.now,
        assignedAt: args.now,
        startedAt: null,
        finishedAt: null,
        exitCode: null,
        oomKilled: false,
        error: null,
        submittedBy: args.submittedBy,
      },
    };
    this.tasks.set(args.taskId, record);
    return record;
  }

  /**
   * Applies a change. Terminal states are final: changing a finished task returns false.
   * @returns true when the state changed.
   */
  transition(record: TaskRecord, patch: Partial<Omit<TaskState, 'v' | 'taskId'>> & { state?: TaskStatus }, now: number): boolean {
    if (isTerminal(record.state.state)) return false;
    Object.assign(record.state, patch, { updatedAt: now });
    return true;
  }

  /** Tasks newest first, optionally only in some states. */
  list(states?: TaskStatus[], limit = 100): TaskState[] {
    const out: TaskState[] = [];
    for (const r of this.tasks.values()) if (!states || states.includes(r.state.state)) out.push(r.state);
    return out.sort((a, b) => b.createdAt - a.createdAt || compareIds(a.taskId, b.taskId)).slice(0, limit);
  }

  /** Non-terminal tasks on one node. */
  activeOn(node: string): TaskRecord[] {
    return [...this.tasks.values()].filter((r) => r.state.node === node && !isTerminal(r.state.state));
  }

  /** Non-terminal tasks whose assignment lease has run out unaccepted. */
  expiredLeases(now: number): TaskRecord[] {
    return [...this.tasks.values()].filter((r) => r.state.state === 'assigned' && !r.accepted && r.leaseExpiresAt <= now);
  }

  /** Evicts the oldest finished tasks beyond the limit. @returns their ids (to clear retained state). */
  evictFinished(): string[] {
    const finished = [...this.tasks.values()].filter((r) => isTerminal(r.state.state));
    const excess = finished.length - this.keepFinished;
    if (excess <= 0) return [];
    const evicted = finished.sort((a, b) => (a.state.finishedAt ?? 0) - (b.state.finishedAt ?? 0)).slice(0, excess);
    for (const r of evicted) this.tasks.delete(r.state.taskId);
    return evicted.map((r) => r.state.taskId);
  }
}
