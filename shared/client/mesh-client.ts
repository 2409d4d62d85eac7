/**
 * A connection to the mesh for any process that is not the controller or an agent (the CLI, the
 * MCP server, the server's Ollama-compatible API): a short-lived MQTT client that sends requests
 * to the controller (`requests/{client}` → `replies/{client}`, matched by `id`; docs/protocol.md
 * "Request"/"Reply"), watches single tasks' events and retained state, and tracks whether the
 * broker and the controller are there (`link`). Submitting and following a task is
 * shared/client/run-task.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { decode, encode } from '../codec.js';
import type { CliConfig } from '../config.js';
import { CutterError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { decodeTaskEvent } from '../log-frame.js';
import type { Logger } from '../logger.js';
import { connectMqtt, guardListener, MessageRouter, type MqttClient } from '../mqtt.js';
import {
  type ControllerStatus,
  ControllerStatusSchema,
  ReplySchema,
  type Request,
  type TaskEvent,
  TaskLogsResultSchema,
  TaskStateSchema,
  type TaskState,
} from '../schemas/index.js';
import { type Topics, topics } from '../topics.js';

/**
 * The client's logger unless CUTTER_CLI_DEBUG is set: it drops every line, and pino (20 modules,
 * about 8 MiB) is then never loaded by a CLI command.
 */
const SILENT_LOG = {
  level: 'silent',
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  child() {
    return SILENT_LOG;
  },
} as unknown as Logger;

/** A request without the envelope (the client adds `v` and `id`). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'v' | 'id'> : never) : never;

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** What a task watcher is handed: decoded messages of one task, with the payload size in bytes. */
export interface TaskWatcher {
  onEvent(e: TaskEvent, bytes: number): void;
  onState(s: TaskState): void;
}

/** Options of `MeshClient.connect`. */
export interface MeshClientOptions {
  /** The MQTT client id is this plus random hex (default `cutter-cli`, so `cutter-cli-…`). */
  clientIdPrefix?: string;
  /** Dial through this stream (the embedded broker's in-process link) instead of `cfg.broker`. */
  streamBuilder?: () => Duplex;
  /**
   * Subscribe once to every task's events and state (`tasks/+/events`, `tasks/+/state`) instead
   * of per watched task: a follow then costs no SUBSCRIBE round trip (the Ollama API, which runs
   * a task per HTTP request). Only watched tasks' payloads are decoded. `eventsQos` 0 saves a
   * PUBACK per event batch where a lost message is acceptable (a client beside the broker).
   */
  watchAllTasks?: { eventsQos: 0 | 1 };
}

/** Whether the broker connection is up and the controller's retained status says online. */
export interface LinkState {
  broker: boolean;
  /** False only when `controller/status` says `offline` (never seen counts as online). */
  controller: boolean;
}

export class MeshClient {
  private readonly pending = new Map<string, Pending>();
  private readonly watchers = new Map<string, Set<TaskWatcher>>();
  private readonly linkListeners = new Set<(l: LinkState) => void>();
  private controller: ControllerStatus | null = null;
  private router!: MessageRouter;
  private nextId = 1;
  private watchAll?: { eventsQos: 0 | 1 };

  private constructor(
    private readonly client: MqttClient,
    private readonly t: Topics,
    private readonly cfg: CliConfig,
    /** This client's MQTT client id; replies come on `replies/{clientId}`. */
    readonly clientId: string,
  ) {}

