/**
 * Task stdin on the agent (`cutter run -i`; wire in shared/schemas/stdin.ts): takes the binary
 * frames clients publish on `nodes/N/stdin/{task}`, writes them in order to the stdin of the
 * attempt that runs here with `stdin` (the container's attached stream, the process's pipe), closes
 * it at EOF, and acknowledges on `nodes/N/stdin/{task}/ack` what was written.
 *
 * Memory per task is bounded: at most STDIN_WINDOW + one frame waits to be written (a client keeps
 * to the window; a frame beyond it, or out of order, is dropped and asked for again once). A frame
 * for an attempt that does not run here with stdin is refused (`closed: not-attached`) with one
 * rate-limited log line; one refusal ack per (task, attempt) is sent, the rest are dropped.
 */
import type { Writable } from 'node:stream';
import { encode } from '../shared/codec.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import {
  decodeStdinFrame,
  MAX_STDIN_CHUNK,
  STDIN_WINDOW,
  type StdinAck,
  type StdinClosed,
  type StdinFrame,
} from '../shared/schemas/stdin.js';
import type { Topics } from '../shared/topics.js';
import { warnLimiter } from '../shared/warn-limiter.js';
import type { AgentService } from './service.js';
import { NodeTaskTopic } from './task-topic.js';

/** Attempts refused or ended here, remembered so each gets one refusal at most; oldest forgotten first. */
const MAX_TOLD = 1_024;

/** The stdin of one attempt running here. */
interface Sink {
  attempt: number;
  stream: Writable;
  /** Bytes handed to the stream whose write has completed. */
  written: number;
  /** The offset taken next (written + bytes waiting in the stream). */
  next: number;
  /** A resend was asked for since the last frame taken: do not ask again for every frame in flight. */
  asked: boolean;
  /** A frame was dropped since the last ack: the next ack asks for a resend again (the first ask may have been answered with frames dropped too). */
  dropped: boolean;
  /** EOF was taken (the stream is ending or ended). */
  eof: boolean;
  /** Bytes of `written` last acknowledged. */
  acked: number;
  closed?: { why: StdinClosed; message: string };
  /** Sets the TTY's window size (`-t` tasks). */
  resize?: (rows: number, cols: number) => void;
}

/** Feeds the stdin of this node's `-i` tasks from their clients' frames (see the file comment). */
export class StdinService implements AgentService {
  private client?: MqttClient;
  private readonly topic: NodeTaskTopic;
  /** By task id: one attempt of a task runs here at a time (agent/tasks.ts fences older ones). */
  private readonly sinks = new Map<string, Sink>();
  private readonly told = new Set<string>();

  constructor(private readonly opts: { node: string; t: Topics; log: Logger }) {
    this.topic = new NodeTaskTopic(opts, 'nodeStdin', (task, payload) => this.onFrame(task, payload));
  }

  attach(client: MqttClient): void {
    this.client = client;
    this.topic.attach(client);
  }

  /** Subscribes (QoS 1: the persistent session keeps frames sent while the link was down). */
  start(): Promise<void> {
    return this.topic.subscribe();
  }

  /**
   * An attempt started with `stdin` hands over its stdin stream (called by its executor through
   * ExecutorContext.stdin before it reports `started`, so no frame finds it missing). An error on
   * the stream (EPIPE: the process closed its stdin) closes it for good.
   */
  taskStdin(taskId: string, attempt: number, stream: Writable, resize?: (rows: number, cols: number) => void): void {
    const sink: Sink = { attempt, stream, written: 0, next: 0, asked: false, dropped: false, eof: false, acked: 0, resize };
    this.sinks.set(taskId, sink);
    stream.on('error', (err: NodeJS.ErrnoException) =>
      this.close(taskId, sink, 'closed-by-task', `the task closed its stdin (${err.code ?? err.message})`),
    );
  }

