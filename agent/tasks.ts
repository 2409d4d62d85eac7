/**
 * Task running: what the agent does with assignments and cancels (`cutter/v1/nodes/{node}/assign`,
 * `…/cancel`, docs/protocol.md). It dispatches each task by `spec.kind` to its executor through
 * the registry, and knows no kind itself.
 * - de-duplication: assignments arrive at least once; a (task, attempt) taken already is dropped,
 *   and one for an attempt lower than the task's latest here is ignored (agent/attempts.ts);
 * - fencing: an assignment for attempt N of a task stops any lower attempt still running here
 *   (its events are dropped: the controller would ignore them as stale); the new one starts once
 *   they have stopped, so the two never run together;
 * - refusals: a `failed` event with a code (CANCELLED, NODE_RESTARTED, AGENT_SHUTDOWN,
 *   EXECUTOR_DISABLED, EXECUTOR_UNAVAILABLE, POLICY_DENIED, NODE_BUSY) instead of a start;
 * - re-adoption: at start, each executor that can (`recover()`, Nomad's RecoverTask) hands back
 *   what a previous agent process left running; those run on as tasks of this process;
 * - drain: on shutdown new assignments are refused and running tasks get time to end.
 */
import type { AgentConfig } from '../shared/config.js';
import { COMMAND_EXIT_CODES, CutterError, type ErrorCode, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Assignment, Cancel, NodeStatus } from '../shared/schemas/index.js';
import { AttemptLedger, keyOf } from './attempts.js';
import type { Outcome, RecoveredTask } from './executors/executor.js';
import type { ExecutorRegistry } from './executors/registry.js';
import type { AgentService } from './service.js';
import { type Attempt, type Batcher, newAttempt, type TaskEvents } from './task-events.js';
import { resolveStorage } from './volumes/resolve.js';
import { volumesOf } from './volumes/config.js';
import { mountedVolumes } from '../shared/volumes.js';
import type { IoStore } from './io/store.js';
import { ioCounts, ioProblem, OUTPUT_KEEP_MS, stageSpec } from './io/stage.js';

/** Grace before SIGKILL when a stale attempt is fenced, ms. */
const FENCE_GRACE_MS = 3_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

import { within } from '../shared/within.js';
import { gpuConflict } from './attempt-checks.js';

export { gpuConflict, within };

/** What the task runner needs from the rest of the agent. */
export interface TaskRunnerDeps {
  config: Pick<AgentConfig, 'nodeId' | 'maxTasks'>;
  /** Random id of this agent process: assignments placed on an earlier run are refused. */
  runId: string;
  log: Logger;
  executors: ExecutorRegistry;
  events: TaskEvents;
  /** Told when a task ends here (agent/service.ts `taskEnded`). */
  services: AgentService[];
  /** Publishes the node status now (a task came or went). */
  announce: () => void;
  /** UUIDs of the GPUs this node found (agent/gpus.ts); absent: it hands out none. */
  gpus?: () => string[];
  /** The lending policy's verdict (agent/lending): why new tasks are refused now, and resuming a task before it is stopped. */
  lending?: { refusal(): string | undefined; release(key: string): Promise<void> };
  /** Task inputs and outputs (agent/io/); absent: tasks that have them are refused. */
  io?: IoStore;
}

/** Grace before SIGKILL when a task is preempted (its node stopped lending), ms. */
const PREEMPT_GRACE_MS = 10_000;

/** Runs the tasks assigned to this node; see the file comment. */
export class TaskRunner {
  /** Attempts running here, by `taskId:attempt`. */
  private readonly running = new Map<string, Attempt>();
  private readonly ledger = new AttemptLedger();
  /** Draining or shutting down: new assignments are refused AGENT_SHUTDOWN. */
  private stopping = false;

  constructor(private readonly deps: TaskRunnerDeps) {}

  private get node(): string {
    return this.deps.config.nodeId;
  }

  /** The attempts running here, as NodeStatus lists them (memory in bytes). */
  list(): NodeStatus['running'] {
    return [...this.running.values()].map((r) => ({
      taskId: r.taskId,
      attempt: r.attempt,
      memory: r.memory,
      ...(r.kind ? { kind: r.kind } : {}),
      ...(r.gpus?.length ? { gpus: r.gpus } : {}),
    }));
  }

