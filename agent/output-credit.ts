/**
 * Reader credit on the agent (wire in shared/schemas/output-credit.ts): an attempt submitted with
 * `credit` (`cutter run` attached) has a CreditGate next to its output window
 * (agent/output-window.ts); the executor stops reading the workload's output while the gate is
 * closed, through the same pause/resume path (`forwardOutput`). OutputCreditService takes the
 * credit its reader publishes on `nodes/N/credit/{task}` and hands it to the attempt's gate.
 *
 * Reader gone: a gate that has held the output for OUTPUT_CREDIT_TIMEOUT_MS without hearing any
 * credit, or whose reader sent `release`, opens for good (logged once): the output then goes on at
 * the mesh's pace to the kept logs, as for a detached task. Memory per attempt is bounded: one
 * entry per log event published and not yet credited, at most OUTPUT_CREDIT_EVENTS (and a few
 * more read while the pause lands), merged past twice that.
 */
import { decode } from '../shared/codec.js';
import { LIMITS } from '../shared/limits.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import {
  OUTPUT_CREDIT_EVENTS,
  OUTPUT_CREDIT_TIMEOUT_MS,
  OUTPUT_CREDIT_WINDOW,
  OutputCreditSchema,
} from '../shared/schemas/output-credit.js';
import type { Topics } from '../shared/topics.js';
import { warnLimiter } from '../shared/warn-limiter.js';
import type { AgentService } from './service.js';
import { NodeTaskTopic } from './task-topic.js';

/** How long after a stopped attempt's grace its output is let go, ms (the workload has been SIGKILLed by then). */
export const STOP_RELEASE_MS = 1_000;

/**
 * Why a gate stopped gating: no credit while held (`timeout`), the reader said so (`released`), the
 * attempt was stopped and its grace is over (`stopped`: a reader that is gone must not hold up its end) or
 * has ended (`ended`).
 */
export type ReleaseReason = 'timeout' | 'released' | 'stopped' | 'ended';

/**
 * The credit gate of one attempt's output: log events published (their `seq` and bytes) against
 * the last `seq` its reader credited. Closed while more than `window` bytes or `events` events are
 * outstanding; `drained()` resolves once both are at half or less, or the gate was released.
 */
export class CreditGate {
  /** Published and not yet credited log events, oldest first: [seq, bytes published up to and with it]. */
  private entries: [number, number][] = [];
  private published = 0;
  private credited = 0;
  private waiters: (() => void)[] = [];
  private timer?: NodeJS.Timeout;
  private stopTimer?: NodeJS.Timeout;
  private releasedFor?: ReleaseReason;

  /**
   * @param onRelease told once when the gate opens for good (not for `stopped` or `ended`).
   * @param opts `window` bytes and `events` outstanding at which it closes (defaults
   *   OUTPUT_CREDIT_WINDOW, OUTPUT_CREDIT_EVENTS); `timeoutMs` held without credit before it opens
   *   for good (default OUTPUT_CREDIT_TIMEOUT_MS).
   */
  constructor(
    private readonly onRelease: (why: ReleaseReason, outstanding: number) => void = () => undefined,
    private readonly opts: { window?: number; events?: number; timeoutMs?: number } = {},
  ) {}

  private get window(): number {
    return this.opts.window ?? OUTPUT_CREDIT_WINDOW;
  }

  private get maxEvents(): number {
    return this.opts.events ?? OUTPUT_CREDIT_EVENTS;
  }

  /** Bytes published and not yet credited. */
  get outstanding(): number {
    return this.published - this.credited;
  }

  /** Why it no longer gates, or undefined while it does. */
  get released(): ReleaseReason | undefined {
    return this.releasedFor;
  }

  /** False while the executor should not read more output. */
  get open(): boolean {
    return this.releasedFor !== undefined || (this.outstanding < this.window && this.entries.length < this.maxEvents);
  }

  private get resumable(): boolean {
    return this.releasedFor !== undefined || (this.outstanding <= this.window / 2 && this.entries.length <= this.maxEvents / 2);
  }

