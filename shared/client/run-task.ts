/**
 * Submitting a task and following it to its end: the one way every client does it (the CLI's
 * `run` and `logs -f`, `cutter ollama`, the Ollama-compatible API, the MCP server, the pipeline
 * runner).
 *
 * **Done** — a follow ends exactly once, for the first of:
 * - `terminal`: the task's retained TaskState (`tasks/{task}/state`, or a reply carrying it) is
 *   terminal: `succeeded`, `failed`, `cancelled` or `lost`. `lost` is terminal only when the
 *   restart policy asked for no other attempt (else the controller publishes `queued` for the next
 *   attempt, docs/protocol.md "Running an attempt" 3), so a lost-and-requeued task is followed on.
 *   A timeout of the task itself (`options.timeoutMs`) ends it `failed` with TIMEOUT: terminal too.
 * - `timeout`: the caller's follow timeout (`followTimeoutMs`, from the start of the follow) ran
 *   out; the task is left as it is (call `cancel()` to stop it).
 * - `disconnected`: the broker was unreachable, or the controller's retained status said
 *   `offline`, continuously for `connectionGraceMs` (default CONNECTION_GRACE_MS, 30 s). Shorter
 *   outages are bridged: after a reconnect the events missed meanwhile are fetched from the
 *   controller's kept events (`task.logs`) and the retained state is delivered again.
 * - `stopped`: the caller called `stop()`.
 *
 * **Ordering and completeness.** The follow subscribes to the task's events and state before the
 * submit is sent, so no event of a new task is missed. Events are handed on in the order of
 * (`attempt`, `seq`): duplicates (QoS 1 redelivery, a kept event also seen live) and events of an
 * attempt older than one already seen (a stale, fenced attempt) are skipped. When the terminal
 * state arrives before the ending event (`result`/`failed`) of its attempt, the kept events are
 * fetched once before the follow ends (the controller stores an event before it publishes the state
 * it causes), so the last output is never cut. Live events that arrive while kept events are being
 * fetched (one `task.logs` round trip, or a few pages) are held and handed on after them. Events published before a follow subscribed (an
 * existing task, `followTask`) are not replayed by the broker; `history: true` reads them from the
 * controller's kept events (all but `log` data beyond its per-task limit, docs/protocol.md "Task
 * logs"). State updates are handed on as they arrive; one older than the last (by `updatedAt`) is
 * skipped.
 *
 * **Buffering.** `events` holds what the consumer has not read yet, bounded (event-queue.ts):
 * output events beyond the bound are dropped and replaced by one `dropped` marker per gap.
 */
import { logSize } from '../log-data.js';
import { CutterError } from '../errors.js';
import { isTerminal, type Requirements, type TaskEvent, type TaskSpec, type TaskState, TaskStateSchema } from '../schemas/index.js';
import { formatDuration } from '../units.js';
import { DEFAULT_BUFFER, EventQueue, type ItemClass } from './event-queue.js';
import { type LinkState, type MeshClient, newTaskId, type TaskWatcher } from './mesh-client.js';
import { busyOnly, CONNECTION_GRACE_MS, type QueueMode, taskOptionsFor } from './task-options.js';

/** One item of a follow's `events`: an event, a state update, or a gap left by a slow consumer. */
export type TaskUpdate =
  | { type: 'event'; event: TaskEvent }
  | { type: 'state'; state: TaskState }
  | { type: 'dropped'; items: number; bytes: number };

/** The event that ends an attempt. */
export type EndingEvent = Extract<TaskEvent, { type: 'result' | 'failed' }>;

/** Why a follow ended (see the module comment). */
export type FollowEnd = 'terminal' | 'timeout' | 'disconnected' | 'stopped';

/** What `result` resolves with; it never rejects. */
export interface TaskOutcome {
  taskId: string;
  end: FollowEnd;
  /** The last TaskState seen (terminal when `end` is `terminal`); null when none arrived. */
  state: TaskState | null;
  /** The `result` or `failed` event of the last attempt seen, when one arrived. */
  ending: EndingEvent | null;
}

/** A task being followed. */
export interface TaskRun {
  readonly taskId: string;
  /** Events and state updates in order; ends when the follow ends. Read it once, or not at all. */
  readonly events: AsyncIterable<TaskUpdate>;
  /** Settles once, when the follow ends (after the last item was queued on `events`). */
  readonly result: Promise<TaskOutcome>;
  /**
   * Asks the controller to cancel the task (SIGTERM, then SIGKILL after `graceMs`, default 3000 ms
   * on the agent). The follow goes on until the task's terminal state (`cancelled`) arrives.
   * Resolves once the controller accepted it; a task already finished is not an error.
   * @throws CutterError NO_CONTROLLER (no reply), NOT_FOUND.
   */
  cancel(graceMs?: number): Promise<void>;
  /** Stops following now (`end: 'stopped'`); the task itself runs on. */
  stop(): void;
}