  /**
   * The attempt ended: its stdin takes nothing more. Frames still in flight are dropped without a
   * refusal (the client learns of the end from the task's events).
   */
  taskEnded(taskId: string, attempt: number): void {
    const sink = this.sinks.get(taskId);
    if (!sink || sink.attempt !== attempt) return;
    sink.stream.destroy();
    this.sinks.delete(taskId);
    this.remember(`${taskId}:${attempt}`);
  }

  private onFrame(taskId: string, payload: Buffer): void {
    const f = decodeStdinFrame(payload);
    if (!f) {
      warnLimiter(this.opts.log).warn('stdin-refused', { taskId, bytes: payload.length }, 'dropped an invalid stdin frame');
      return;
    }
    const sink = this.sinks.get(taskId);
    if (!sink || sink.attempt !== f.attempt) this.refuse(taskId, f.attempt);
    else if (f.size) sink.resize?.(f.size.rows, f.size.cols);
    else if (sink.closed) this.ack(taskId, sink);
    else this.take(taskId, sink, f);
  }

  /** Writes what is new in an in-order frame; asks once for a resend of one out of order or beyond the window. */
  private take(taskId: string, sink: Sink, f: StdinFrame): void {
    if (sink.eof) return;
    let data = f.data;
    if (f.offset < sink.next) {
      if (f.offset + data.length < sink.next || (f.offset + data.length === sink.next && !f.eof)) return; // seen already
      data = data.subarray(sink.next - f.offset);
    }
    const queued = sink.next - sink.written;
    if (f.offset > sink.next || queued + data.length > STDIN_WINDOW + MAX_STDIN_CHUNK) {
      sink.dropped = true;
      if (!sink.asked) this.ack(taskId, sink);
      sink.asked = true;
      return;
    }
    sink.asked = false;
    if (data.length > 0) {
      sink.next += data.length;
      const n = data.length;
      sink.stream.write(data, (err) => {
        if (err) return; // the 'error' listener closes it
        sink.written += n;
        // Coalesced: when all is written, or every quarter window.
        if (sink.written === sink.next || sink.written - sink.acked >= STDIN_WINDOW / 4) this.ack(taskId, sink);
      });
    }
    if (f.eof) {
      sink.eof = true;
      sink.stream.end(() => {
        if (sink.closed) return;
        this.ack(taskId, sink);
      });
    }
  }

  private close(taskId: string, sink: Sink, why: StdinClosed, message: string): void {
    if (sink.closed) return;
    sink.closed = { why, message };
    this.opts.log.info({ taskId, attempt: sink.attempt, why }, message);
    this.ack(taskId, sink);
  }

  /** Tells a client that this attempt takes no stdin here (once per task and attempt) and logs it (rate-limited). */
  private refuse(taskId: string, attempt: number): void {
    const key = `${taskId}:${attempt}`;
    if (this.told.has(key)) return;
    this.remember(key);
    const message = `task ${taskId} attempt ${attempt} is not running on node ${this.opts.node} with stdin attached (-i)`;
    warnLimiter(this.opts.log).warn('stdin-refused', { taskId, attempt }, `stdin refused: ${message}`);
    this.publish(taskId, { v: 1, attempt, written: 0, next: 0, closed: 'not-attached', message });
  }

  private remember(key: string): void {
    this.told.add(key);
    if (this.told.size > MAX_TOLD) this.told.delete(this.told.values().next().value!);
  }

  private ack(taskId: string, sink: Sink): void {
    sink.acked = sink.written;
    const resend = sink.dropped;
    sink.dropped = false;
    this.publish(taskId, {
      v: 1,
      attempt: sink.attempt,
      written: sink.written,
      next: sink.next,
      ...(resend ? { resend: true } : {}),
      ...(sink.eof && !sink.closed && sink.stream.writableFinished ? { eof: true } : {}),
      ...(sink.closed ? { closed: sink.closed.why, message: sink.closed.message } : {}),
    });
  }

  private publish(taskId: string, ack: StdinAck): void {
    this.client
      ?.publishAsync(this.opts.t.nodeStdinAck(this.opts.node, taskId), encode(ack), { qos: 1 })
      .catch((err) => this.opts.log.debug({ taskId, err }, 'stdin ack not sent'));
  }
}
