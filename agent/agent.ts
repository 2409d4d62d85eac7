/**
 * The agent: one node of the mesh. Dials out to the broker (nothing listens on the node),
 * announces its capacity as a retained heartbeat with a retained `offline` last will, takes
 * assignments over a persistent session (QoS 1, so a reconnecting agent gets what was sent while
 * it was away), runs them through its executors and streams their events back.
 *
 * This file only wires the parts:
 * - agent/heartbeat.ts: probes, fingerprints the executors, builds and publishes the NodeStatus;
 * - agent/tasks.ts: assignments, de-duplication, fencing, cancels, re-adoption, drain;
 * - agent/executors/registry.ts: the executors by kind (agent/executors/defaults.ts builds them);
 * - agent/services.ts: file transfer, image sync and port announcement next to the tasks.
 *
 * Lifecycle of one agent process:
 * - start: probe, connect, re-adopt what a previous process of this node left running (executors'
 *   `recover()`, Nomad's RecoverTask), then handle assignments and heartbeat. Re-adopted tasks are
 *   listed in the heartbeat's `running` (that is how the controller learns they live on).
 * - stop (SIGTERM): drain. The node announces `draining` (no new placements), refuses new
 *   assignments with AGENT_SHUTDOWN, waits up to `drainTimeoutMs` for running tasks to end on
 *   their own, stops the rest (reported `failed` AGENT_SHUTDOWN, which the controller reschedules),
 *   then announces `offline` and disconnects.
 */
import { randomBytes } from 'node:crypto';
import { encode } from '../shared/codec.js';
import type { AgentConfig } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { CutterError } from '../shared/errors.js';
import { connectMqtt, MessageRouter, type MqttClient } from '../shared/mqtt.js';
// The schemas from their own files, not the index: an agent builds none of the server's and the CLI's (bench/profile.md).
import { AssignmentSchema, CancelSchema } from '../shared/schemas/assignment.js';
import { LendingSetSchema } from '../shared/schemas/lending.js';
import { AckSchema } from '../shared/schemas/task.js';
import { WakeCommandSchema } from '../shared/schemas/wake.js';
import { topics } from '../shared/topics.js';
import { defaultExecutors } from './executors/defaults.js';
import { WakeRelay } from './wake-relay.js';
import type { Executor } from './executors/executor.js';
import { ExecutorRegistry } from './executors/registry.js';
import { GpuInventory } from './gpus.js';
import { Heartbeat } from './heartbeat.js';
import type { DockerExecutor } from './executors/docker.js';
import { lendingFromConfig } from './lending/config.js';
import { Lender } from './lending/lender.js';
import type { AgentService } from './service.js';
import { defaultServices } from './services.js';
import { releaseOptimisingCompiler } from './start-compiler.js';
import { RESEND_AFTER_MS, TaskEvents } from './task-events.js';
import { TaskRunner, within } from './tasks.js';
import { ioOf } from './io/requests.js';

/** First and longest wait before connecting again while another agent serves this node id, ms. */
const IN_USE_RETRY_MS = 5_000;
const IN_USE_RETRY_MAX_MS = 60_000;
/** Longest wait for a status publish or the disconnect while shutting down, ms (the broker may be gone). */
const SHUTDOWN_IO_MS = 2_000;

/**
 * One node's agent (see the file comment for its lifecycle). `start()` once, `stop()` once to
 * drain and leave; executors default to docker, exec (turned off without `config.allowExec`) and,
 * with `config.ollamaUrl`, ollama.
 */
export class Agent {
  private readonly log: Logger;
  private readonly executors: ExecutorRegistry;
  private readonly heartbeat: Heartbeat;
  /** The node's NVIDIA GPUs (nvidia-smi), announced and handed to tasks by UUID. */
  private readonly nvidia = new GpuInventory();
  private readonly tasks: TaskRunner;
  private readonly events: TaskEvents;
  /** The lending policy at work (agent/lending): suspends, resumes and preempts tasks as the owner's state changes. */
  private readonly lender: Lender;
  private readonly wakeRelay: WakeRelay;
  private client?: MqttClient;
  /** Resolves when re-adoption is done; assignment and cancel handling waits for it. */
  private ready: Promise<void> = Promise.resolve();
  private stopped?: Promise<void>;
  /** Random id of this agent process, in every status: assignments for an earlier run are refused. */
  readonly runId = randomBytes(8).toString('hex');