  /** How many attempts run here, and how many of them were re-adopted. */
  counts(): { running: number; readopted: number } {
    const all = [...this.running.values()];
    return { running: all.length, readopted: all.filter((r) => r.recovered).length };
  }

  /**
   * Asks every executor that can for what a previous agent process of this node left behind,
   * and supervises it like a task of its own; its (task, attempt) counts as taken, so a
   * redelivered assignment does not start it twice. An executor that is not available (engine
   * down) or cannot be asked is logged and skipped: its workloads stay as they are.
   */
  async recover(): Promise<void> {
    for (const executor of this.deps.executors.all()) {
      if (!executor.recover) continue;
      const fp = this.deps.executors.fingerprintOf(executor.kind);
      if (!fp?.available) {
        this.deps.log.warn({ executor: executor.kind, reason: fp?.error }, 'not looking for tasks to re-adopt: executor not available');
        continue;
      }
      const prepared = new Map<string, { task: Attempt; batcher: Batcher }>();
      let found: RecoveredTask[];
      try {
        found = await executor.recover(this.node, (taskId, attempt, memory) => {
          const task = newAttempt(taskId, attempt, memory, true);
          const p = this.deps.events.prepare(task);
          prepared.set(keyOf(taskId, attempt), { task, batcher: p.batcher });
          return p.ctx;
        });
      } catch (err) {
        this.deps.log.warn({ executor: executor.kind, err }, 'cannot look for tasks to re-adopt');
        continue;
      }
      // Highest attempt of each task first: lower ones found next to it are stale and fenced.
      found.sort((a, b) => b.attempt - a.attempt);
      for (const r of found) {
        const key = keyOf(r.taskId, r.attempt);
        const { task, batcher } = prepared.get(key) ?? { task: newAttempt(r.taskId, r.attempt, r.memory, true), batcher: { end() {} } };
        task.handle = r.handle;
        task.kind ??= executor.kind;
        task.ref = r.ref;
        if (r.gpus?.length) task.gpus = r.gpus;
        const newer = this.ledger.latest(r.taskId);
        this.ledger.remember(r.taskId, r.attempt);
        this.running.set(key, task);
        this.deps.log.info(
          { taskId: r.taskId, attempt: r.attempt, ref: r.ref, memory: r.memory, executor: executor.kind },
          're-adopted task',
        );
        if (newer !== undefined && newer > r.attempt) this.fence(task, `attempt ${newer} of the task is here too`);
        void this.supervise(task, batcher);
      }
    }
  }

