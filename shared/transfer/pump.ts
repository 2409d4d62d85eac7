/**
 * The sending half of a chunked transfer: reads a file and hands chunks to `send` while fewer
 * than `windowBytes` are unacknowledged (flow control), from an offset the receiver chose
 * (resume). Transport-agnostic: the CLI and the agent both use it over MQTT (shared/schemas/files.ts).
 */
import { open, type FileHandle } from 'node:fs/promises';

/** Bytes per chunk of a file transfer, both directions (≤ MAX_CHUNK_BYTES, shared/schemas/files.ts). */
export const TRANSFER_CHUNK_BYTES = 512 * 1024;
/**
 * Most unacknowledged bytes of one transfer, both directions. It bounds what a transfer holds in
 * memory on the sender, the broker and the receiver, and what a slow receiver keeps in flight.
 */
export const TRANSFER_WINDOW_BYTES = 8 * TRANSFER_CHUNK_BYTES;

export interface PumpOptions {
  path: string;
  /** File size, bytes (the pump stops there even if the file grew). */
  size: number;
  /** Bytes per chunk (≤ MAX_CHUNK_BYTES). */
  chunkBytes: number;
  /** Most unacknowledged bytes in flight. */
  windowBytes: number;
  /**
   * Bytes left free before each chunk's data for the sender's own header (default 0): a chunk
   * frame's header (shared/schemas/files.ts `frameInPlace`) is then written in place, and the
   * data, read from the file once, is never copied on its way to the socket.
   */
  headroom?: number;
  /**
   * Sends one chunk: `chunk` is `headroom` free bytes followed by the data (a buffer of its own,
   * not reused). The promise resolves when it is handed to the socket (backpressure).
   * Return false to say the link is down: the pump waits for `kick()` (e.g. on reconnect).
   */
  send(offset: number, chunk: Buffer): Promise<boolean>;
}

/** Windowed sender. `start()` once, then `ack()` as acks arrive and `rewind()` on a resume. */
export class ChunkPump {
  /** Next offset to send. */
  private next = 0;
  /** Highest contiguous offset the receiver acknowledged. */
  acked = 0;
  private fh?: FileHandle;
  private wake?: () => void;
  private closed = false;
  private running?: Promise<void>;
  /** Bytes handed to `send`, resends included. */
  sentBytes = 0;

  constructor(private readonly opts: PumpOptions) {}

  /** Opens the file and starts sending from `offset`. @throws the open error. */
  async start(offset: number): Promise<void> {
    this.fh = await open(this.opts.path, 'r');
    this.next = this.acked = offset;
    this.running = this.loop().catch(() => undefined);
  }

  /** Records the receiver's contiguous offset. */
  ack(offset: number): void {
    if (offset > this.acked && offset <= this.opts.size) {
      this.acked = offset;
      this.kick();
    }
  }

  /** Resumes from `offset` (the receiver's, after a reconnect): chunks after it are sent again. */
  rewind(offset: number): void {
    this.acked = Math.min(offset, this.opts.size);
    this.next = this.acked;
    this.kick();
  }

  /** Wakes the loop (after an ack, a rewind or a reconnect). */
  kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Stops sending and closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    this.kick();
    await this.running;
    await this.fh?.close().catch(() => undefined);
  }

  private async loop(): Promise<void> {
    const { size, chunkBytes, windowBytes } = this.opts;
    const headroom = this.opts.headroom ?? 0;
    while (!this.closed) {
      if (this.next >= size || this.next - this.acked >= windowBytes) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      const offset = this.next;
      const length = Math.min(chunkBytes, size - offset);
      // A buffer per chunk, read into after the headroom: the send may still hold the last one
      // (in MQTT.js's outgoing queue) when this read fills it, and nothing copies it again.
      const chunk = Buffer.allocUnsafe(headroom + length);
      const { bytesRead } = await this.fh!.read(chunk, headroom, length, offset);
      if (bytesRead === 0) throw new Error(`${this.opts.path} shrank below ${offset} bytes while being sent`);
      const ok = await this.opts.send(offset, bytesRead === length ? chunk : chunk.subarray(0, headroom + bytesRead));
      if (!ok) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      this.sentBytes += bytesRead;
      // A rewind while sending moved `next`: keep its value.
      if (this.next === offset) this.next = offset + bytesRead;
    }
  }
}
