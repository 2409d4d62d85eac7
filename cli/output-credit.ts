/**
 * `cutter run` attached: credits the task's output as this process writes it (wire and rules:
 * shared/schemas/output-credit.ts), so a slow reader of its stdout slows the task instead of the
 * bytes piling up here, in the broker or on the node.
 *
 * It binds to an attempt whose `started` event says `credit: true` (an agent that gates its
 * output); for that attempt's events the printer waits until each write has been taken by the OS
 * (its callback) before it takes the next event, and then credits the event's `seq` on
 * `nodes/N/credit/T`. So at most the agent's credit window is buffered between the task and this
 * process's stdout, and this process holds at most one event being written. The credit goes out at
 * once after every 256 KiB or 64 events written, after 20 ms for the rest, and at least every
 * OUTPUT_CREDIT_KEEPALIVE_MS while bound (the agent lets go of an attempt whose reader stays silent).
 * Attempts not gated (an older agent, a re-adopted task) are printed as before, without waiting.
 */
import type { MeshClient } from '../shared/client/index.js';
import { encode } from '../shared/codec.js';
import { logSize } from '../shared/log-data.js';
import { OUTPUT_CREDIT_KEEPALIVE_MS, type OutputCredit as CreditMessage, type TaskEvent } from '../shared/schemas/index.js';

/** Bytes written since the last credit sent that send one at once. */
const SEND_BYTES = 256 * 1024;
/** Events written since the last credit sent that send one at once. */
const SEND_EVENTS = 64;
/** Longest a credit waits to be coalesced with the next, ms. */
const COALESCE_MS = 20;

/** Credits one task's output (see the file comment). */
export class OutputCredit {
  private node?: string;
  private attempt = 0;
  /** Last seq written of the bound attempt, and the last one sent. */
  private seq = -1;
  private sentSeq = -1;
  private bytesSince = 0;
  private eventsSince = 0;
  private flushTimer?: NodeJS.Timeout;
  private keepalive?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly client: MeshClient,
    private readonly taskId: string,
  ) {}

  /**
   * An event is about to be printed: binds to a gated attempt's start.
   * @returns true when its write must be waited for and credited (`written` after it).
   */
  gated(e: TaskEvent): boolean {
    if (this.stopped || e.taskId !== this.taskId) return false;
    if (e.type === 'started' && e.credit === true && e.attempt > this.attempt) this.bind(e.node, e.attempt);
    return e.attempt === this.attempt && this.node !== undefined;
  }

  /** The event `gated` said yes to was written (taken by the OS) or skipped. */
  written(e: TaskEvent): void {
    if (this.stopped || e.attempt !== this.attempt || e.seq <= this.seq) return;
    this.seq = e.seq;
    this.eventsSince++;
    if (e.type === 'log') this.bytesSince += logSize(e);
    if (this.bytesSince >= SEND_BYTES || this.eventsSince >= SEND_EVENTS) this.send();
    else this.flushTimer ??= setTimeout(() => this.send(), COALESCE_MS);
  }

  /**
   * Stops crediting. `release`: the task may run on without this reader (the follow ended before
   * the task did), so the agent is told not to hold its output any more.
   */
  async stop(release: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.flushTimer);
    clearInterval(this.keepalive);
    if (release && this.node && this.client.mqtt.connected) await this.publish({ release: true }).catch(() => undefined);
  }

  private bind(node: string, attempt: number): void {
    this.node = node;
    this.attempt = attempt;
    this.seq = -1;
    this.sentSeq = -1;
    clearInterval(this.keepalive);
    this.keepalive = setInterval(() => this.send(true), OUTPUT_CREDIT_KEEPALIVE_MS);
    this.keepalive.unref();
  }

  /** Sends the credit now (`always`: even when it has not moved, as a sign of life). */
  private send(always = false): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.stopped || this.seq < 0 || (!always && this.seq === this.sentSeq)) return;
    this.sentSeq = this.seq;
    this.bytesSince = 0;
    this.eventsSince = 0;
    // The link is down: MQTT.js sends it on reconnect, or the run ends; a later credit supersedes it.
    void this.publish({}).catch(() => undefined);
  }

  private publish(extra: Partial<CreditMessage>): Promise<unknown> {
    const msg: CreditMessage = { v: 1, attempt: this.attempt, seq: Math.max(0, this.seq), ...extra };
    return this.client.mqtt.publishAsync(this.client.topics.nodeCredit(this.node!, this.taskId), encode(msg), { qos: 1 });
  }
}