  /** Takes (or refuses, or drops) one assignment and, when taken, runs it to its end. Never throws. */
  async onAssignment(a: Assignment): Promise<void> {
    const { log, events } = this.deps;
    const ids = { taskId: a.taskId, attempt: a.attempt };
    if (this.ledger.has(a.taskId, a.attempt)) {
      log.debug(ids, 'ignored redelivered assignment');
      return;
    }
    const latest = this.ledger.latest(a.taskId);
    if (latest !== undefined && latest > a.attempt) {
      log.warn({ ...ids, latest }, 'ignored assignment of a stale attempt');
      return;
    }
    this.ledger.remember(a.taskId, a.attempt);

    // Fencing: whatever lower attempt of this task still runs here is stale now.
    const older = [...this.running.values()].filter((r) => r.taskId === a.taskId && r.attempt < a.attempt);
    for (const r of older) this.fence(r, `attempt ${a.attempt} was assigned`);

    const task = newAttempt(a.taskId, a.attempt, a.requirements.memory, false);
    task.kind = a.spec.kind;
    task.credit = a.spec.kind !== 'ollama' && a.spec.credit === true;
    task.frames = a.outputFrames === true;
    const refuse = (code: string, message: string) => {
      log.warn({ ...ids, code, message }, 'refused assignment');
      return events
        .publish(task, { type: 'failed', code, message })
        .catch((err) => log.warn({ ...ids, err }, 'could not report a refusal'));
    };
    if (this.ledger.takeEarlyCancel(a.taskId, a.attempt)) return refuse('CANCELLED', 'cancelled before it started');
    if (a.nodeRunId !== null && a.nodeRunId !== this.deps.runId) {
      return refuse('NODE_RESTARTED', `attempt ${a.attempt} was placed on an earlier run of agent ${this.node}, which has restarted since`);
    }
    if (this.stopping) return refuse('AGENT_SHUTDOWN', `node ${this.node} is shutting down`);
    const closed = this.deps.lending?.refusal();
    if (closed) return refuse('PREEMPTED', `node ${this.node} is not lending now (${closed})`);
    const dispatch = this.deps.executors.dispatch(a.spec.kind, this.node);
    if (!('executor' in dispatch)) return refuse(dispatch.code, dispatch.message);
    const { executor } = dispatch;
    const admission = executor.admit ? executor.admit(a.spec) : { spec: a.spec };
    if ('denied' in admission) return refuse('POLICY_DENIED', `refused by node ${this.node}'s policy: ${admission.denied}`);
    const storage = resolveStorage(admission.spec, this.deps.config);
    if ('code' in storage) return refuse(storage.code, storage.message);
    const busy = [...this.running.values()].filter((r) => !r.fenced).length;
    if (busy >= this.deps.config.maxTasks)
      return refuse('NODE_BUSY', `node ${this.node} already runs ${busy} of at most ${this.deps.config.maxTasks} tasks`);
    const gpuProblem = a.gpus?.length ? gpuConflict(a.gpus, this.deps.gpus?.() ?? [], [...this.running.values()]) : null;
    if (gpuProblem) return refuse('GPU_UNAVAILABLE', `node ${this.node} cannot give the task its GPUs: ${gpuProblem}`);
    if (a.gpus?.length) task.gpus = [...a.gpus];
    const io = ioCounts(storage.spec);
    const hasIo = io.inputs + io.outputs > 0;
    if (hasIo && !this.deps.io) return refuse('EXECUTOR_DISABLED', `node ${this.node} takes no task inputs or outputs`);
    const ioRefusal = hasIo ? ioProblem(storage.spec) : null;
    if (ioRefusal) return refuse('INVALID_ARGUMENT', ioRefusal);

    this.running.set(keyOf(a.taskId, a.attempt), task);
    volumesOf(this.deps.config)?.use(keyOf(a.taskId, a.attempt), mountedVolumes(a.spec));
    // Registered before `accepted` goes out: the submitter starts sending its inputs when it sees it.
    if (hasIo) this.deps.io!.expect(a.taskId, a.attempt, io.inputs, io.outputs, storage.spec.kind === 'exec');
    // Not awaited: MQTT keeps one client's publishes in order, so `accepted` still precedes
    // whatever the task reports next, and the workload need not wait a broker round trip to start.
    events.publish(task, { type: 'accepted' }).catch((err) => log.warn({ ...ids, err }, 'could not report acceptance'));
    log.info({ ...ids, kind: a.spec.kind }, 'task accepted');

    // The new attempt starts once the stale ones have stopped (bounded by their grace), so the two never run together.
    if (older.length > 0) await within(Promise.all(older.map((r) => r.ended)), FENCE_GRACE_MS + 5_000);

    let spec = storage.spec;
    if (hasIo) {
      const ioStore = this.deps.io!;
      try {
        // Outputs nobody collected within OUTPUT_KEEP_MS go now.
        void ioStore.sweep(OUTPUT_KEEP_MS).catch(() => undefined);
        spec =
          (await stageSpec(ioStore, a.taskId, a.attempt, spec, () => task.pendingStop !== undefined || task.fenced || task.shutdown)) ??
          spec;
      } catch (err) {
        const message = errorMessage(err);
        log.warn({ ...ids, err }, 'staging the task inputs failed');
        await events.publish(task, { type: 'failed', code: 'STAGING_FAILED', message }).catch(() => undefined);
        await ioStore.ended(a.taskId, a.attempt, false).catch(() => undefined);
        this.release(task);
        return;
      }
    }
    const { ctx, batcher } = events.prepare(task);
    if (task.gpus) ctx.gpus = task.gpus;
    if (task.pendingStop !== undefined || task.fenced) {
      // Cancelled, superseded or shut down while it was being accepted: nothing was started.
      const code = task.shutdown ? 'AGENT_SHUTDOWN' : 'CANCELLED';
      const message = task.shutdown ? `agent ${this.node} shut down before the task started` : 'cancelled before it started';
      await events.publish(task, { type: 'failed', code, message }).catch(() => undefined);
      log.info({ ...ids, code }, 'task stopped before it started');
      if (hasIo) await this.deps.io!.ended(a.taskId, a.attempt, false).catch(() => undefined);
      this.release(task);
      return;
    }
    task.handle = executor.start(spec, ctx);
    // The status naming the task goes out once the workload is on its way, not before it
    // (unless the executor says otherwise: see `announceOnStart`).
    if (executor.announceOnStart !== false) this.deps.announce();
    await this.supervise(task, batcher);
    // Outputs wait for their submitter (`io.done`), at most OUTPUT_KEEP_MS; inputs go at once.
    if (hasIo) await this.deps.io!.ended(a.taskId, a.attempt, io.outputs > 0).catch(() => undefined);
  }