  /**
   * @param executors one per kind (agent/executors/defaults.ts by default)
   * @param services hosted next to task execution (file transfer, image sync); see agent/services.ts.
   * @throws Error when two executors claim the same kind.
   */
  constructor(
    private readonly config: AgentConfig,
    log: Logger,
    executors: Executor[] = defaultExecutors(config),
    private readonly services: AgentService[] = defaultServices(config, log, executors),
  ) {
    this.log = log.child({ component: 'agent', node: config.nodeId });
    this.executors = new ExecutorRegistry(executors, this.log);
    this.events = new TaskEvents(config.nodeId, topics(config.prefix), services);
    this.events.onGiveUp = (taskId, attempt) =>
      this.log.warn({ taskId, attempt }, 'too many results wait for the controller: the oldest is no longer sent again');
    this.events.onCreditRelease = (taskId, attempt, why, outstanding) =>
      this.log.info(
        { taskId, attempt, why, outstanding },
        why === 'timeout'
          ? 'output reader sent no credit while the output was held: the output goes on to the kept logs'
          : 'output reader stopped following: the output goes on to the kept logs',
      );
    this.heartbeat = new Heartbeat({
      config,
      runId: this.runId,
      log: this.log,
      executors: this.executors,
      running: () => this.tasks.list(),
      finished: () => this.events.finished(),
      nvidia: this.nvidia,
      lending: () => this.lender.status(),
    });
    const lending = lendingFromConfig(config);
    this.lender = new Lender({
      policy: lending.policy,
      sampleMs: lending.sampleMs,
      powerSupplyDir: config.powerSupplyDir,
      log: this.log.child({ component: 'lending' }),
      tasks: () => this.tasks.lendable(),
      preempt: (key, why) => this.tasks.preempt(key, why),
      docker: () => (executors.find((e) => e.kind === 'docker') as DockerExecutor | undefined)?.docker,
      announce: () => this.heartbeat.announce(),
    });
    this.tasks = new TaskRunner({
      config,
      runId: this.runId,
      log: this.log,
      executors: this.executors,
      events: this.events,
      services,
      announce: () => this.heartbeat.announce(),
      gpus: () => this.nvidia.uuids(),
      lending: this.lender,
      io: ioOf(config),
    });
    this.wakeRelay = new WakeRelay({
      address: config.wakeAddress,
      port: config.wakePort,
      log: this.log.child({ component: 'wake' }),
    });
  }

  /** The node id this agent announces and takes assignments for. */
  get nodeId(): string {
    return this.config.nodeId;
  }

  /** Tasks running on this node now (re-adopted ones included). */
  get runningTasks(): number {
    return this.tasks.counts().running;
  }

