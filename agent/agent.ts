/**
 * The agent: one node of the mesh. Dials out to the broker (nothing listens on the node),
 * announces its capacity as a retained heartbeat with a retained `offline` last will, takes
 * assignments over a persistent session (QoS 1, so a reconnecting agent gets what was sent while
 * it was away), runs them through its executors and streams their events back.
 */
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
  type NodeStatus,
  type TaskEvent,
  type TaskKind,
} from '../shared/schemas/index.js';
import { topics, type Topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';
import { DockerExecutor } from './executors/docker.js';
import { ExecExecutor } from './executors/exec.js';
import type { Executor, ExecutorProbe, TaskHandle } from './executors/executor.js';
import { OutputBatcher } from './output-batcher.js';
import { probeGpus, probeHost } from './probe.js';

interface RunningTask {
  taskId: string;
  attempt: number;
  memory: number;
  handle?: TaskHandle;
  seq: number;
}

/** Distributes an event without its envelope fields; the agent adds v, ids, seq and ts. */
type EventBody = TaskEvent extends infer E ? (E extends TaskEvent ? Omit<E, 'v' | 'taskId' | 'attempt' | 'node' | 'seq' | 'ts'> : never) : never;

/** How many (task, attempt) pairs the agent remembers to drop redelivered assignments. */
const SEEN_LIMIT = 10_000;

export class Agent {
  private readonly t: Topics;
  private readonly log: Logger;
  private readonly executors = new Map<TaskKind, Executor>();
  private readonly running = new Map<string, RunningTask>();
  private readonly seen = new Set<string>();
  /** Cancels that arrived before their assignment (different topics are not ordered). */
  private readonly cancelledEarly = new Set<string>();
  private client?: MqttClient;
  private heartbeatTimer?: NodeJS.Timeout;
  private seq = 0;
  private gpus: Gpu[] = [];
  private dockerProbe: ExecutorProbe = { available: false, error: 'not probed yet' };
  private stopping = false;

  constructor(
    private readonly config: AgentConfig,
    log: Logger,
    executors: Executor[] = [new DockerExecutor(), new ExecExecutor()],
  ) {
    this.t = topics(config.prefix);
    this.log = log.child({ component: 'agent', node: config.nodeId });
    for (const e of executors) if (e.kind !== 'exec' || config.allowExec) this.executors.set(e.kind, e);
  }

  get nodeId(): string {
    return this.config.nodeId;
  }

  /** Probes, connects (retrying until the broker answers), subscribes and starts the heartbeat. */
  async start(): Promise<void> {
    [this.gpus] = await Promise.all([probeGpus(), this.probeDocker()]);
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
    };
    this.client = await connectMqtt({
      url: this.config.broker,
      clientId: `cutter-agent-${this.config.nodeId}`,
      clean: false,
      keepaliveSec: this.config.keepaliveSec,
      username: this.config.username,
      password: this.config.password,
      will: { topic: this.t.nodeStatus(this.config.nodeId), payload: encode(will), qos: 1, retain: true },
      log: this.log,
    });
    const router = new MessageRouter(this.client, this.log);
    await router.on(this.t.nodeAssign(this.config.nodeId), AssignmentSchema, (a) => this.onAssignment(a));
    await router.on(this.t.nodeCancel(this.config.nodeId), CancelSchema, (c) => this.onCancel(c));
    this.client.on('connect', () => {
      this.log.info('reconnected to broker');
      void this.heartbeat();
    });
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.config.heartbeatMs);
    this.log.info({ broker: this.config.broker, executors: [...this.executors.keys()], maxMemory: this.config.maxMemory ?? null, maxTasks: this.config.maxTasks }, 'agent started');
  }

  /**
   * Stops: cancels running tasks (they are reported failed with AGENT_SHUTDOWN), publishes a
   * retained `offline` status and disconnects.
   */
  async stop(reason = 'agent stopped', graceMs = 3_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.heartbeatTimer);
    const pending = [...this.running.values()];
    await Promise.all(pending.map((r) => r.handle?.stop(graceMs).catch(() => undefined)));
    const deadline = Date.now() + graceMs + 5_000;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!this.client) return;
    await this.publishStatus('offline', reason).catch(() => undefined);
    await this.client.endAsync();
  }

  private async probeDocker(): Promise<void> {
    const docker = this.executors.get('docker');
    this.dockerProbe = docker ? await docker.probe() : { available: false, error: 'docker executor disabled' };
  }

  private async heartbeat(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.probeDocker();
      await this.publishStatus('online');
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'heartbeat failed');
    }
  }

  private async publishStatus(state: NodeStatus['state'], reason?: string): Promise<void> {
    const host = await probeHost();
    const executors: TaskKind[] = [];
    if (this.dockerProbe.available && this.executors.has('docker')) executors.push('docker');
    if (this.executors.has('exec')) executors.push('exec');
    const status: NodeStatus = {
      v: 1,
      node: this.config.nodeId,
      state,
      version: VERSION,
      seq: ++this.seq,
      ts: Date.now(),
      heartbeatMs: this.config.heartbeatMs,
      hostname: hostname(),
      capacity: {
        cpu: { cores: host.cores, loadPercent: host.loadPercent },
        memory: { total: host.memoryTotal, available: host.memoryAvailable },
        gpus: this.gpus,
        docker: {
          available: this.dockerProbe.available,
          ...(this.dockerProbe.version ? { version: this.dockerProbe.version } : {}),
          ...(this.dockerProbe.apiVersion ? { apiVersion: this.dockerProbe.apiVersion } : {}),
          ...(this.dockerProbe.error ? { error: this.dockerProbe.error.slice(0, 500) } : {}),
        },
      },
      offer: {
        maxMemory: this.config.maxMemory === undefined ? null : Math.min(this.config.maxMemory, host.memoryTotal),
        maxTasks: this.config.maxTasks,
        executors,
        labels: this.config.labels,
      },
      running: [...this.running.values()].map((r) => ({ taskId: r.taskId, attempt: r.attempt, memory: r.memory })),
      ...(reason ? { reason } : {}),
    };
    await this.client!.publishAsync(this.t.nodeStatus(this.config.nodeId), encode(status), { qos: 1, retain: true });
  }

  private async publishEvent(task: RunningTask, body: EventBody): Promise<void> {
    const event = { v: 1, taskId: task.taskId, attempt: task.attempt, node: this.config.nodeId, seq: task.seq++, ts: Date.now(), ...body } as TaskEvent;
    await this.client!.publishAsync(this.t.taskEvents(task.taskId), encode(event), { qos: 1 });
  }

  private async onAssignment(a: Assignment): Promise<void> {
    const key = `${a.taskId}:${a.attempt}`;
    if (this.seen.has(key)) {
      this.log.debug({ taskId: a.taskId, attempt: a.attempt }, 'ignored redelivered assignment');
      return;
    }
    this.seen.add(key);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value!);

    const task: RunningTask = { taskId: a.taskId, attempt: a.attempt, memory: a.requirements.memory, seq: 0 };
    const executor = this.executors.get(a.spec.kind);
    const refuse = (code: string, message: string) => {
      this.log.warn({ taskId: a.taskId, code, message }, 'refused assignment');
      return this.publishEvent(task, { type: 'failed', code, message });
    };
    if (this.cancelledEarly.delete(key)) return refuse('CANCELLED', 'cancelled before it started');
    if (this.stopping) return refuse('AGENT_SHUTDOWN', `node ${this.config.nodeId} is shutting down`);
    if (!executor) {
      return a.spec.kind === 'exec'
        ? refuse('EXECUTOR_DISABLED', `node ${this.config.nodeId} does not run exec tasks (start its agent with --allow-exec)`)
        : refuse('EXECUTOR_UNAVAILABLE', `node ${this.config.nodeId} has no ${a.spec.kind} executor`);
    }
    if (a.spec.kind === 'docker' && !this.dockerProbe.available) return refuse('EXECUTOR_UNAVAILABLE', this.dockerProbe.error ?? 'Docker engine not reachable');
    if (this.running.size >= this.config.maxTasks) return refuse('NODE_BUSY', `node ${this.config.nodeId} already runs ${this.running.size} of at most ${this.config.maxTasks} tasks`);

    this.running.set(a.taskId, task);
    await this.publishEvent(task, { type: 'accepted' });
    void this.heartbeat();
    this.log.info({ taskId: a.taskId, attempt: a.attempt, kind: a.spec.kind }, 'task accepted');

    const batcher = new OutputBatcher((stream, data) => void this.publishEvent(task, { type: 'log', stream, data }).catch(() => undefined));
    task.handle = executor.start(a.spec as never, {
      taskId: a.taskId,
      attempt: a.attempt,
      node: this.config.nodeId,
      output: (stream, chunk) => batcher.write(stream, chunk),
      progress: (p) => void this.publishEvent(task, { type: 'progress', ...p }).catch(() => undefined),
      started: (ref) => void this.publishEvent(task, { type: 'started', ref }).catch(() => undefined),
    });
    try {
      const outcome = await task.handle.done;
      batcher.end();
      if (this.stopping && outcome.cancelled) {
        await this.publishEvent(task, { type: 'failed', code: 'AGENT_SHUTDOWN', message: `stopped because agent ${this.config.nodeId} shut down (exit code ${outcome.exitCode})` });
      } else {
        await this.publishEvent(task, { type: 'result', ...outcome });
      }
      this.log.info({ taskId: a.taskId, exitCode: outcome.exitCode, oomKilled: outcome.oomKilled, cancelled: outcome.cancelled, ms: outcome.finishedAt - outcome.startedAt }, 'task finished');
    } catch (err) {
      batcher.end();
      const code = err instanceof CutterError ? err.code : 'START_FAILED';
      await this.publishEvent(task, { type: 'failed', code, message: errorMessage(err) }).catch(() => undefined);
      this.log.warn({ taskId: a.taskId, code, err: errorMessage(err) }, 'task failed to run');
    } finally {
      this.running.delete(a.taskId);
      void this.heartbeat();
    }
  }

  private async onCancel(c: Cancel): Promise<void> {
    const task = this.running.get(c.taskId);
    if (!task || task.attempt !== c.attempt) {
      const key = `${c.taskId}:${c.attempt}`;
      if (!this.seen.has(key)) {
        this.cancelledEarly.add(key);
        if (this.cancelledEarly.size > SEEN_LIMIT) this.cancelledEarly.delete(this.cancelledEarly.values().next().value!);
      }
      this.log.info({ taskId: c.taskId, attempt: c.attempt }, 'cancel for a task not running here');
      return;
    }
    this.log.info({ taskId: c.taskId, graceMs: c.graceMs }, 'cancelling task');
    await task.handle?.stop(c.graceMs);
  }
}