  /** Stops the attempt a cancel names, or remembers the cancel when its assignment has not come yet. */
  async onCancel(c: Cancel): Promise<void> {
    const task = this.running.get(keyOf(c.taskId, c.attempt));
    if (!task) {
      this.ledger.cancelEarly(c.taskId, c.attempt);
      this.deps.log.info({ taskId: c.taskId, attempt: c.attempt }, 'cancel for a task not running here');
      return;
    }
    this.deps.log.info({ taskId: c.taskId, attempt: c.attempt, graceMs: c.graceMs }, 'cancelling task');
    await this.stopTask(task, c.graceMs);
  }

  /** The attempts running here for the lender (agent/lending): key, kind and container id or pid. */
  lendable(): { key: string; kind?: Attempt['kind']; ref?: string }[] {
    return [...this.running.entries()]
      .filter(([, r]) => !r.fenced && !r.shutdown && r.preempted === undefined)
      .map(([key, r]) => ({ key, kind: r.kind, ref: r.ref }));
  }

  /** Stops an attempt because the node stopped lending; it is reported `failed` PREEMPTED (placed again by its restart policy). */
  preempt(key: string, why: string): void {
    const task = this.running.get(key);
    if (!task || task.fenced || task.preempted !== undefined) return;
    task.preempted = why;
    void this.stopTask(task, PREEMPT_GRACE_MS).catch((err) => this.deps.log.warn({ key, err }, 'preempting a task failed'));
  }

  /** From now on new assignments are refused AGENT_SHUTDOWN (the agent is shutting down). */
  refuseNew(): void {
    this.stopping = true;
  }

  /**
   * Drains: refuses new assignments from now on (AGENT_SHUTDOWN), waits up to `drainTimeoutMs`
   * for running tasks to end on their own, then stops the rest with SIGTERM and SIGKILL after
   * `graceMs` (reported `failed` AGENT_SHUTDOWN) and waits for them a little longer (ms).
   */
  async drain(drainTimeoutMs: number, graceMs: number): Promise<void> {
    this.stopping = true;
    if (await this.waitIdle(drainTimeoutMs)) return;
    const left = [...this.running.values()];
    this.deps.log.warn({ tasks: left.map((r) => keyOf(r.taskId, r.attempt)), graceMs }, 'drain timeout: stopping the tasks left');
    for (const task of left) {
      task.shutdown = true;
      void this.stopTask(task, graceMs).catch((err) => this.deps.log.warn({ taskId: task.taskId, err }, 'stopping a task failed'));
    }
    if (!(await this.waitIdle(graceMs + 5_000)))
      this.deps.log.warn({ tasks: [...this.running.keys()] }, 'tasks did not end after being stopped');
  }

