/**
 * The agent: one node of the mesh. Dials out to the broker (nothing listens on the node),
 * announces its capacity as a retained heartbeat with a retained `offline` last will, takes
 * assignments over a persistent session (QoS 1, so a reconnecting agent gets what was sent while
 * it was away), runs them through its executors and streams their events back.
 *
 * Lifecycle of one agent process:
 * - start: probe, connect, re-adopt what a previous process of this node left running (executors'
 *   `recover()`, Nomad's RecoverTask), then handle assignments and heartbeat. Re-adopted tasks are
 *   listed in the heartbeat's `running` (that is how the controller learns they live on) and
 *   their (task, attempt) counts as seen, so a redelivered assignment does not start them twice.
 * - fencing: an assignment for attempt N of a task stops any lower attempt still running here
 *   (its events are dropped: the controller would ignore them as stale); an assignment for an
 *   attempt lower than one already seen is ignored.
 * - stop (SIGTERM): drain. The node announces `draining` (no new placements), refuses new
 *   assignments with AGENT_SHUTDOWN, waits up to `drainTimeoutMs` for running tasks to end on
 *   their own, stops the rest (reported `failed` AGENT_SHUTDOWN, which the controller reschedules),
 *   then announces `offline` and disconnects.
 *
 * Event `seq` numbers increase per attempt but are not dense: a fresh attempt counts from 0, a
 * re-adopted one continues from `Date.now()` at re-adoption, above anything the previous process
 * can have sent (it sends far fewer than 1,000 events a second; a wall clock set back by more
 * than the previous process's uptime would break this).
 */
import { writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { encode } from '../shared/codec.js';
import type { AgentConfig } from '../shared/config.js';
import { CutterError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { MessageRouter, connectMqtt, type MqttClient } from '../shared/mqtt.js';
import {
  AssignmentSchema,
  CancelSchema,
  type Assignment,
  type Cancel,
  type Gpu,
  type OllamaInfo,
  type NodeStatus,
  type TaskEvent,
  type TaskKind,
} from '../shared/schemas/index.js';
import { topics, type Topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';
import { DockerExecutor } from './executors/docker.js';
import { ExecExecutor } from './executors/exec.js';
import type { Executor, ExecutorContext, ExecutorProbe, Outcome, RecoveredTask, TaskHandle } from './executors/executor.js';
import { ChunkBatcher } from './chunk-batcher.js';
import { OllamaExecutor } from './executors/ollama.js';
import { OutputBatcher } from './output-batcher.js';
import { policyViolation, withPolicyDefaults, type ExecutionPolicy } from './policy.js';
import { probeGpus, probeHost, type HostCapacity } from './probe.js';
import { defaultServices } from './services.js';
import type { AgentService } from './service.js';

/** One attempt this agent runs (or is starting, or is stopping). */
interface RunningTask {
  taskId: string;
  attempt: number;
  /** Memory committed to the attempt by its placement, bytes. */
  memory: number;
  /** Its executor (absent for a re-adopted task until known). */
  kind?: TaskKind;
  handle?: TaskHandle;
  /** Sequence number of the next event. */
  seq: number;
  /** Re-adopted from a previous agent process. */
  recovered: boolean;
  /** A newer attempt of the task arrived: this one is being stopped and its events are dropped. */
  fenced: boolean;
  /** The agent's shutdown stopped it: reported `failed` AGENT_SHUTDOWN instead of its result. */
  shutdown: boolean;
  /** A stop (grace, ms) asked for before the workload started. */
  pendingStop?: number;
  /** Resolves once the attempt has ended and left `running`. */
  ended: Promise<void>;
  markEnded: () => void;
}

/** Distributes an event without its envelope fields; the agent adds v, ids, seq and ts. */
type EventBody = TaskEvent extends infer E
  ? E extends TaskEvent
    ? Omit<E, 'v' | 'taskId' | 'attempt' | 'node' | 'seq' | 'ts'>
    : never
  : never;

/** What ends a task's output batching (log text and structured chunks) before its result is sent. */
interface Batcher {
  end(): void;
}

/** How many (task, attempt) pairs the agent remembers to drop redelivered assignments. */
const SEEN_LIMIT = 10_000;
/** Grace before SIGKILL when a stale attempt is fenced, ms. */
const FENCE_GRACE_MS = 3_000;
/** Longest wait for a status publish or the disconnect while shutting down, ms (the broker may be gone). */
const SHUTDOWN_IO_MS = 2_000;
/** How often GPUs are probed again (nvidia-smi is slow; its free memory counts other programs too), ms. */
const GPU_PROBE_MS = 30_000;

const keyOf = (taskId: string, attempt: number) => `${taskId}:${attempt}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves true when `p` settles within `ms`, false otherwise (never rejects). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

/**
 * One node's agent (see the file comment for its lifecycle). `start()` once, `stop()` once to
 * drain and leave; executors default to docker and (with `config.allowExec`) exec.
 */
export class Agent {
  private readonly t: Topics;
  private readonly log: Logger;
  private readonly executors = new Map<TaskKind, Executor>();
  /** Attempts running here, by `taskId:attempt`. */
  private readonly running = new Map<string, RunningTask>();
  /** `taskId:attempt` of every assignment taken (or re-adopted), to drop redeliveries. */
  private readonly seen = new Set<string>();
  /** Highest attempt seen per task, to ignore assignments of stale attempts. */
  private readonly latestAttempt = new Map<string, number>();
  /** Cancels that arrived before their assignment (different topics are not ordered). */
  private readonly cancelledEarly = new Set<string>();
  private client?: MqttClient;
  private heartbeatTimer?: NodeJS.Timeout;
  private seq = 0;
  private gpus: Gpu[] = [];
  private dockerProbe: ExecutorProbe = { available: false, error: 'not probed yet' };
  /** The node's Ollama server as last probed (absent when the agent runs without one). */
  private ollama?: OllamaInfo;
  /** When GPUs were last probed, ms epoch: their free memory moves with every program using them. */
  private gpusProbedAt = 0;
  /** Resolves when re-adoption is done; assignment and cancel handling waits for it. */
  private ready: Promise<void> = Promise.resolve();
  /** Random id of this agent process, in every status: assignments for an earlier run are refused. */
  readonly runId = randomBytes(8).toString('hex');
  /** What this node's owner lets cutter run here. */
  private get policy(): ExecutionPolicy {
    const c = this.config;
    return {
      allowedImages: c.allowedImages,
      execAllowlist: c.execAllowlist,
      maxTaskMemory: c.maxTaskMemory,
      defaultTaskMemory: c.defaultTaskMemory,
    };
  }
  /** The last capacity probe (refreshed after each heartbeat). */
  private host?: HostCapacity;
  private probing = false;
  /** Draining or shutting down: no new tasks, heartbeats say `draining`. */
  private stopping = false;
  /** `offline` published: no more status messages. */
  private closed = false;
  private stopped?: Promise<void>;

  constructor(
    private readonly config: AgentConfig,
    log: Logger,
    executors: Executor[] = [new DockerExecutor(), new ExecExecutor(), ...(config.ollamaUrl ? [new OllamaExecutor(config.ollamaUrl)] : [])],
    /** Services hosted next to task execution (file transfer, image sync); see agent/services.ts. */
    private readonly services: AgentService[] = defaultServices(config, log, executors),
  ) {
    this.t = topics(config.prefix);
    this.log = log.child({ component: 'agent', node: config.nodeId });
    for (const e of executors) if (e.kind !== 'exec' || config.allowExec) this.executors.set(e.kind, e);
  }

  /** The node id this agent announces and takes assignments for. */
  get nodeId(): string {
    return this.config.nodeId;
  }

  /**
   * Probes, connects (retrying until the broker answers), subscribes, re-adopts what a previous
   * agent process of this node left running, and starts the heartbeat. Assignments and cancels
   * that arrive before re-adoption is done (a persistent session delivers queued ones right after
   * connecting) wait for it.
   */
  async start(): Promise<void> {
    [this.gpus] = await Promise.all([probeGpus(), this.probeDocker(), this.probeOllama()]);
    this.gpusProbedAt = Date.now();
    const will: NodeStatus = {
      v: 1,
      node: this.config.nodeId,
      state: 'offline',
      version: VERSION,
      seq: 0,
      ts: Date.now(),
      heartbeatMs: this.config.heartbeatMs,
      running: [],
      reason: 'connection lost',
      runId: this.runId,
    };
    let markReady!: () => void;
    this.ready = new Promise((r) => (markReady = r));
    let router!: MessageRouter;
    this.client = await connectMqtt({
      url: this.config.broker,
      clientId: `cutter-agent-${this.config.nodeId}`,
      clean: false,
      keepaliveSec: this.config.keepaliveSec,
      username: this.config.username,
      password: this.config.password,
      will: { topic: this.t.nodeStatus(this.config.nodeId), payload: encode(will), qos: 1, retain: true },
      log: this.log,
      onClient: (client) => {
        // Routes before the CONNACK: the persistent session's queued assignments arrive right after it.
        router = new MessageRouter(client, this.log);
        router.route(this.t.nodeAssign(this.config.nodeId), AssignmentSchema, async (a) => {
          await this.ready;
          await this.onAssignment(a);
        });
        router.route(this.t.nodeCancel(this.config.nodeId), CancelSchema, async (c) => {
          await this.ready;
          await this.onCancel(c);
        });
        for (const s of this.services) s.attach(client, router);
      },
    });
    await router.subscribeAll();
    for (const s of this.services) await s.start?.();
    this.client.on('connect', () => {
      this.log.info('reconnected to broker');
      void this.heartbeat();
    });
    try {
      await this.recover();
    } finally {
      markReady();
    }
    if (this.closed) return;
    await this.heartbeat();
    if (this.closed) return;
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.config.heartbeatMs);
    this.log.info(
      {
        broker: this.config.broker,
        executors: [...this.executors.keys()],
        maxMemory: this.config.maxMemory ?? null,
        maxTasks: this.config.maxTasks,
        lostAfterMs: this.config.lostAfterMs,
        drainTimeoutMs: this.config.drainTimeoutMs,
        readopted: [...this.running.values()].filter((r) => r.recovered).length,
      },
      'agent started',
    );
  }

  /**
   * Drains and stops: publishes `draining` at once (no new placements; heartbeats go on saying
   * `draining`), refuses new assignments (`failed` AGENT_SHUTDOWN), waits up to
   * `config.drainTimeoutMs` for running tasks to end on their own, stops what is left with
   * SIGTERM then SIGKILL after `graceMs` (reported `failed` AGENT_SHUTDOWN), then publishes a
   * retained `offline` status with `reason` and disconnects. Publishing and disconnecting are
   * bounded (2 s each) in case the broker is gone. Calling it again returns the same promise.
   */
  stop(reason = 'agent stopped', graceMs = 3_000): Promise<void> {
    this.stopped ??= this.shutdown(reason, graceMs);
    return this.stopped;
  }

  private async shutdown(reason: string, graceMs: number): Promise<void> {
    this.stopping = true;
    const client = this.client;
    if (!client) {
      this.closed = true;
      return;
    }
    await this.ready;
    this.log.info({ running: this.running.size, drainTimeoutMs: this.config.drainTimeoutMs }, 'draining');
    await within(this.publishStatus('draining'), SHUTDOWN_IO_MS);
    if (!(await this.waitIdle(this.config.drainTimeoutMs))) {
      const left = [...this.running.values()];
      this.log.warn({ tasks: left.map((r) => keyOf(r.taskId, r.attempt)), graceMs }, 'drain timeout: stopping the tasks left');
      for (const task of left) {
        task.shutdown = true;
        void this.stopTask(task, graceMs).catch((err) =>
          this.log.warn({ taskId: task.taskId, err: errorMessage(err) }, 'stopping a task failed'),
        );
      }
      if (!(await this.waitIdle(graceMs + 5_000)))
        this.log.warn({ tasks: [...this.running.keys()] }, 'tasks did not end after being stopped');
    }
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    for (const s of this.services) await s.stop?.().catch((err) => this.log.warn({ err: errorMessage(err) }, 'stopping a service failed'));
    if (!(await within(this.publishStatus('offline', reason), SHUTDOWN_IO_MS)))
      this.log.warn('could not publish offline status: broker not answering');
    if (!(await within(client.endAsync(), SHUTDOWN_IO_MS))) client.end(true);
  }

  /** Waits until no task runs here, at most `ms`. @returns true when idle. */
  private async waitIdle(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.running.size > 0 && Date.now() < deadline) await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    return this.running.size === 0;
  }

  /** Refreshes the Ollama inventory (version, models, loaded models); logs when it comes or goes. */
  private async probeOllama(): Promise<void> {
    const ollama = this.executors.get('ollama');
    if (!(ollama instanceof OllamaExecutor)) return;
    const info = await ollama.inventory();
    if (info.available !== this.ollama?.available) {
      if (info.available) this.log.info({ url: ollama.url, version: info.version, models: info.models.length }, 'Ollama found');
      else this.log.info({ url: ollama.url, err: info.error }, 'no Ollama server answers: ollama tasks are not offered');
    }
    this.ollama = info;
  }

  private async probeDocker(): Promise<void> {
    const docker = this.executors.get('docker');
    this.dockerProbe = docker ? await docker.probe() : { available: false, error: 'docker executor disabled' };
  }

  /**
   * Publishes the status with the last probed capacity, then refreshes the probes in the
   * background: a slow Docker engine or a loaded machine must not delay the heartbeat, or the
   * controller would take a busy node for a dead one.
   */
  private async heartbeat(): Promise<void> {
    if (this.closed) return;
    try {
      await this.publishStatus(this.stopping ? 'draining' : 'online');
      // For container healthchecks: the file's mtime is the last heartbeat the broker took.
      if (this.config.healthFile)
        await writeFile(this.config.healthFile, `${Date.now()}\n`).catch((err: unknown) =>
          this.log.warn({ err: errorMessage(err) }, 'cannot write the health file'),
        );
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'heartbeat failed');
    }
    void this.refreshProbes();
  }

  /**
   * Publishes the status at once (a task came or went) with the last probed capacity; the probes
   * are left to the heartbeat, so starting a task costs no systeminformation or Ollama round trip.
   */
  private announce(): void {
    if (this.closed) return;
    this.publishStatus(this.stopping ? 'draining' : 'online').catch((err) =>
      this.log.warn({ err: errorMessage(err) }, 'status update failed'),
    );
  }

  /** Re-probes the host and Docker, one refresh at a time. */
  private async refreshProbes(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const regpu = Date.now() - this.gpusProbedAt > GPU_PROBE_MS && this.gpus.length > 0;
      const [host, , , gpus] = await Promise.all([probeHost(), this.probeDocker(), this.probeOllama(), regpu ? probeGpus() : undefined]);
      this.host = host;
      if (gpus) {
        this.gpus = gpus;
        this.gpusProbedAt = Date.now();
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'capacity probe failed');
    } finally {
      this.probing = false;
    }
  }

  private async publishStatus(state: NodeStatus['state'], reason?: string): Promise<void> {
    const host = (this.host ??= await probeHost());
    // A heartbeat that was probing while the agent went offline must not overwrite the retained `offline`.
    if (this.closed && state !== 'offline') return;
    const executors: TaskKind[] = [];
    if (this.dockerProbe.available && this.executors.has('docker')) executors.push('docker');
    if (this.executors.has('exec')) executors.push('exec');
    if (this.ollama?.available && this.executors.has('ollama')) executors.push('ollama');
    const status: NodeStatus = {
      v: 1,
      node: this.config.nodeId,
      state,
      version: VERSION,
      seq: ++this.seq,
      ts: Date.now(),
      heartbeatMs: this.config.heartbeatMs,
      hostname: hostname(),
      runId: this.runId,
      capacity: {
        cpu: { cores: host.cores, loadPercent: host.loadPercent },
        memory: { total: host.memoryTotal, available: host.memoryAvailable },
        gpus: this.gpus,
        docker: {
          available: this.dockerProbe.available,
          ...(this.dockerProbe.version ? { version: this.dockerProbe.version } : {}),
          ...(this.dockerProbe.apiVersion ? { apiVersion: this.dockerProbe.apiVersion } : {}),
          ...(this.dockerProbe.error ? { error: this.dockerProbe.error.slice(0, 500) } : {}),
          ...(this.dockerProbe.containersRunning !== undefined ? { containersRunning: this.dockerProbe.containersRunning } : {}),
        },
        ...(this.ollama ? { ollama: this.ollama } : {}),
      },
      offer: {
        maxMemory: this.config.maxMemory === undefined ? null : Math.min(this.config.maxMemory, host.memoryTotal),
        maxTasks: this.config.maxTasks,
        executors,
        labels: this.config.labels,
        lostAfterMs: this.config.lostAfterMs,
      },
      running: [...this.running.values()].map((r) => ({
        taskId: r.taskId,
        attempt: r.attempt,
        memory: r.memory,
        ...(r.kind ? { kind: r.kind } : {}),
      })),
      ...(reason ? { reason } : {}),
    };
    await this.client!.publishAsync(this.t.nodeStatus(this.config.nodeId), encode(status), { qos: 1, retain: true });
  }

  private async publishEvent(task: RunningTask, body: EventBody): Promise<void> {
    if (task.fenced) return;
    const event = {
      v: 1,
      taskId: task.taskId,
      attempt: task.attempt,
      node: this.config.nodeId,
      seq: task.seq++,
      ts: Date.now(),
      ...body,
    } as TaskEvent;
    await this.client!.publishAsync(this.t.taskEvents(task.taskId), encode(event), { qos: 1 });
  }

  private newTask(taskId: string, attempt: number, memory: number, recovered: boolean): RunningTask {
    let markEnded!: () => void;
    const ended = new Promise<void>((r) => (markEnded = r));
    return { taskId, attempt, memory, seq: recovered ? Date.now() : 0, recovered, fenced: false, shutdown: false, ended, markEnded };
  }

  /** The context a task's executor streams into, and the batcher behind its output. */
  private prepare(task: RunningTask): { ctx: ExecutorContext; batcher: Batcher } {
    const output = new OutputBatcher((stream, data) => void this.publishEvent(task, { type: 'log', stream, data }).catch(() => undefined));
    const chunks = new ChunkBatcher((list) => this.publishEvent(task, { type: 'chunks', chunks: list }).catch(() => undefined));
    const batcher: Batcher = {
      end: () => {
        chunks.end();
        output.end();
      },
    };
    const ctx: ExecutorContext = {
      taskId: task.taskId,
      attempt: task.attempt,
      node: this.config.nodeId,
      memory: task.memory,
      output: (stream, chunk) => output.write(stream, chunk),
      chunk: (obj) => chunks.push(obj),
      progress: (p) => void this.publishEvent(task, { type: 'progress', ...p }).catch(() => undefined),
      started: (ref) => void this.publishEvent(task, { type: 'started', ref }).catch(() => undefined),
      published: (ports) => {
        for (const s of this.services) s.taskPublished?.(task.taskId, task.attempt, ports);
      },
    };
    return { ctx, batcher };
  }

  /** Records (task, attempt) as taken: redeliveries of it and assignments of lower attempts are ignored. */
  private remember(taskId: string, attempt: number): void {
    this.seen.add(keyOf(taskId, attempt));
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value!);
    if ((this.latestAttempt.get(taskId) ?? 0) < attempt) {
      this.latestAttempt.delete(taskId);
      this.latestAttempt.set(taskId, attempt);
      if (this.latestAttempt.size > SEEN_LIMIT) this.latestAttempt.delete(this.latestAttempt.keys().next().value!);
    }
  }

  /** Stops a task now, or as soon as it has a handle (a stop can arrive while it is being accepted). */
  private async stopTask(task: RunningTask, graceMs: number): Promise<void> {
    if (task.handle) await task.handle.stop(graceMs);
    else task.pendingStop = Math.min(task.pendingStop ?? graceMs, graceMs);
  }

  /** Stops an attempt superseded by a newer one of the same task; its events are dropped from now on. */
  private fence(task: RunningTask, why: string): void {
    if (task.fenced) return;
    task.fenced = true;
    this.log.warn({ taskId: task.taskId, attempt: task.attempt, why }, 'stopping a stale attempt');
    void this.stopTask(task, FENCE_GRACE_MS).catch((err) =>
      this.log.warn({ taskId: task.taskId, attempt: task.attempt, err: errorMessage(err) }, 'stopping a stale attempt failed'),
    );
  }

  /** Takes the task out of `running` and tells waiters and the controller (next heartbeat). */
  private release(task: RunningTask): void {
    const key = keyOf(task.taskId, task.attempt);
    if (this.running.get(key) === task) this.running.delete(key);
    for (const s of this.services) s.taskEnded?.(task.taskId, task.attempt);
    task.markEnded();
    this.announce();
  }

  /**
   * Asks every executor that can for what a previous agent process of this node left behind,
   * and supervises it like a task of its own. An executor that cannot be asked (engine down) is
   * logged and skipped: its workloads stay as they are.
   */
  private async recover(): Promise<void> {
    for (const executor of this.executors.values()) {
      if (!executor.recover) continue;
      if (executor.kind === 'docker' && !this.dockerProbe.available) {
        this.log.warn({ err: this.dockerProbe.error }, 'not looking for containers to re-adopt: Docker engine not reachable');
        continue;
      }
      const prepared = new Map<string, { task: RunningTask; batcher: Batcher }>();
      let found: RecoveredTask[];
      try {
        found = await executor.recover(this.config.nodeId, (taskId, attempt, memory) => {
          const task = this.newTask(taskId, attempt, memory, true);
          const p = this.prepare(task);
          prepared.set(keyOf(taskId, attempt), { task, batcher: p.batcher });
          return p.ctx;
        });
      } catch (err) {
        this.log.warn({ executor: executor.kind, err: errorMessage(err) }, 'cannot look for tasks to re-adopt');
        continue;
      }
      // Highest attempt of each task first: lower ones found next to it are stale and fenced.
      found.sort((a, b) => b.attempt - a.attempt);
      for (const r of found) {
        const key = keyOf(r.taskId, r.attempt);
        const { task, batcher } = prepared.get(key) ?? {
          task: this.newTask(r.taskId, r.attempt, r.memory, true),
          batcher: new OutputBatcher(() => undefined),
        };
        task.handle = r.handle;
        const newer = this.latestAttempt.get(r.taskId);
        this.remember(r.taskId, r.attempt);
        this.running.set(key, task);
        this.log.info({ taskId: r.taskId, attempt: r.attempt, ref: r.ref, memory: r.memory, executor: executor.kind }, 're-adopted task');
        if (newer !== undefined && newer > r.attempt) this.fence(task, `attempt ${newer} of the task is here too`);
        void this.supervise(task, batcher);
      }
    }
  }

  /** Waits for a started (or re-adopted) task to end, reports how it ended, and releases it. */
  private async supervise(task: RunningTask, batcher: Batcher): Promise<void> {
    const log = { taskId: task.taskId, attempt: task.attempt, ...(task.recovered ? { recovered: true } : {}) };
    let outcome: Outcome;
    try {
      outcome = await task.handle!.done;
    } catch (err) {
      batcher.end();
      let code = err instanceof CutterError ? err.code : 'START_FAILED';
      let message = errorMessage(err);
      if (task.shutdown && (code === 'CANCELLED' || code === 'IMAGE_PULL_FAILED')) {
        code = 'AGENT_SHUTDOWN';
        message = `agent ${this.config.nodeId} shut down before the task started`;
      }
      this.log.warn({ ...log, code, err: message }, 'task failed to run');
      await this.publishEvent(task, { type: 'failed', code, message }).catch((e) =>
        this.log.warn({ ...log, err: errorMessage(e) }, 'could not report the failure'),
      );
      this.release(task);
      return;
    }
    try {
      batcher.end();
      const fields = {
        ...log,
        exitCode: outcome.exitCode,
        oomKilled: outcome.oomKilled,
        cancelled: outcome.cancelled,
        ms: outcome.finishedAt - outcome.startedAt,
      };
      if (task.fenced) {
        // Nothing is reported: the controller has moved on to a newer attempt.
        this.log.info(fields, 'stale attempt ended');
        return;
      }
      // Logged before the report, which waits for the broker's ack (long, when the link is down).
      this.log.info(fields, 'task finished');
      if (task.shutdown && outcome.cancelled) {
        await this.publishEvent(task, {
          type: 'failed',
          code: 'AGENT_SHUTDOWN',
          message: `stopped because agent ${this.config.nodeId} shut down (exit code ${outcome.exitCode})`,
        });
      } else {
        await this.publishEvent(task, { type: 'result', ...outcome });
      }
    } catch (err) {
      this.log.warn({ ...log, err: errorMessage(err) }, 'could not report the result');
    } finally {
      this.release(task);
    }
  }

  private async onAssignment(a: Assignment): Promise<void> {
    const key = keyOf(a.taskId, a.attempt);
    if (this.seen.has(key)) {
      this.log.debug({ taskId: a.taskId, attempt: a.attempt }, 'ignored redelivered assignment');
      return;
    }
    const latest = this.latestAttempt.get(a.taskId);
    if (latest !== undefined && latest > a.attempt) {
      this.log.warn({ taskId: a.taskId, attempt: a.attempt, latest }, 'ignored assignment of a stale attempt');
      return;
    }
    this.remember(a.taskId, a.attempt);

    // Fencing: whatever lower attempt of this task still runs here is stale now.
    const older = [...this.running.values()].filter((r) => r.taskId === a.taskId && r.attempt < a.attempt);
    for (const r of older) this.fence(r, `attempt ${a.attempt} was assigned`);

    const task = this.newTask(a.taskId, a.attempt, a.requirements.memory, false);
    task.kind = a.spec.kind;
    const executor = this.executors.get(a.spec.kind);
    const refuse = (code: string, message: string) => {
      this.log.warn({ taskId: a.taskId, attempt: a.attempt, code, message }, 'refused assignment');
      return this.publishEvent(task, { type: 'failed', code, message });
    };
    if (this.cancelledEarly.delete(key)) return refuse('CANCELLED', 'cancelled before it started');
    if (a.nodeRunId !== null && a.nodeRunId !== this.runId) {
      return refuse(
        'NODE_RESTARTED',
        `attempt ${a.attempt} was placed on an earlier run of agent ${this.config.nodeId}, which has restarted since`,
      );
    }
    if (this.stopping) return refuse('AGENT_SHUTDOWN', `node ${this.config.nodeId} is shutting down`);
    if (!executor) {
      return a.spec.kind === 'exec'
        ? refuse('EXECUTOR_DISABLED', `node ${this.config.nodeId} does not run exec tasks (start its agent with --allow-exec)`)
        : refuse('EXECUTOR_UNAVAILABLE', `node ${this.config.nodeId} has no ${a.spec.kind} executor`);
    }
    if (a.spec.kind === 'docker' && !this.dockerProbe.available)
      return refuse('EXECUTOR_UNAVAILABLE', this.dockerProbe.error ?? 'Docker engine not reachable');
    if (a.spec.kind === 'ollama' && !this.ollama?.available)
      return refuse('EXECUTOR_UNAVAILABLE', this.ollama?.error ?? 'no Ollama server answers on this node');
    const spec = withPolicyDefaults(a.spec, this.policy);
    const violation = policyViolation(spec, this.policy);
    if (violation) return refuse('POLICY_DENIED', `refused by node ${this.config.nodeId}'s policy: ${violation}`);
    const busy = [...this.running.values()].filter((r) => !r.fenced).length;
    if (busy >= this.config.maxTasks)
      return refuse('NODE_BUSY', `node ${this.config.nodeId} already runs ${busy} of at most ${this.config.maxTasks} tasks`);

    this.running.set(key, task);
    // Not awaited: MQTT keeps one client's publishes in order, so `accepted` still precedes
    // whatever the task reports next, and the workload need not wait a broker round trip to start.
    this.publishEvent(task, { type: 'accepted' }).catch((err) =>
      this.log.warn({ taskId: a.taskId, attempt: a.attempt, err: errorMessage(err) }, 'could not report acceptance'),
    );
    this.log.info({ taskId: a.taskId, attempt: a.attempt, kind: a.spec.kind }, 'task accepted');

    // The new attempt starts once the stale ones have stopped (bounded by their grace), so the two never run together.
    if (older.length > 0) await within(Promise.all(older.map((r) => r.ended)), FENCE_GRACE_MS + 5_000);

    const { ctx, batcher } = this.prepare(task);
    if (task.pendingStop !== undefined || task.fenced) {
      // Cancelled, superseded or shut down while it was being accepted: nothing was started.
      const code = task.shutdown ? 'AGENT_SHUTDOWN' : 'CANCELLED';
      await this.publishEvent(task, {
        type: 'failed',
        code,
        message: task.shutdown ? `agent ${this.config.nodeId} shut down before the task started` : 'cancelled before it started',
      }).catch(() => undefined);
      this.log.info({ taskId: a.taskId, attempt: a.attempt, code }, 'task stopped before it started');
      this.release(task);
      return;
    }
    task.handle = executor.start(spec as never, ctx);
    // The status naming the task goes out once the workload is on its way, not before it. Not for
    // an ollama request: its first tokens are on their way now, the controller holds its slot until
    // the next heartbeat lists it, and a status (with every model) costs the server a decode each.
    if (a.spec.kind !== 'ollama') this.announce();
    await this.supervise(task, batcher);
  }

  private async onCancel(c: Cancel): Promise<void> {
    const key = keyOf(c.taskId, c.attempt);
    const task = this.running.get(key);
    if (!task) {
      if (!this.seen.has(key)) {
        this.cancelledEarly.add(key);
        if (this.cancelledEarly.size > SEEN_LIMIT) this.cancelledEarly.delete(this.cancelledEarly.values().next().value!);
      }
      this.log.info({ taskId: c.taskId, attempt: c.attempt }, 'cancel for a task not running here');
      return;
    }
    this.log.info({ taskId: c.taskId, attempt: c.attempt, graceMs: c.graceMs }, 'cancelling task');
    await this.stopTask(task, c.graceMs);
  }
}