  /**
   * Connects, subscribes to its replies and the controller status (and with `watchAllTasks` to
   * every task's events and state).
   * @param cfg broker URL, credentials, prefix; `timeoutMs` bounds the first connect and every request.
   * @throws CutterError BROKER_UNREACHABLE within `cfg.timeoutMs`.
   */
  static async connect(cfg: CliConfig, opts: MeshClientOptions = {}): Promise<MeshClient> {
    const t = topics(cfg.prefix);
    const id = `${opts.clientIdPrefix ?? 'cutter-cli'}-${randomBytes(5).toString('hex')}`;
    const client = await connectMqtt({
      url: cfg.broker,
      streamBuilder: opts.streamBuilder,
      clientId: id,
      clean: true,
      timeoutMs: cfg.timeoutMs,
      username: cfg.username,
      password: cfg.password,
      reconnectPeriodMs: 500,
    });
    const self = new MeshClient(client, t, cfg, id);
    const log = process.env.CUTTER_CLI_DEBUG ? (await import('pino')).pino({ level: 'debug' }, process.stderr) : SILENT_LOG;
    self.router = new MessageRouter(client, log);
    // A throw in a watcher (an Ollama API relay writing a chunk) must not become an uncaught exception.
    client.on(
      'message',
      guardListener(log, (topic: string, payload: Buffer) => self.onMessage(topic, payload)),
    );
    client.on('connect', () => self.emitLink());
    client.on('close', () => self.emitLink());
    await client.subscribeAsync(t.replies(id), { qos: 1 });
    await self.router.on(t.controllerStatus(), ControllerStatusSchema, (s) => {
      const was = self.link.controller;
      self.controller = s;
      if (was !== self.link.controller) self.emitLink();
    });
    if (opts.watchAllTasks) {
      self.watchAll = opts.watchAllTasks;
      await client.subscribeAsync({ [t.allTaskEvents()]: { qos: opts.watchAllTasks.eventsQos }, [t.allTaskState()]: { qos: 1 } });
    }
    return self;
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.t.replies(this.clientId)) {
      this.onReply(payload);
      return;
    }
    if (this.watchers.size === 0) return;
    const p = this.t.parse(topic);
    if (!p || (p.kind !== 'taskEvents' && p.kind !== 'taskState')) return;
    const set = this.watchers.get(p.task);
    if (!set || payload.length === 0) return; // an empty retained state: the task was evicted or refused
    if (p.kind === 'taskEvents') {
      const d = decodeTaskEvent(payload, LIMITS.taskEvents);
      if (d.ok) for (const w of set) w.onEvent(d.value, payload.length);
    } else {
      const d = decode(TaskStateSchema, payload, LIMITS.taskState);
      if (d.ok) for (const w of set) w.onState(d.value);
    }
  }

  private onReply(payload: Buffer): void {
    const decoded = decode(ReplySchema, payload, LIMITS.replies);
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
   *   NOT_FOUND, …), or NO_CONTROLLER when nothing answers within `cfg.timeoutMs`.
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

  /** The underlying MQTT client, for callers that subscribe to topics of their own (node statuses, file transfer). */
  get mqtt(): MqttClient {
    return this.client;
  }

  /** The topic builders for this client's prefix. */
  get topics(): Topics {
    return this.t;
  }

  /** The broker URL and request timeout (ms) this client was connected with. */
  get config(): Readonly<CliConfig> {
    return this.cfg;
  }

  /** Calls `fn` after every reconnect to the broker (not the first connect). */
  onReconnect(fn: () => void): () => void {
    this.client.on('connect', fn);
    return () => this.client.off('connect', fn);
  }

  /** The link now: broker connected, controller not said offline. */
  get link(): LinkState {
    return { broker: this.client.connected, controller: this.controller?.state !== 'offline' };
  }

  /** Calls `fn` whenever the broker connection or the controller's status may have changed. @returns the unsubscriber. */
  onLink(fn: (l: LinkState) => void): () => void {
    this.linkListeners.add(fn);
    return () => this.linkListeners.delete(fn);
  }

  private emitLink(): void {
    const l = this.link;
    for (const fn of this.linkListeners) fn(l);
  }

  /**
   * Watches one task's events and retained state (the retained state arrives right after the
   * subscription). Resolves once subscribed, so a submit sent after it misses nothing.
   * @returns the function that stops watching (and unsubscribes when nobody else watches the task).
   */
  async watchTask(taskId: string, w: TaskWatcher): Promise<() => Promise<void>> {
    let set = this.watchers.get(taskId);
    const first = !set;
    if (!set) this.watchers.set(taskId, (set = new Set()));
    set.add(w);
    const filters = [this.t.taskEvents(taskId), this.t.taskState(taskId)];
    if (first && !this.watchAll) await this.client.subscribeAsync(filters, { qos: 1 });
    return async () => {
      const s = this.watchers.get(taskId);
      if (!s?.delete(w) || s.size > 0) return;
      this.watchers.delete(taskId);
      if (!this.watchAll && this.client.connected) await this.client.unsubscribeAsync(filters).catch(() => undefined);
    };
  }

  /**
   * Calls `onEvent` and `onState` for one task until the client closes (a `watchTask` that is never
   * stopped). Prefer `followTask` (run-task.ts), which also knows when the task is done.
   */
  async follow(taskId: string, onEvent: (e: TaskEvent) => void, onState: (s: TaskState) => void): Promise<void> {
    await this.watchTask(taskId, { onEvent: (e) => onEvent(e), onState });
  }

  /**
   * Every event the controller kept for a task (paged `task.logs`), oldest first, after `after`
   * (attempt, seq) when given.
   * @throws CutterError NOT_FOUND, NO_CONTROLLER.
   */
  async keptEvents(taskId: string, after?: { attempt: number; seq: number }): Promise<TaskEvent[]> {
    const events: TaskEvent[] = [];
    for (;;) {
      const page = await this.request({ op: 'task.logs', taskId, ...(after ? { after } : {}) }, TaskLogsResultSchema);
      events.push(...page.events);
      const last = page.events.at(-1);
      if (!page.more || !last) return events;
      after = { attempt: last.attempt, seq: last.seq };
    }
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.linkListeners.clear();
    await this.client.endAsync();
  }
}

/** A fresh task id: 12 hex characters, like Docker's short ids. */
export function newTaskId(): string {
  return randomBytes(6).toString('hex');
}