/** How to follow. */
export interface FollowOptions {
  /** End with `timeout` after this many ms; null or absent = no limit. */
  followTimeoutMs?: number | null;
  /** How long the link may be down before ending with `disconnected`, ms (default CONNECTION_GRACE_MS). */
  connectionGraceMs?: number;
  /** `followTask` only: hand on the controller's kept events first (attaching to a task that ran). */
  history?: boolean;
  /** Bounds of the unread `events` (default DEFAULT_BUFFER); `false` keeps none (callers that only await `result`). */
  buffer?: { maxItems: number; maxBytes: number } | false;
}

/** What to run: the submit request's fields; `options` override the kind's defaults (task-options.ts). */
export interface RunRequest {
  /** A caller-chosen id (1-64 of [A-Za-z0-9_.-]); default a fresh 12-hex id. */
  taskId?: string;
  spec: TaskSpec;
  requirements?: Partial<Requirements>;
  options?: Parameters<typeof taskOptionsFor>[1];
}

const OUTPUT_TYPES = new Set(['log', 'chunks', 'progress']);
/** Memory an event holds in the queue, approximately (a log event's output bytes). */
const approxBytes = (e: TaskEvent): number => (e.type === 'log' ? logSize(e) : e.type === 'chunks' ? JSON.stringify(e.chunks).length : 200);

class Follow implements TaskWatcher, TaskRun {
  readonly events: EventQueue<TaskUpdate>;
  readonly result: Promise<TaskOutcome>;
  private resolve!: (o: TaskOutcome) => void;
  private done = false;
  /** Highest attempt and, within it, seq handed on. */
  private attempt = 0;
  private seq = -1;
  private ending: EndingEvent | null = null;
  private last: TaskState | null = null;
  /** Live events held while kept events are fetched (then handed on after them). */
  private held: [TaskEvent, number][] | null = null;
  private filling: Promise<void> | null = null;
  private filledAfterTerminal = false;
  private timer?: NodeJS.Timeout;
  private downTimer?: NodeJS.Timeout;
  private readonly cleanups: (() => void)[] = [];
  unwatch: () => Promise<void> = async () => undefined;

  constructor(
    private readonly client: MeshClient,
    readonly taskId: string,
    private readonly opts: FollowOptions,
  ) {
    const buffer = opts.buffer === false ? { maxItems: 0, maxBytes: 0 } : (opts.buffer ?? DEFAULT_BUFFER);
    this.events = new EventQueue<TaskUpdate>((items, bytes) => ({ type: 'dropped', items, bytes }), buffer);
    if (opts.buffer === false) this.events.close();
    this.result = new Promise((r) => (this.resolve = r));
  }

  /** Subscribes and arms the timers. */
  async start(): Promise<void> {
    this.unwatch = await this.client.watchTask(this.taskId, this);
    if (this.opts.followTimeoutMs != null) this.timer = setTimeout(() => this.finish('timeout'), this.opts.followTimeoutMs);
    this.cleanups.push(this.client.onLink((l) => this.onLink(l)));
    this.cleanups.push(this.client.onReconnect(() => void this.fill()));
    this.onLink(this.client.link);
    if (this.opts.history) void this.fill();
  }

  private push(u: TaskUpdate, bytes: number, cls: ItemClass): void {
    this.events.push(u, bytes, cls);
  }

  onEvent(e: TaskEvent, bytes: number): void {
    if (this.done) return;
    if (this.held) this.held.push([e, bytes]);
    else this.accept(e, bytes);
  }

  private accept(e: TaskEvent, bytes: number): void {
    if (this.done || e.attempt < this.attempt) return;
    if (e.attempt > this.attempt) {
      this.attempt = e.attempt;
      this.seq = -1;
    }
    if (e.seq <= this.seq) return;
    this.seq = e.seq;
    if (e.type === 'result' || e.type === 'failed') this.ending = e;
    this.push({ type: 'event', event: e }, bytes, OUTPUT_TYPES.has(e.type) ? 'droppable' : 'keep');
    this.terminalCheck();
  }

  onState(s: TaskState): void {
    if (this.done || s.taskId !== this.taskId) return;
    if (this.last && s.updatedAt < this.last.updatedAt) return;
    const l = this.last;
    const same = l && l.updatedAt === s.updatedAt && l.state === s.state && l.attempt === s.attempt && l.reason === s.reason;
    this.last = s;
    if (!same) this.push({ type: 'state', state: s }, 1_000, 'state');
    this.terminalCheck();
  }

  /** Ends the follow once the state is terminal and its attempt's last event was handed on (or fetched for). */
  private terminalCheck(): void {
    const s = this.last;
    if (this.done || !s || !isTerminal(s.state)) return;
    if (s.attempt === 0 || this.ending?.attempt === s.attempt || this.filledAfterTerminal) this.finish('terminal');
    else if (!this.filling) void this.fill();
  }

