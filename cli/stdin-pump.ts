/**
 * `cutter run -i`: streams this process's stdin, EOF included, to the task's stdin on the node
 * that runs its attempt (wire and flow control: shared/schemas/stdin.ts).
 *
 * Nothing is read before the attempt has `started` (its node then holds the stream to write to);
 * then stdin is read, cut into frames of at most MAX_STDIN_CHUNK bytes and published (QoS 1) on
 * `nodes/N/stdin/T`, never more than STDIN_WINDOW bytes beyond what the agent acknowledged as
 * written: a fast producer (`tar c big-dir | cutter run -i …`) waits for the task instead of
 * filling memory, here or on the node. Bytes are kept until acknowledged, so a frame the agent
 * asks for again (`resend`) is sent again from there.
 *
 * A later attempt (the first one's node was lost) gets the stream from its start when the first
 * attempt took nothing yet; otherwise what it took cannot be replayed: the new attempt gets EOF at
 * once and the user is told.
 */
import type { Readable } from 'node:stream';
import type { MeshClient } from '../shared/client/index.js';
import { decode } from '../shared/codec.js';
import { LIMITS } from '../shared/limits.js';
import { encodeStdinFrame, MAX_STDIN_CHUNK, STDIN_WINDOW, type StdinAck, StdinAckSchema } from '../shared/schemas/index.js';

/** Feeds one task's stdin from `input` (see the file comment). `start()` before the submit, `stop()` at the end. */
export class StdinPump {
  private node?: string;
  private attempt = 0;
  /** Bytes read and not yet acknowledged as written, in order; `chunks[0]` starts at `written`. */
  private chunks: Buffer[] = [];
  /** Offset the agent acknowledged as written. */
  private written = 0;
  /** Offset sent up to. */
  private sent = 0;
  /** Bytes read from `input` so far. */
  private read = 0;
  private inputEnded = false;
  private eofSent = false;
  /** Reading has begun (listeners on `input`). */
  private reading = false;
  /** Nothing more to do: EOF reached the task, or its stdin is closed. */
  private done = false;
  private readonly onMessage = (topic: string, payload: Buffer) => this.onAck(topic, payload);
  private readonly onResize = () => this.sendSize();
  private readonly restore = () => this.setRaw(false);
  private unwatch: () => Promise<void> = async () => undefined;

  /**
   * @param warn prints one line for the user (stderr).
   * @param opts `terminal`: the task has a TTY (`-t`) shown on this stream: its size is sent at the
   *   start and on every resize (SIGWINCH), and a terminal `input` is put in raw mode meanwhile
   *   (restored by `stop()` and at exit).
   */
  constructor(
    private readonly client: MeshClient,
    private readonly taskId: string,
    private readonly input: Readable,
    private readonly warn: (line: string) => void,
    private readonly opts: { terminal?: NodeJS.WriteStream } = {},
  ) {}

  /** Subscribes to the task's stdin acks and watches its events for the attempt to start. Resolves once subscribed. */
  async start(): Promise<void> {
    const mqtt = this.client.mqtt;
    mqtt.on('message', this.onMessage);
    await mqtt.subscribeAsync(this.client.topics.nodeStdinAck('+', this.taskId), { qos: 1 });
    this.unwatch = await this.client.watchTask(this.taskId, {
      onEvent: (e) => {
        if (e.type === 'started') this.bind(e.node, e.attempt);
      },
      onState: () => undefined,
    });
  }

  /** Stops reading and sending (the task has ended). */
  async stop(): Promise<void> {
    this.done = true;
    this.input.pause();
    this.setRaw(false);
    this.opts.terminal?.off('resize', this.onResize);
    this.client.mqtt.off('message', this.onMessage);
    await this.unwatch();
  }

  /** An attempt started on `node`: stream to it (see the file comment for a later attempt). */
  private bind(node: string, attempt: number): void {
    if (attempt <= this.attempt || this.done) return;
    const later = this.attempt > 0;
    this.node = node;
    this.attempt = attempt;
    if (later) {
      if (this.written > 0) {
        this.warn(
          `attempt ${attempt} of task ${this.taskId} gets no stdin: attempt ${attempt - 1} already took ${this.written} bytes of it`,
        );
        this.done = true;
        this.input.pause();
        this.publish(0, Buffer.alloc(0), true);
        return;
      }
      this.sent = 0;
      this.eofSent = false;
    }
    if (!this.reading) {
      this.reading = true;
      if (this.opts.terminal) {
        this.setRaw(true);
        this.opts.terminal.on('resize', this.onResize);
      }
      this.input.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
      this.input.on('end', () => {
        this.inputEnded = true;
        this.pump();
      });
      this.input.on('error', (err) => {
        this.warn(`cannot read stdin (${err.message}): the task's stdin ends here`);
        this.inputEnded = true;
        this.pump();
      });
    }
    this.sendSize();
    this.pump();
  }