  /** A log event of `bytes` bytes was published as event `seq` (seqs increase). */
  add(seq: number, bytes: number): void {
    if (this.releasedFor !== undefined) return;
    this.published += bytes;
    const last = this.entries.at(-1);
    // Past twice the bound (it is never reached while the gate is honoured): merged into the last entry,
    // so a credit in the middle of the merged run counts less than it could, never more.
    if (last && this.entries.length >= 2 * this.maxEvents) [last[0], last[1]] = [seq, this.published];
    else this.entries.push([seq, this.published]);
  }

  /** The reader is done with every event up to `seq` (and is alive: the hold's timer starts again). */
  credit(seq: number): void {
    if (this.releasedFor !== undefined) return;
    let n = 0;
    while (n < this.entries.length && this.entries[n][0] <= seq) n++;
    if (n > 0) {
      this.credited = Math.max(this.credited, this.entries[n - 1][1]);
      this.entries = this.entries.slice(n);
    }
    if (this.waiters.length > 0) this.arm();
    this.wake();
  }

  /** Opens the gate for good (`why` says why) and wakes the waiters; only the first call counts. */
  release(why: ReleaseReason): void {
    if (this.releasedFor !== undefined) return;
    this.releasedFor = why;
    const outstanding = this.outstanding;
    this.entries = [];
    clearTimeout(this.timer);
    clearTimeout(this.stopTimer);
    if (why === 'timeout' || why === 'released') this.onRelease(why, outstanding);
    this.wake();
  }

  /**
   * The attempt is being stopped (cancel, fence, shutdown): its output stays paced through the
   * grace, so a process that ignores SIGTERM does not flood the mesh meanwhile, and is let go
   * STOP_RELEASE_MS after it, once the workload has been killed, so a reader that is gone (the CLI
   * that closed its stdout and cancelled) does not hold up the attempt's end.
   */
  stopping(graceMs: number): void {
    if (this.releasedFor !== undefined || this.stopTimer) return;
    this.stopTimer = setTimeout(() => this.release('stopped'), graceMs + STOP_RELEASE_MS);
    this.stopTimer.unref();
  }

  /** Resolves once the output may be read again (see the class comment); starts the no-credit timer. */
  drained(): Promise<void> {
    if (this.resumable) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (!this.timer) this.arm();
    return p;
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.release('timeout'), this.opts.timeoutMs ?? OUTPUT_CREDIT_TIMEOUT_MS);
    this.timer.unref();
  }

  private wake(): void {
    if (!this.resumable || this.waiters.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

/** Takes reader credit for this node's credit-gated attempts (see the file comment). */
export class OutputCreditService implements AgentService {
  private readonly topic: NodeTaskTopic;
  /** By task id: one attempt of a task runs here at a time (agent/tasks.ts fences older ones). */
  private readonly gates = new Map<string, { attempt: number; gate: CreditGate }>();

  constructor(private readonly opts: { node: string; t: Topics; log: Logger }) {
    this.topic = new NodeTaskTopic(opts, 'nodeCredit', (task, payload) => this.onCredit(task, payload));
  }

  attach(client: MqttClient): void {
    this.topic.attach(client);
  }

  /** Subscribes (QoS 1, like stdin). */
  start(): Promise<void> {
    return this.topic.subscribe();
  }

  /** A credit-gated attempt starts: its gate takes the credit published for it from now on. */
  taskCredit(taskId: string, attempt: number, gate: CreditGate): void {
    this.gates.get(taskId)?.gate.release('ended');
    this.gates.set(taskId, { attempt, gate });
  }

  taskEnded(taskId: string, attempt: number): void {
    const g = this.gates.get(taskId);
    if (!g || g.attempt !== attempt) return;
    g.gate.release('ended');
    this.gates.delete(taskId);
  }

  private onCredit(taskId: string, payload: Buffer): void {
    const d = decode(OutputCreditSchema, payload, LIMITS.nodeCredit);
    if (!d.ok) {
      warnLimiter(this.opts.log).warn('invalid-message', { taskId, bytes: payload.length }, 'dropped an invalid output credit');
      return;
    }
    const g = this.gates.get(taskId);
    // An attempt that ended, or one not gated here (a re-adopted task): nothing to hold.
    if (!g || g.attempt !== d.value.attempt) return;
    if (d.value.release) g.gate.release('released');
    else g.gate.credit(d.value.seq);
  }
}