  /**
   * Probes, connects (retrying until the broker answers), subscribes, re-adopts what a previous
   * agent process of this node left running, and starts the heartbeat. Assignments and cancels
   * that arrive before re-adoption is done (a persistent session delivers queued ones right after
   * connecting) wait for it.
   */
  async start(): Promise<void> {
    await this.heartbeat.probeAll();
    let markReady!: () => void;
    this.ready = new Promise((r) => (markReady = r));
    const t = topics(this.config.prefix);
    let router!: MessageRouter;
    this.client = await this.connectRetryingInUse(() =>
      connectMqtt({
        url: this.config.broker,
        clientId: `cutter-agent-${this.config.nodeId}`,
        clean: false,
        keepaliveSec: this.config.keepaliveSec,
        username: this.config.username,
        password: this.config.password,
        will: { topic: this.heartbeat.topic, payload: encode(this.heartbeat.lastWill()), qos: 1, retain: true },
        log: this.log,
        onClient: (client) => {
          // The first message is the first work (an assignment, a transfer, a port, an ack of a
          // re-adopted task's events …): from then on V8 optimises what runs hot (./start-compiler.ts).
          client.once('message', releaseOptimisingCompiler);
          this.heartbeat.attach(client);
          this.events.attach(client);
          // Routes before the CONNACK: the persistent session's queued assignments arrive right after it.
          router = new MessageRouter(client, this.log);
          router.route(t.nodeAssign(this.config.nodeId), AssignmentSchema, async (a) => {
            await this.ready;
            await this.tasks.onAssignment(a);
          });
          router.route(t.nodeCancel(this.config.nodeId), CancelSchema, async (c) => {
            await this.ready;
            await this.tasks.onCancel(c);
          });
          router.route(t.nodeAck(this.config.nodeId), AckSchema, (a) => this.events.onAck(a));
          router.route(t.nodeLendingSet(this.config.nodeId), LendingSetSchema, (s) => this.lender.apply(s));
          router.route(t.nodeWake(this.config.nodeId), WakeCommandSchema, (w) => this.wakeRelay.handle(w));
          for (const s of this.services) s.attach(client, router);
        },
      }),
    );
    await router.subscribeAll();
    for (const s of this.services) await s.start?.();
    this.client.on('connect', () => {
      this.log.info('reconnected to broker');
      void this.heartbeat.beat();
      this.events.resend();
    });
    try {
      await this.tasks.recover();
    } finally {
      markReady();
    }
    if (this.tasks.counts().readopted > 0) releaseOptimisingCompiler();
    if (this.heartbeat.isClosed) return;
    this.events.startResending(RESEND_AFTER_MS);
    await this.heartbeat.start();
    if (this.heartbeat.isClosed) return;
    await this.lender.start();
    this.log.info(
      {
        broker: this.config.broker,
        executors: this.executors.offered(),
        maxMemory: this.config.maxMemory ?? null,
        maxTasks: this.config.maxTasks,
        lostAfterMs: this.config.lostAfterMs,
        drainTimeoutMs: this.config.drainTimeoutMs,
        readopted: this.tasks.counts().readopted,
      },
      'agent started',
    );
  }

  /**
   * Connects; while the server refuses this node id because another agent serves it (CONNACK 2,
   * identifier rejected: broker/sessions.ts), says so once and tries again after 5 s, 10 s … at most
   * 60 s apart — MQTT.js itself does not reconnect after a CONNACK error (protocol-facts §5.1).
   * @throws the connect error for any other refusal, or once the agent is stopped meanwhile.
   */
  private async connectRetryingInUse(connect: () => Promise<MqttClient>): Promise<MqttClient> {
    let delayMs = IN_USE_RETRY_MS;
    for (let told = false; ; told = true) {
      try {
        return await connect();
      } catch (err) {
        const code = err instanceof CutterError ? (err.details as { connackCode?: unknown } | undefined)?.connackCode : undefined;
        if (code !== 2 || this.stopped) throw err;
        const id = this.config.nodeId;
        if (!told)
          this.log.error(
            { err, nodeId: id, retryInMs: delayMs },
            `node ${id} is already served by another agent (the server refused client id cutter-agent-${id}; its log names that agent's address): give each machine its own node id (--node-id); retrying with backoff up to ${IN_USE_RETRY_MAX_MS / 1000} s`,
          );
        else this.log.debug({ nodeId: id, retryInMs: delayMs }, 'node id still in use, retrying');
        await new Promise((r) => setTimeout(r, delayMs));
        delayMs = Math.min(IN_USE_RETRY_MAX_MS, delayMs * 2);
      }
    }
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
    this.tasks.refuseNew();
    this.heartbeat.drain();
    await this.lender.stop(); // paused tasks resume: they may finish while the agent drains
    const client = this.client;
    if (!client) {
      this.heartbeat.close();
      return;
    }
    await this.ready;
    this.log.info({ running: this.tasks.counts().running, drainTimeoutMs: this.config.drainTimeoutMs }, 'draining');
    await within(this.heartbeat.publishNow(), SHUTDOWN_IO_MS);
    await this.tasks.drain(this.config.drainTimeoutMs, graceMs);
    this.heartbeat.close();
    this.events.stopResending();
    for (const s of this.services) await s.stop?.().catch((err) => this.log.warn({ err }, 'stopping a service failed'));
    if (!(await within(this.heartbeat.offline(reason), SHUTDOWN_IO_MS)))
      this.log.warn('could not publish offline status: broker not answering');
    if (!(await within(client.endAsync(), SHUTDOWN_IO_MS))) client.end(true);
  }
}
