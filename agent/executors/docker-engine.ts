/**
 * Is the Docker engine there? `EngineWatch` answers it for the docker executor, fast enough that a
 * dead or hung engine ends the node's docker tasks within a bounded time and the node stops
 * offering docker, and it says when the engine is back.
 *
 * Facts it relies on (verified with docker-modem 5.0.7, plan-14 F7):
 * - an engine that closes the socket after the response headers of `POST /containers/{id}/wait`
 *   leaves `container.wait()` pending for ever, even with `abortSignal` (docker-modem listens only
 *   to the response's data and end); so every call a task waits on is also raced against the
 *   engine-down signal here (`guard()`), not only given an abortSignal;
 * - a hung engine (socket open, nothing answered) with `abortSignal`: the call rejects with an
 *   AbortError; `ping({abortSignal})` rejects promptly, which is what the watch uses;
 * - the engine's event stream (`GET /events`) stays open while the engine lives; its end is the
 *   fastest sign of a dead engine (the socket closed).
 *
 * Detection: a ping with a 3 s deadline every 5 s; a failed ping is retried at once, and 2 misses
 * in a row mark the engine down (≤ ~11 s for a hung engine, ~1 s for a dead one whose socket
 * closes). A call of a task that fails on the transport (no HTTP status) asks for the same two
 * pings at once (`confirm()`).
 */
import type Docker from 'dockerode';
import { errorMessage } from '../../shared/errors.js';

/** How often the engine is pinged, ms. */
export const ENGINE_PING_MS = 5_000;
/** Deadline of one ping, ms. */
export const ENGINE_PING_TIMEOUT_MS = 3_000;
/** Failed pings in a row that mark the engine down. */
export const ENGINE_MISSES = 2;
/** Pause before a failed ping is retried, ms. */
const RETRY_MS = 250;

/** The engine went down while (or before) a call waited on it. */
export class EngineDownError extends Error {
  constructor(readonly reason: string) {
    super(`the Docker engine is not answering: ${reason}`);
    this.name = 'EngineDownError';
  }
}

/** What the watch says: up, or down since when (ms epoch) and why (one line a user can act on). */
export type EngineState = { up: true } | { up: false; since: number; reason: string };

/** Timings, ms; the defaults are the constants above (tests shorten them). */
export interface EngineWatchOptions {
  pingMs?: number;
  timeoutMs?: number;
}

/** True for an error the engine answered with an HTTP status (the engine is there; the call failed). */
function answered(err: unknown): boolean {
  return typeof (err as { statusCode?: unknown })?.statusCode === 'number';
}

/**
 * A signal aborted when `parent` aborts or after `ms`, and `unlink()` that drops its listener and
 * timer once the call is over. Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20
 * each `any()` leaves an entry in the long-lived `parent`'s set of dependants that is never pruned
 * (nodejs/node#54614), and with it the composite signal and its listener: ~440 bytes a call for as
 * long as the engine stays up (test/unit/docker-engine.test.ts: 13 MB after 30,000 calls). An idle
 * agent's probe made a call every ~4 s, ~10 MB a day; a busy node many more.
 */
function withDeadline(parent: AbortSignal, ms: number): { signal: AbortSignal; unlink: () => void } {
  const ctl = new AbortController();
  const onParent = () => ctl.abort(parent.reason);
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  const timer = setTimeout(() => ctl.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  return {
    signal: ctl.signal,
    unlink: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    },
  };
}