  /** Raw mode on a terminal stdin (`-t`): every key goes to the task as typed. */
  private setRaw(on: boolean): void {
    const tty = this.input as Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => void };
    if (!this.opts.terminal || !tty.isTTY || !tty.setRawMode) return;
    tty.setRawMode(on);
    if (on) process.once('exit', this.restore);
    else process.off('exit', this.restore);
  }

  /** Sends the terminal's size (a window-size frame; it takes no place in the stream). */
  private sendSize(): void {
    const term = this.opts.terminal;
    if (!term?.isTTY || !this.node || this.done) return;
    const frame = encodeStdinFrame({
      attempt: this.attempt,
      offset: this.sent,
      eof: false,
      data: Buffer.alloc(0),
      size: { rows: term.rows, cols: term.columns },
    });
    this.client.mqtt.publishAsync(this.client.topics.nodeStdin(this.node, this.taskId), frame, { qos: 1 }).catch(() => undefined);
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.read += chunk.length;
    if (this.read - this.written >= STDIN_WINDOW) this.input.pause();
    this.pump();
  }

  /** Sends what the window allows, then EOF once everything read is sent. */
  private pump(): void {
    if (this.done || !this.node) return;
    while (this.sent < this.read && this.sent - this.written < STDIN_WINDOW) {
      const end = Math.min(this.read, this.sent + MAX_STDIN_CHUNK, this.written + STDIN_WINDOW);
      const data = this.slice(this.sent, end);
      const eof = this.inputEnded && end === this.read;
      this.publish(this.sent, data, eof);
      this.sent = end;
      if (eof) this.eofSent = true;
    }
    if (this.inputEnded && this.sent === this.read && !this.eofSent) {
      this.publish(this.sent, Buffer.alloc(0), true);
      this.eofSent = true;
    }
  }

  /** Bytes [from, to) of the stream, from the kept chunks (from ≥ written). */
  private slice(from: number, to: number): Buffer {
    const parts: Buffer[] = [];
    let at = this.written;
    for (const c of this.chunks) {
      const cEnd = at + c.length;
      if (cEnd > from && at < to) parts.push(c.subarray(Math.max(0, from - at), Math.min(c.length, to - at)));
      if (cEnd >= to) break;
      at = cEnd;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  private publish(offset: number, data: Buffer, eof: boolean): void {
    const frame = encodeStdinFrame({ attempt: this.attempt, offset, eof, data });
    this.client.mqtt.publishAsync(this.client.topics.nodeStdin(this.node!, this.taskId), frame, { qos: 1 }).catch(() => undefined); // the link is down: MQTT.js sends it again on reconnect, or the run ends
  }

  private onAck(topic: string, payload: Buffer): void {
    const p = this.client.topics.parse(topic);
    if (p?.kind !== 'nodeStdinAck' || p.task !== this.taskId || p.node !== this.node || this.done) return;
    const d = decode(StdinAckSchema, payload, LIMITS.nodeStdinAck);
    if (!d.ok || d.value.attempt !== this.attempt) return;
    this.apply(d.value);
  }

  private apply(ack: StdinAck): void {
    if (ack.closed) {
      this.done = true;
      this.input.pause();
      // A process that stops reading early is no error (docker run -i says nothing either).
      if (ack.closed === 'not-attached') this.warn(`stdin not delivered: ${ack.message ?? 'the node takes no stdin for this task'}`);
      return;
    }
    if (ack.written > this.written) this.forget(ack.written);
    if (ack.eof) {
      this.done = true;
      return;
    }
    if (ack.resend && ack.next < this.sent) {
      this.sent = Math.max(ack.next, this.written);
      this.eofSent = false;
    }
    if (!this.inputEnded && this.read - this.written < STDIN_WINDOW) this.input.resume();
    this.pump();
  }

  /** Drops the bytes before `upTo` (written by the agent). */
  private forget(upTo: number): void {
    let at = this.written;
    while (this.chunks.length > 0 && at + this.chunks[0].length <= upTo) at += this.chunks.shift()!.length;
    if (this.chunks.length > 0 && at < upTo) {
      this.chunks[0] = this.chunks[0].subarray(upTo - at);
    }
    this.written = upTo;
    if (this.sent < upTo) this.sent = upTo;
  }
}
