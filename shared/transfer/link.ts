/**
 * A client's side of the file transfer topics for one node (protocol: shared/schemas/files.ts), used
 * by the CLI and by an agent pulling from another node: control messages and chunk frames to the
 * agent, its replies and chunks back, and the mapping of the agent's error codes onto the client's.
 */
import { decode, encode } from '../codec.js';
import { CutterError } from '../errors.js';
import type { MqttClient } from '../mqtt.js';
import { FileOutSchema, frameInPlace, type FileIn, type FileOut } from '../schemas/files.js';
import type { Topics } from '../topics.js';
import { publishChunk } from './publish-chunk.js';

/** The client's side of the topics for one node. */
export class FileLink {
  private readonly controlHandlers = new Set<(m: FileOut) => void>();
  private readonly dataHandlers = new Set<(frame: Buffer) => void>();
  private readonly onMessage = (topic: string, payload: Buffer) => {
    if (topic === this.t.filesOut(this.node, this.clientId)) {
      const d = decode(FileOutSchema, payload);
      if (d.ok) for (const h of this.controlHandlers) h(d.value);
    } else if (topic === this.t.filesOutData(this.node, this.clientId)) {
      for (const h of this.dataHandlers) h(payload);
    }
  };

  constructor(
    readonly mqtt: MqttClient,
    readonly t: Topics,
    readonly node: string,
    readonly clientId: string,
  ) {}

  /** Subscribes to the node's replies and chunks for this client. */
  async open(): Promise<void> {
    this.mqtt.on('message', this.onMessage);
    await this.mqtt.subscribeAsync(this.t.filesOut(this.node, this.clientId), { qos: 1 });
    await this.mqtt.subscribeAsync(this.t.filesOutData(this.node, this.clientId), { qos: 0 });
  }

  /** Stops listening and unsubscribes (an unsubscribe that fails, e.g. while offline, is ignored). */
  async close(): Promise<void> {
    this.mqtt.off('message', this.onMessage);
    await this.mqtt
      .unsubscribeAsync([this.t.filesOut(this.node, this.clientId), this.t.filesOutData(this.node, this.clientId)])
      .catch(() => undefined);
  }

  /** Sends a control message (QoS 1; QoS 0 for acks, which are superseded by the next). */
  send(body: FileIn extends infer I ? (I extends FileIn ? Omit<I, 'v'> : never) : never): Promise<unknown> {
    if (!this.mqtt.connected && body.type === 'ack') return Promise.resolve();
    return this.mqtt.publishAsync(this.t.filesIn(this.node, this.clientId), encode({ v: 1, ...body }), {
      qos: body.type === 'ack' ? 0 : 1,
    });
  }

  /**
   * Sends a chunk frame (QoS 0) made in place of `chunk`: FRAME_HEADER_BYTES free bytes then the
   * data (ChunkPump with `headroom: FRAME_HEADER_BYTES`). @returns false while disconnected (nothing sent).
   */
  sendChunk(xfer: string, offset: number, chunk: Buffer): Promise<boolean> {
    return publishChunk(this.mqtt, this.t.filesInData(this.node, this.clientId), frameInPlace(xfer, offset, chunk));
  }

  /** Calls `h` with every valid control reply of the node to this client. @returns the unsubscribe function. */
  onControl(h: (m: FileOut) => void): () => void {
    this.controlHandlers.add(h);
    return () => this.controlHandlers.delete(h);
  }

  /** Calls `h` with every raw chunk frame of the node to this client (decoded by the caller). @returns the unsubscribe function. */
  onData(h: (frame: Buffer) => void): () => void {
    this.dataHandlers.add(h);
    return () => this.dataHandlers.delete(h);
  }

  /**
   * Asks once (retrying every `stallMs` up to `timeoutMs`) and resolves with the first reply of
   * `xfer` that `accept` takes. @throws CutterError for an `error` reply or the timeout.
   */
  async ask<T extends FileOut>(
    body: Parameters<FileLink['send']>[0],
    accept: (m: FileOut) => m is T,
    stallMs = 3000,
    timeoutMs = 30_000,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const off = this.onControl((m) => {
        if (m.xfer !== body.xfer) return;
        if (m.type === 'error') finish(() => reject(new CutterError(errorCode(m.code), `node ${this.node}: ${m.message}`)));
        else if (accept(m)) finish(() => resolve(m));
      });
      const timer = setInterval(() => {
        if (Date.now() > deadline)
          finish(() =>
            reject(
              new CutterError(
                'TIMEOUT',
                `node ${this.node} did not answer within ${timeoutMs} ms: is its agent online (cutter nodes list)?`,
              ),
            ),
          );
        else void this.send(body).catch(() => undefined);
      }, stallMs);
      const finish = (fn: () => void) => {
        clearInterval(timer);
        off();
        fn();
      };
      void this.send(body).catch(() => undefined);
    });
  }
}

/** Maps an agent's error code onto a CLI error code. */
export function errorCode(
  code: string,
): 'POLICY_DENIED' | 'NOT_FOUND' | 'EXECUTOR_DISABLED' | 'INVALID_ARGUMENT' | 'EXECUTOR_UNAVAILABLE' | 'INTERNAL' {
  switch (code) {
    case 'PATH_DENIED':
      return 'POLICY_DENIED';
    case 'NOT_FOUND':
      return 'NOT_FOUND';
    case 'FILES_DISABLED':
      return 'EXECUTOR_DISABLED';
    case 'BAD_REQUEST':
    case 'TOO_LARGE':
      return 'INVALID_ARGUMENT';
    case 'EXECUTOR_UNAVAILABLE':
      return 'EXECUTOR_UNAVAILABLE';
    default:
      return 'INTERNAL';
  }
}