  /** Waits until no task runs here, at most `ms`. @returns true when idle. */
  private async waitIdle(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.running.size > 0 && Date.now() < deadline) await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    return this.running.size === 0;
  }

  /** Stops a task now, or as soon as it has a handle (a stop can arrive while it is being accepted). */
  private async stopTask(task: Attempt, graceMs: number): Promise<void> {
    task.gate?.stopping(graceMs); // a reader that is gone must not keep a stopped task alive
    await this.deps.lending?.release(keyOf(task.taskId, task.attempt)); // a paused task is resumed to be stopped
    if (task.handle) await task.handle.stop(graceMs);
    else task.pendingStop = Math.min(task.pendingStop ?? graceMs, graceMs);
  }

  /** Stops an attempt superseded by a newer one of the same task; its events are dropped from now on. */
  private fence(task: Attempt, why: string): void {
    if (task.fenced) return;
    task.fenced = true;
    const ids = { taskId: task.taskId, attempt: task.attempt };
    this.deps.log.warn({ ...ids, why }, 'stopping a stale attempt');
    void this.stopTask(task, FENCE_GRACE_MS).catch((err) => this.deps.log.warn({ ...ids, err }, 'stopping a stale attempt failed'));
  }

  /** Takes the task out of `running` and tells waiters, services and the controller (a status now). */
  private release(task: Attempt): void {
    const key = keyOf(task.taskId, task.attempt);
    if (this.running.get(key) === task) this.running.delete(key);
    volumesOf(this.deps.config)?.release(key);
    for (const s of this.deps.services) s.taskEnded?.(task.taskId, task.attempt);
    task.markEnded();
    this.deps.announce();
  }

  /** Waits for a started (or re-adopted) task to end, reports how it ended, and releases it. */
  private async supervise(task: Attempt, batcher: Batcher): Promise<void> {
    const { log, events } = this.deps;
    const ids = { taskId: task.taskId, attempt: task.attempt, ...(task.recovered ? { recovered: true } : {}) };
    let outcome: Outcome;
    try {
      outcome = await task.handle!.done;
    } catch (err) {
      batcher.end();
      let code = err instanceof CutterError ? err.code : 'START_FAILED';
      let message = errorMessage(err);
      if (task.shutdown && (code === 'CANCELLED' || code === 'IMAGE_PULL_FAILED')) {
        code = 'AGENT_SHUTDOWN';
        message = `agent ${this.node} shut down before the task started`;
      } else if (task.preempted !== undefined && code === 'CANCELLED') {
        code = 'PREEMPTED';
        message = `node ${this.node} stopped lending before the task started (${task.preempted})`;
      }
      log.warn({ ...ids, code, err }, 'task failed to run');
      // A command that could not be run ends with the exit code a shell would give (126, 127).
      const exitCode = COMMAND_EXIT_CODES[code as ErrorCode];
      await events
        .publish(task, { type: 'failed', code, message, ...(exitCode !== undefined ? { exitCode } : {}) })
        .catch((e) => log.warn({ ...ids, err: e }, 'could not report the failure'));
      this.release(task);
      return;
    }
    try {
      batcher.end();
      const fields = {
        ...ids,
        exitCode: outcome.exitCode,
        oomKilled: outcome.oomKilled,
        cancelled: outcome.cancelled,
        ms: outcome.finishedAt - outcome.startedAt,
      };
      if (task.fenced) {
        // Nothing is reported: the controller has moved on to a newer attempt.
        log.info(fields, 'stale attempt ended');
        return;
      }
      // Logged before the report, which waits for the broker's ack (long, when the link is down).
      log.info(fields, 'task finished');
      if (task.shutdown && outcome.cancelled) {
        const message = `stopped because agent ${this.node} shut down (exit code ${outcome.exitCode})`;
        await events.publish(task, { type: 'failed', code: 'AGENT_SHUTDOWN', message });
      } else if (task.preempted !== undefined && outcome.cancelled) {
        const message = `preempted on node ${this.node}, which stopped lending: ${task.preempted}; placed again by its restart policy`;
        await events.publish(task, { type: 'failed', code: 'PREEMPTED', message });
      } else {
        await events.publish(task, { type: 'result', ...outcome });
      }
    } catch (err) {
      log.warn({ ...ids, err }, 'could not report the result');
    } finally {
      this.release(task);
    }
  }
}
