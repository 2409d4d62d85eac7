/**
 * The controller's tasks: an in-memory index over the durable StateStore. Every change goes
 * through `save()`, which writes it before the controller publishes or acts on it.
 * Terminal states are final. Finished tasks beyond `keepFinished` are evicted oldest first.
 */
import type { Requirements, TaskOptions, TaskSpec, TaskState, TaskStatus } from '../shared/schemas/index.js';
import { isTerminal } from '../shared/schemas/index.js';
import { compareIds } from '../shared/topics.js';
import type { StateStoreContract } from './state-contract.js';
import { summarize, type TaskRecord } from './task-record.js';
import { mountedVolumes } from '../shared/volumes.js';

export class TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();
  /** Ids of finished tasks, oldest finish first (a Set keeps insertion order): eviction takes from the front. */
  private readonly finishedOrder = new Set<string>();
  /**
   * Tasks not yet terminal. `queued()` and `activeOn()` walk these instead of every kept task: they
   * run on every placement pass and heartbeat, and up to `keepFinished` ended tasks sit beside them.
   */
  private readonly live = new Set<TaskRecord>();

  constructor(
    private readonly store: StateStoreContract,
    private readonly keepFinished: number,
  ) {
    const finished: TaskRecord[] = [];
    for (const r of store.loadTasks()) {
      this.tasks.set(r.state.taskId, r);
      if (isTerminal(r.state.state)) finished.push(r);
      else this.live.add(r);
    }
    finished.sort((a, b) => (a.state.finishedAt ?? 0) - (b.state.finishedAt ?? 0));
    for (const r of finished) this.finishedOrder.add(r.state.taskId);
  }

  get(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  all(): IterableIterator<TaskRecord> {
    return this.tasks.values();
  }

  /** The tasks not yet terminal, as a copy (safe to change tasks while walking it). */
  liveTasks(): TaskRecord[] {
    return [...this.live];
  }

  /** Creates a task in `queued` state, attempt 0, and stores it. */
  create(args: {
    taskId: string;
    spec: TaskSpec;
    requirements: Requirements;
    options: TaskOptions;
    submittedBy: string;
    /** The submitter's identity (TaskRecord.submitter). */
    submitter?: string;
    now: number;
  }): TaskRecord {
    const record: TaskRecord = {
      ...(args.submitter !== undefined ? { submitter: args.submitter } : {}),
      spec: args.spec,
      accepted: false,
      cancelRequested: false,
      timedOut: false,
      leaseExpiresAt: null,
      notBefore: 0,
      lostAt: null,
      missing: 0,
      state: {
        v: 1,
        taskId: args.taskId,
        state: 'queued',
        kind: args.spec.kind,
        summary: summarize(args.spec),
        node: null,
        attempt: 0,
        requirements: args.requirements,
        options: args.options,
        placement: null,
        reason: null,
        createdAt: args.now,
        updatedAt: args.now,
        assignedAt: null,
        startedAt: null,
        finishedAt: null,
        exitCode: null,
        oomKilled: false,
        error: null,
        submittedBy: args.submittedBy,
        ...(mountedVolumes(args.spec).length ? { volumes: mountedVolumes(args.spec).slice(0, 32) } : {}),
      },
    };
    // Serialised and stored first: a spec that cannot be stored leaves no record behind.
    this.save(record);
    this.tasks.set(args.taskId, record);
    this.live.add(record);
    return record;
  }

  /** Forgets a task that was never accepted (a submit that failed fast). */
  discard(taskId: string): void {
    const record = this.tasks.get(taskId);
    if (record) this.live.delete(record);
    this.tasks.delete(taskId);
    this.finishedOrder.delete(taskId);
    this.store.deleteTasks([taskId]);
  }

  /**
   * Applies a change to a live task and stores it. Terminal states are final.
   * @returns false (and changes nothing) when the task has already ended.
   */
  update(
    record: TaskRecord,
    patch: Partial<Omit<TaskState, 'v' | 'taskId'>>,
    extra: Partial<Omit<TaskRecord, 'state'>> = {},
    now = Date.now(),
  ): boolean {
    if (isTerminal(record.state.state)) return false;
    Object.assign(record.state, patch, { updatedAt: now });
    Object.assign(record, extra);
    this.save(record);
    return true;
  }

  /** Writes the record as it is now. */
  save(record: TaskRecord): void {
    const terminal = isTerminal(record.state.state);
    this.store.saveTask(record, terminal);
    if (terminal) {
      this.finishedOrder.add(record.state.taskId);
      this.live.delete(record);
    }
  }

  /** Tasks newest first, optionally only in some states. */
  list(states?: TaskStatus[], limit = 100): TaskState[] {
    const out: TaskState[] = [];
    for (const r of this.tasks.values()) if (!states || states.includes(r.state.state)) out.push(r.state);
    return out.sort((a, b) => b.createdAt - a.createdAt || compareIds(a.taskId, b.taskId)).slice(0, limit);
  }

  /** Live tasks placed on one node (assigned, running, unknown). */
  activeOn(node: string): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const r of this.live) if (r.state.node === node && r.state.state !== 'queued') out.push(r);
    return out;
  }

  /** Whether any task is queued (without sorting them as `queued()` does). */
  hasQueued(): boolean {
    for (const r of this.live) if (r.state.state === 'queued') return true;
    return false;
  }

  /** Queued tasks in placement order: priority high to low, then oldest first. */
  queued(): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const r of this.live) if (r.state.state === 'queued') out.push(r);
    return out.sort(
      (a, b) =>
        b.state.options.priority - a.state.options.priority ||
        a.state.createdAt - b.state.createdAt ||
        compareIds(a.state.taskId, b.state.taskId),
    );
  }

  /** Evicts the oldest finished tasks beyond the limit. @returns their ids (to clear retained state). */
  evictFinished(): string[] {
    // O(evicted), not O(tasks): called after every finish, it scanned and sorted every task (a
    // tenth of the server's CPU in the throughput benchmark).
    let excess = this.finishedOrder.size - this.keepFinished;
    if (excess <= 0) return [];
    const evicted: string[] = [];
    for (const id of this.finishedOrder) {
      if (excess-- <= 0) break;
      evicted.push(id);
    }
    for (const id of evicted) {
      this.finishedOrder.delete(id);
      this.tasks.delete(id);
    }
    this.store.deleteTasks(evicted);
    return evicted;
  }
}
