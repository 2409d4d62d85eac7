/**
 * The Ollama API's view of the mesh: one mesh client (shared/client/) that keeps every node's
 * retained status (for /api/tags, /api/ps, /api/version and 404s, without a request per call) and
 * runs each request as an ollama task with `runTask` (the task options every client uses for ollama
 * tasks, shared/client/task-options.ts). Task events and states are watched on two wildcard
 * subscriptions made once, so a request costs no SUBSCRIBE round trip; only topics of tasks in
 * flight here are decoded.
 */
import type { Duplex } from 'node:stream';
import { MeshClient, outcomeError, runTask, type TaskRun } from '../../shared/client/index.js';
import { decode } from '../../shared/codec.js';
import type { CliConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { sameModel } from '../../shared/ollama.js';
import { formatRejections } from '../../shared/reasons.js';
import { type NodeStatus, NodeStatusSchema, type OllamaSpec, type Rejection } from '../../shared/schemas/index.js';
import type { Topics } from '../../shared/topics.js';

type Chunk = Record<string, unknown>;

/** What a caller of `run()` is told while its task runs. */
export interface RunCallbacks {
  /** Ollama's response objects, in order. */
  onChunks(chunks: Chunk[]): void;
}

export class MeshGateway {
  private readonly nodes = new Map<string, NodeStatus>();
  private readonly flights = new Set<TaskRun>();
  private closing = false;
  private readonly t: Topics;

  private constructor(
    private readonly client: MeshClient,
    private readonly log: Logger,
  ) {
    this.t = client.topics;
  }

  /**
   * Connects and subscribes (node statuses, task events and states).
   * @throws CutterError BROKER_UNREACHABLE.
   */
  static async connect(cfg: CliConfig, log: Logger, streamBuilder?: () => Duplex): Promise<MeshGateway> {
    // Task events at QoS 0: the API sits beside the broker on loopback, and a stream whose client
    // connection breaks is lost anyway; it saves a PUBACK per chunk batch. States stay QoS 1.
    const client = await MeshClient.connect(
      { ...cfg, timeoutMs: Math.max(cfg.timeoutMs, 10_000) },
      { clientIdPrefix: 'cutter-ollama-api', streamBuilder, watchAllTasks: { eventsQos: 0 } },
    );
    const self = new MeshGateway(client, log);
    client.mqtt.on('message', (topic, payload) => self.onNodeStatus(topic, payload));
    // Statuses at QoS 0: each is a whole snapshot, the next comes within a heartbeat, and the
    // broker then keeps no in-flight copy of every node's every heartbeat for this client.
    await client.mqtt.subscribeAsync(self.t.allNodeStatus(), { qos: 0 });
    return self;
  }

  /** The MQTT client id (the controller's audit log names it). */
  get clientId(): string {
    return this.client.clientId;
  }

  private onNodeStatus(topic: string, payload: Buffer): void {
    const p = this.t.parse(topic);
    if (p?.kind !== 'nodeStatus') return;
    if (payload.length === 0) {
      this.nodes.delete(p.node);
      return;
    }
    const decoded = decode(NodeStatusSchema, payload);
    if (!decoded.ok) {
      this.log.warn({ topic, err: decoded.error }, 'ollama api: dropped malformed node status');
      return;
    }
    this.nodes.set(p.node, decoded.value);
  }

  /** Statuses of the nodes that are online now (not offline, not draining). */
  onlineNodes(): NodeStatus[] {
    return [...this.nodes.values()].filter((n) => n.state === 'online' && n.capacity?.ollama?.available);
  }

  /** True when some online node has the model pulled. */
  hasModel(model: string): boolean {
    return this.onlineNodes().some((n) => n.capacity!.ollama!.models.some((m) => sameModel(m.name, model)));
  }

  /**
   * Runs one ollama task on the mesh and resolves when it succeeded.
   * @param signal aborting it cancels the task (the HTTP client went away).
   * @param node run it on this node only (the scheduler's explicit node), else where the scheduler picks.
   * @throws CutterError with the node's code (MODEL_NOT_FOUND, OLLAMA_ERROR …), NODE_LOST, CANCELLED,
   *   NO_FIT (the reason per node in the message), RATE_LIMITED, NO_CONTROLLER.
   */
  async run(spec: OllamaSpec, cb: RunCallbacks, signal?: AbortSignal, node?: string): Promise<{ taskId: string }> {
    if (this.closing) throw new CutterError('CANCELLED', 'server shutting down');
    let run: TaskRun;
    try {
      run = await runTask(this.client, { spec, ...(node ? { requirements: { node } } : {}) });
    } catch (err) {
      if ((err as CutterError).code === 'NO_FIT') {
        const rejections = ((err as CutterError).details as Rejection[] | undefined) ?? [];
        throw new CutterError('NO_FIT', `${errorMessage(err)}${rejections.length ? `: ${formatRejections(rejections)}` : ''}`);
      }
      throw err;
    }
    this.flights.add(run);
    let cancelled = false;
    const onAbort = () => {
      cancelled = true;
      run.cancel(0).catch((err: unknown) => this.log.warn({ taskId: run.taskId, err }, 'ollama api: cancel failed'));
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const u of run.events) if (u.type === 'event' && u.event.type === 'chunks') cb.onChunks(u.event.chunks);
      const o = await run.result;
      if (cancelled) throw new CutterError('CANCELLED', 'request canceled');
      if (o.end === 'stopped') throw new CutterError('CANCELLED', `server shutting down (task ${run.taskId})`);
      const s = o.state;
      if (o.end === 'terminal' && s?.state === 'lost')
        throw new CutterError(
          'NODE_LOST',
          `node ${s.node ?? '?'} was lost while serving the request${s.error ? ` (${s.error.message})` : ''}`,
        );
      if (o.end === 'terminal' && s?.state === 'cancelled') throw new CutterError('CANCELLED', 'request canceled');
      const err = outcomeError(o);
      if (err) throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.flights.delete(run);
    }
    return { taskId: run.taskId };
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const run of this.flights) run.stop();
    this.flights.clear();
    await this.client.close();
  }
}
