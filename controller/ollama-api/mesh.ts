/**
 * The Ollama API's view of the mesh: one MQTT client (the CLI's request client) that keeps every
 * node's retained status (for /api/tags, /api/ps, /api/version and 404s, without a request per
 * call), submits ollama tasks to the controller, and hands each task's chunks to whoever waits for
 * them. Task events and states are followed on two wildcard subscriptions made once, so a request
 * costs no SUBSCRIBE round trip; only topics of tasks in flight here are decoded.
 */
import type { Duplex } from 'node:stream';
import { CliClient, newTaskId } from '../../cli/client.js';
import { decode } from '../../shared/codec.js';
import type { CliConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { sameModel } from '../../shared/ollama.js';
import { formatRejections } from '../../shared/reasons.js';
import {
  NodeStatusSchema,
  TaskEventSchema,
  TaskStateSchema,
  type NodeStatus,
  type OllamaSpec,
  type Rejection,
} from '../../shared/schemas/index.js';
import { topics, type Topics } from '../../shared/topics.js';

type Chunk = Record<string, unknown>;

/** What a caller of `run()` is told while its task runs. */
export interface RunCallbacks {
  /** Ollama's response objects, in order. */
  onChunks(chunks: Chunk[]): void;
}

/** A task in flight through the API. */
interface Flight {
  cb: RunCallbacks;
  resolve(): void;
  reject(err: CutterError): void;
  /** Highest event seq handed on, per attempt (events are at-least-once). */
  seq: number;
  attempt: number;
}

export class MeshGateway {
  private readonly nodes = new Map<string, NodeStatus>();
  private readonly flights = new Map<string, Flight>();
  private readonly t: Topics;

  private constructor(
    private readonly client: CliClient,
    private readonly log: Logger,
    prefix: string,
  ) {
    this.t = topics(prefix);
  }

  /**
   * Connects and subscribes (node statuses, task events and states).
   * @throws CutterError BROKER_UNREACHABLE.
   */
  static async connect(cfg: CliConfig, log: Logger, streamBuilder?: () => Duplex): Promise<MeshGateway> {
    const client = await CliClient.connect({ ...cfg, timeoutMs: Math.max(cfg.timeoutMs, 10_000) }, 'cutter-ollama-api', streamBuilder);
    const self = new MeshGateway(client, log, cfg.prefix);
    const t = self.t;
    const raw = client.mqtt;
    raw.on('message', (topic, payload) => self.onMessage(topic, payload));
    // Task events at QoS 0: the API sits beside the broker on loopback, and a stream whose client
    // connection breaks is lost anyway; it saves a PUBACK per chunk batch. States stay QoS 1.
    await raw.subscribeAsync({ [t.taskEvents('+')]: { qos: 0 }, [t.nodeStatus('+')]: { qos: 1 }, [t.taskState('+')]: { qos: 1 } });
    return self;
  }

  /** The MQTT client id (the controller's audit log names it). */
  get clientId(): string {
    return this.client.clientId;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const task = this.t.idFrom(topic, 'tasks');
    if (task !== null) {
      const flight = this.flights.get(task);
      if (!flight) return;
      if (topic === this.t.taskEvents(task)) this.onEvent(task, flight, payload);
      else if (topic === this.t.taskState(task)) this.onState(task, flight, payload);
      return;
    }
    const node = this.t.idFrom(topic, 'nodes');
    if (node === null || topic !== this.t.nodeStatus(node)) return;
    if (payload.length === 0) {
      this.nodes.delete(node);
      return;
    }
    const decoded = decode(NodeStatusSchema, payload);
    if (!decoded.ok) {
      this.log.warn({ topic, err: decoded.error }, 'ollama api: dropped malformed node status');
      return;
    }
    this.nodes.set(node, decoded.value);
  }

  private onEvent(taskId: string, f: Flight, payload: Buffer): void {
    const decoded = decode(TaskEventSchema, payload);
    if (!decoded.ok) {
      this.log.warn({ taskId, err: decoded.error }, 'ollama api: dropped malformed task event');
      return;
    }
    const e = decoded.value;
    if (e.attempt < f.attempt) return;
    if (e.attempt > f.attempt) {
      f.attempt = e.attempt;
      f.seq = -1;
    }
    if (e.seq <= f.seq) return; // redelivered
    f.seq = e.seq;
    switch (e.type) {
      case 'chunks':
        f.cb.onChunks(e.chunks);
        return;
      case 'result':
        this.flights.delete(taskId);
        if (e.cancelled) f.reject(new CutterError('CANCELLED', 'request canceled'));
        else f.resolve();
        return;
      case 'failed':
        this.flights.delete(taskId);
        f.reject(new CutterError(e.code as never, e.message));
        return;
      default:
        return;
    }
  }

  /** A task that ends without its node saying so (node lost, timed out, cancelled while queued). */
  private onState(taskId: string, f: Flight, payload: Buffer): void {
    const decoded = decode(TaskStateSchema, payload);
    if (!decoded.ok) return;
    const s = decoded.value;
    if (s.state === 'lost' || s.state === 'cancelled' || (s.state === 'failed' && s.error)) {
      this.flights.delete(taskId);
      const code = s.state === 'lost' ? 'NODE_LOST' : s.state === 'cancelled' ? 'CANCELLED' : (s.error?.code ?? 'INTERNAL');
      const message =
        s.state === 'lost'
          ? `node ${s.node ?? '?'} was lost while serving the request${s.error ? ` (${s.error.message})` : ''}`
          : (s.error?.message ?? s.state);
      f.reject(new CutterError(code as never, message));
    }
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
   * Runs one ollama task on the mesh and resolves when the node reports it done.
   * @param signal aborting it cancels the task (the HTTP client went away).
   * @throws CutterError with the node's code (MODEL_NOT_FOUND, OLLAMA_ERROR …), NODE_LOST, CANCELLED,
   *   NO_FIT, RATE_LIMITED, NO_CONTROLLER.
   */
  async run(spec: OllamaSpec, cb: RunCallbacks, signal?: AbortSignal): Promise<{ taskId: string }> {
    const taskId = newTaskId();
    let cancelled = false;
    const done = new Promise<void>((resolve, reject) => {
      this.flights.set(taskId, { cb, resolve, reject, seq: -1, attempt: 0 });
    });
    const onAbort = () => {
      cancelled = true;
      this.client.request({ op: 'cancel', taskId, graceMs: 0 }, TaskStateSchema).catch((err) => {
        if ((err as CutterError).code !== 'ALREADY_FINISHED')
          this.log.warn({ taskId, err: errorMessage(err) }, 'ollama api: cancel failed');
      });
    };
    // Like Ollama's own request queue, a request waits while the nodes that can serve it are busy;
    // one no node can serve (no room to load the model anywhere) fails at once with the reason per node.
    const submit = (queue: boolean) =>
      this.client.request(
        {
          op: 'submit',
          taskId,
          spec,
          requirements: { memory: 0, cpus: 0 },
          // A stream half-delivered cannot be replayed to its client: no retries, and a lost node ends it at once.
          options: { restart: 'never', maxAttempts: 1, queue, timeoutMs: null, lostAfterMs: 0, priority: 0 },
        },
        TaskStateSchema,
      );
    try {
      try {
        await submit(false);
      } catch (err) {
        const rejections = (err as CutterError).details as Rejection[] | undefined;
        if ((err as CutterError).code !== 'NO_FIT' || !rejections?.some((r) => r.code === 'max-tasks')) throw err;
        await submit(true);
      }
    } catch (err) {
      this.flights.delete(taskId);
      if ((err as CutterError).code === 'NO_FIT') {
        const rejections = ((err as CutterError).details as Rejection[] | undefined) ?? [];
        throw new CutterError('NO_FIT', `${errorMessage(err)}${rejections.length ? `: ${formatRejections(rejections)}` : ''}`);
      }
      throw err;
    }
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await done;
    } catch (err) {
      if (cancelled) throw new CutterError('CANCELLED', 'request canceled');
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return { taskId };
  }

  async close(): Promise<void> {
    for (const [id, f] of this.flights) f.reject(new CutterError('CANCELLED', `server shutting down (task ${id})`));
    this.flights.clear();
    await this.client.close();
  }
}