/** Watches one engine; see the file comment. Timers are unref'd; `stop()` ends them. */
export class EngineWatch {
  private down: { since: number; reason: string } | null = null;
  /** Aborted when the engine goes down; replaced when it comes back. */
  private downCtl = new AbortController();
  private readonly listeners = new Set<(state: EngineState) => void>();
  private readonly upWaiters = new Set<() => void>();
  private timer?: NodeJS.Timeout;
  private events?: AbortController;
  private running = false;
  private checking?: Promise<boolean>;
  private readonly pingMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly docker: Docker,
    opts: EngineWatchOptions = {},
  ) {
    this.pingMs = opts.pingMs ?? ENGINE_PING_MS;
    this.timeoutMs = opts.timeoutMs ?? ENGINE_PING_TIMEOUT_MS;
  }

  /** Up, or down since when and why. */
  get state(): EngineState {
    return this.down ? { up: false, ...this.down } : { up: true };
  }

  /** Why the engine is down, else `fallback`. */
  private reason(fallback: string): string {
    const s = this.state;
    return s.up ? fallback : s.reason;
  }

  /** Aborted as soon as the engine is marked down (already aborted while it is down). */
  get signal(): AbortSignal {
    return this.downCtl.signal;
  }

  /** True between `start()` and `stop()`. */
  get watching(): boolean {
    return this.running;
  }

  /** Starts pinging and following the engine's event stream. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.follow();
    this.schedule(this.pingMs);
  }

  /** Stops pinging and the event stream. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.events?.abort();
    this.events = undefined;
  }

  /** Calls `fn` with every change of state. @returns a function that unsubscribes. */
  onChange(fn: (state: EngineState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Runs one engine call, raced against the engine-down signal (F7): `fn` gets an AbortSignal
   * aborted when the engine goes down (and after `timeoutMs`, when given) to pass to dockerode as
   * `abortSignal`. A call that fails on the transport (or runs out of `timeoutMs`) makes the watch
   * check the engine at once.
   * @throws EngineDownError when the engine is down already, goes down meanwhile, or the failed
   *   call turns out to be its doing; a TimeoutError when the call took longer than `timeoutMs`
   *   but the engine answers pings; otherwise the call's own error.
   */
  async guard<T>(fn: (signal: AbortSignal) => Promise<T>, timeoutMs?: number): Promise<T> {
    if (this.down) throw new EngineDownError(this.down.reason);
    const ctl = this.downCtl;
    const { signal, unlink } = timeoutMs === undefined ? { signal: ctl.signal, unlink: () => {} } : withDeadline(ctl.signal, timeoutMs);
    let onAbort!: () => void;
    // Raced, not only passed on: a call whose response headers came does not settle on abort (F7).
    const lost = new Promise<never>((_, reject) => {
      onAbort = () =>
        reject(
          ctl.signal.aborted
            ? new EngineDownError(this.reason('marked down'))
            : Object.assign(new Error(`the Docker engine did not answer within ${timeoutMs} ms`), { name: 'TimeoutError' }),
        );
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([fn(signal), lost]);
    } catch (err) {
      if (err instanceof EngineDownError || answered(err)) throw err;
      if (!(await this.confirm())) throw new EngineDownError(this.reason(errorMessage(err)));
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      unlink();
    }
  }

  /**
   * Resolves true as soon as the engine is up (at once when it is), false after `ms` or when
   * `cancel` aborts.
   */
  waitUp(ms: number, cancel?: AbortSignal): Promise<boolean> {
    if (!this.down) return Promise.resolve(true);
    if (ms <= 0 || cancel?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (up: boolean) => {
        clearTimeout(timer);
        this.upWaiters.delete(onUp);
        cancel?.removeEventListener('abort', onCancel);
        resolve(up);
      };
      const onUp = () => done(true);
      const onCancel = () => done(false);
      const timer = setTimeout(() => done(false), ms);
      this.upWaiters.add(onUp);
      cancel?.addEventListener('abort', onCancel, { once: true });
    });
  }

  /**
   * Checks the engine now: up to ENGINE_MISSES pings in a row (one in flight at a time, shared by
   * concurrent callers); all failing marks it down, one answering marks it up.
   * @returns whether it is up.
   */
  confirm(): Promise<boolean> {
    this.checking ??= (async () => {
      let reason = '';
      for (let i = 0; i < ENGINE_MISSES; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, RETRY_MS));
        const miss = await this.ping();
        if (miss === null) {
          this.markUp();
          return true;
        }
        reason = miss;
      }
      this.markDown(reason);
      return false;
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** One ping with its deadline: null when it answered, else why not. */
  private async ping(): Promise<string | null> {
    try {
      // dockerode's ping takes `abortSignal` (lib/docker.js), its typings do not say so.
      await (this.docker.ping as (o: { abortSignal: AbortSignal }) => Promise<unknown>).call(this.docker, {
        abortSignal: AbortSignal.timeout(this.timeoutMs),
      });
      return null;
    } catch (err) {
      const name = (err as { name?: string })?.name;
      if (name === 'AbortError' || name === 'TimeoutError') return `gave no answer to a ping within ${this.timeoutMs} ms`;
      return `not reachable (${errorMessage(err)})`;
    }
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(() => {
      // While it is down, look for its return more often.
      void this.confirm().then((up) => this.schedule(up ? this.pingMs : Math.min(this.pingMs, 1_000)));
    }, ms);
    this.timer.unref();
  }

  /** Follows `GET /events` (daemon events only: little traffic); its end triggers a check. */
  private follow(): void {
    if (!this.running || this.events || this.down) return;
    const ctl = new AbortController();
    this.events = ctl;
    const ended = () => {
      if (this.events !== ctl) return;
      this.events = undefined;
      if (this.running && !ctl.signal.aborted) void this.confirm().then((up) => up && this.follow());
    };
    this.docker
      .getEvents({ filters: { type: ['daemon'] }, abortSignal: ctl.signal })
      .then((stream) => {
        stream.on('error', ended);
        stream.on('end', ended);
        stream.on('close', ended);
        stream.resume();
      })
      .catch(ended);
  }

  private markDown(reason: string): void {
    if (this.down) return;
    this.down = { since: Date.now(), reason: `Docker engine ${reason}` };
    this.events?.abort();
    this.events = undefined;
    this.downCtl.abort();
    this.emit();
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = null;
    this.downCtl = new AbortController();
    for (const w of [...this.upWaiters]) w();
    this.follow();
    this.emit();
  }

  private emit(): void {
    const s = this.state;
    for (const fn of this.listeners) fn(s);
  }
}