  /** Hands on the kept events after the last one handed on (all, before the first), then the live ones held meanwhile. */
  private fill(): Promise<void> {
    if (this.filling || this.done) return this.filling ?? Promise.resolve();
    const terminalAtStart = this.last !== null && isTerminal(this.last.state);
    this.held = [];
    const after = this.seq >= 0 ? { attempt: this.attempt, seq: this.seq } : undefined;
    this.filling = this.client
      .keptEvents(this.taskId, after)
      .then(
        (events) => {
          for (const e of events) this.accept(e, approxBytes(e));
        },
        () => undefined, // the controller may be away: live events keep coming, and a later reconnect fills again
      )
      .finally(() => {
        const held = this.held ?? [];
        this.held = null;
        this.filling = null;
        if (terminalAtStart) this.filledAfterTerminal = true;
        for (const [e, b] of held) this.accept(e, b);
        this.terminalCheck();
      });
    return this.filling;
  }

  private onLink(l: LinkState): void {
    if (this.done) return;
    if (l.broker && l.controller) {
      clearTimeout(this.downTimer);
      this.downTimer = undefined;
    } else if (!this.downTimer) {
      this.downTimer = setTimeout(() => this.finish('disconnected'), this.opts.connectionGraceMs ?? CONNECTION_GRACE_MS);
    }
  }

  finish(end: FollowEnd): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.downTimer);
    for (const c of this.cleanups) c();
    void this.unwatch().catch(() => undefined);
    this.events.close();
    this.resolve({ taskId: this.taskId, end, state: this.last, ending: this.ending });
  }

  async cancel(graceMs?: number): Promise<void> {
    if (this.done) return;
    try {
      const s = await this.client.request(
        { op: 'cancel', taskId: this.taskId, ...(graceMs !== undefined ? { graceMs } : {}) },
        TaskStateSchema,
      );
      this.onState(s);
    } catch (err) {
      if (!(err instanceof CutterError && err.code === 'ALREADY_FINISHED')) throw err;
    }
  }

  stop(): void {
    this.finish('stopped');
  }
}

/**
 * Follows an existing task until it is done (module comment), without submitting anything.
 * @param taskId the task; a task the controller does not know yields no events and ends only by
 *   `timeout`, `disconnected` or `stop()` (ask `task.get` first to say NOT_FOUND).
 * @returns once subscribed.
 */
export async function followTask(client: MeshClient, taskId: string, opts: FollowOptions = {}): Promise<TaskRun> {
  const f = new Follow(client, taskId, opts);
  await f.start();
  return f;
}

/**
 * Submits a task and follows it until it is done (module comment): subscribes to its events and
 * state first, then sends the `submit` request with the options of task-options.ts (`queue:
 * 'when-busy'` submits without queueing and, when the NO_FIT says the fitting nodes are busy, again
 * with queueing, under the same task id).
 * @returns once the controller accepted the task (queued or placed).
 * @throws CutterError from the submit: NO_FIT (per-node rejections in `details`), INVALID_REQUEST,
 *   POLICY_DENIED, RATE_LIMITED, NO_CONTROLLER (no reply within the client's `timeoutMs`).
 */
export async function runTask(client: MeshClient, request: RunRequest, opts: FollowOptions = {}): Promise<TaskRun> {
  const taskId = request.taskId ?? newTaskId();
  const { options, queue } = taskOptionsFor(request.spec, request.options);
  const requirements = { memory: 0, cpus: 0, ...request.requirements };
  const f = new Follow(client, taskId, opts);
  await f.start();
  const submit = (q: boolean) =>
    client.request({ op: 'submit', taskId, spec: request.spec, requirements, options: { ...options, queue: q } }, TaskStateSchema);
  try {
    let reply: TaskState;
    try {
      reply = await submit(queue === 'yes');
    } catch (err) {
      if ((queue as QueueMode) !== 'when-busy' || !busyOnly(err)) throw err;
      reply = await submit(true);
    }
    f.onState(reply);
  } catch (err) {
    f.finish('stopped');
    throw err;
  }
  return f;
}

/**
 * The outcome as an error, or null when the task succeeded: the task's own error (code and
 * message of TaskState.error: EXIT_CODE, OOM_KILLED, NODE_LOST, TIMEOUT, MODEL_NOT_FOUND …),
 * CANCELLED, TIMEOUT for a follow timeout, NO_CONTROLLER for a lost connection.
 */
export function outcomeError(o: TaskOutcome, followTimeoutMs?: number | null): CutterError | null {
  const s = o.state;
  if (o.end === 'terminal' && s) {
    if (s.state === 'succeeded') return null;
    if (s.error) return new CutterError(s.error.code as never, s.error.message);
    return new CutterError(s.state === 'cancelled' ? 'CANCELLED' : 'INTERNAL', `task ${o.taskId} ${s.state}`);
  }
  if (o.end === 'timeout')
    return new CutterError(
      'TIMEOUT',
      `task ${o.taskId} still ${s?.state ?? 'queued'}${followTimeoutMs ? ` after ${formatDuration(followTimeoutMs)}` : ''}`,
    );
  if (o.end === 'disconnected')
    return new CutterError(
      'NO_CONTROLLER',
      `lost the connection to the controller; task ${o.taskId} may still run (cutter logs -f ${o.taskId})`,
    );
  return new CutterError('CANCELLED', `stopped following task ${o.taskId}`);
}
