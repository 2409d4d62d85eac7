/**
 * The CLI's connection to the mesh: a short-lived MQTT client that sends requests to the
 * controller and follows task events and state.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { decode, encode } from '../shared/codec.js';
import type { CliConfig } from '../shared/config.js';
import { CutterError } from '../shared/errors.js';
import { MessageRouter, connectMqtt, type MqttClient } from '../shared/mqtt.js';
import {
  ControllerStatusSchema,
  ReplySchema,
  TaskEventSchema,
  TaskStateSchema,
  type ControllerStatus,
  type Request,
  type TaskEvent,
  type TaskState,
} from '../shared/schemas/index.js';
import { topics, type Topics } from '../shared/topics.js';
import { pino } from 'pino';

/** A request without the envelope (the client adds `v` and `id`). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'v' | 'id'> : never) : never;

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class CliClient {
  private readonly pending = new Map<string, Pending>();
  private controller: ControllerStatus | null = null;
  private router!: MessageRouter;
  private nextId = 1;

  private constructor(
    private readonly client: MqttClient,
    private readonly t: Topics,
    private readonly cfg: CliConfig,
    /** This client's MQTT client id; replies come on `replies/{clientId}`. */
    readonly clientId: string,
  ) {}

  /**
   * @param clientIdPrefix the MQTT client id is this plus random hex (`cutter-cli-…`).
   * @param streamBuilder dial through this stream (the embedded broker's in-process link).
   * @throws CutterError BROKER_UNREACHABLE within `cfg.timeoutMs`.
   */
  static async connect(cfg: CliConfig, clientIdPrefix = 'cutter-cli', streamBuilder?: () => Duplex): Promise<CliClient> {
    const t = topics(cfg.prefix);
    const id = `${clientIdPrefix}-${randomBytes(5).toString('hex')}`;
    const client = await connectMqtt({
      url: cfg.broker,
      streamBuilder,
      clientId: id,
      clean: true,
      timeoutMs: cfg.timeoutMs,
      username: cfg.username,
      password: cfg.password,
      reconnectPeriodMs: 500,
    });
    const self = new CliClient(client, t, cfg, id);
    self.router = new MessageRouter(client, pino({ level: process.env.CUTTER_CLI_DEBUG ? 'debug' : 'silent' }, process.stderr));
    client.on('message', (topic, payload) => {
      if (topic === t.replies(id)) self.onReply(payload);
    });
    await client.subscribeAsync(t.replies(id), { qos: 1 });
    await self.router.on(t.controllerStatus(), ControllerStatusSchema, (s) => {
      self.controller = s;
    });
    return self;
  }

  private onReply(payload: Buffer): void {
    const decoded = decode(ReplySchema, payload);
    if (!decoded.ok) return;
    const reply = decoded.value;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new CutterError(reply.error.code as never, reply.error.message, reply.error.rejections));
  }

  /**
   * Sends a request and resolves with the validated result.
   * @throws CutterError with the controller's code (NO_FIT with per-node rejections in `details`,
   *   NOT_FOUND, …), or NO_CONTROLLER when nothing answers within the timeout.
   */
  async request<S extends z.ZodType>(body: RequestBody, schema: S): Promise<z.infer<S>> {
    const id = String(this.nextId++);
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const seen = this.controller
          ? `its last retained status says ${this.controller.state} (${new Date(this.controller.ts).toISOString()})`
          : 'no controller status was ever published on this broker';
        reject(
          new CutterError(
            'NO_CONTROLLER',
            `no reply from the controller within ${this.cfg.timeoutMs} ms on ${this.cfg.broker}: ${seen}. Is \`cutter server\` running?`,
          ),
        );
      }, this.cfg.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    await this.client.publishAsync(this.t.requests(this.clientId), encode({ v: 1, id, ...body }), { qos: 1 });
    const value = await result;
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new CutterError('INTERNAL', `unexpected reply from the controller: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  /** The underlying MQTT client, for callers that subscribe to topics of their own (the Ollama API, file transfer). */
  get mqtt(): MqttClient {
    return this.client;
  }

  /** The topic builders for this client's prefix. */
  get topics(): Topics {
    return this.t;
  }

  /** Calls `fn` after every reconnect to the broker (not the first connect). */
  onReconnect(fn: () => void): void {
    this.client.on('connect', fn);
  }

  /** Subscribes to one task's events and retained state (call before submitting to miss nothing). */
  async follow(taskId: string, onEvent: (e: TaskEvent) => void, onState: (s: TaskState) => void): Promise<void> {
    await this.router.on(this.t.taskEvents(taskId), TaskEventSchema, onEvent);
    await this.router.on(this.t.taskState(taskId), TaskStateSchema, onState);
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    await this.client.endAsync();
  }
}

/** A fresh task id: 12 hex characters, like Docker's short ids. */
export function newTaskId(): string {
  return randomBytes(6).toString('hex');
}
