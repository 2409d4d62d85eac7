/**
 * Batches a task's output into log events: by time (every `intervalMs`) and by size (at
 * `maxBytes`), per stream. Output is bytes and stays bytes: nothing is decoded, so binary output,
 * invalid UTF-8 and characters split between writes or batches reach the reader exactly as written
 * (each stream's bytes in order; the reader joins the batches). A batch is handed on as the list of
 * the chunks it is made of (views, never copies), so its one copy is the one its sender makes into
 * the message (agent/task-events.ts: a log frame).
 */
import { MAX_LOG_EVENT_BYTES } from '../shared/log-data.js';

export type Stream = 'stdout' | 'stderr';

export class OutputBatcher {
  private readonly pending: Record<Stream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly pendingBytes: Record<Stream, number> = { stdout: 0, stderr: 0 };
  private readonly maxBytes: number;
  private timer?: NodeJS.Timeout;

  /**
   * @param emit receives each batch: 1 to `maxBytes` bytes of one stream, in the order written, as
   *   the chunks (or parts of chunks) it is made of, and their total length. It may keep them (they are not reused).
   * @param intervalMs longest time output waits before it is sent, ms.
   * @param maxBytes batch size that triggers an immediate send, bytes (1 to MAX_LOG_EVENT_BYTES,
   *   clamped to that range).
   */
  constructor(
    private readonly emit: (stream: Stream, parts: Buffer[], bytes: number) => void,
    private readonly intervalMs = 50,
    maxBytes = 64 * 1024,
  ) {
    this.maxBytes = Math.max(1, Math.min(MAX_LOG_EVENT_BYTES, Math.floor(maxBytes)));
  }

  /** Takes a chunk of a stream's output (the Buffer is kept until sent: do not reuse it). */
  write(stream: Stream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending[stream].push(chunk);
    this.pendingBytes[stream] += chunk.length;
    if (this.pendingBytes[stream] >= this.maxBytes) this.flushStream(stream);
    else this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Sends whatever is pending on both streams, now. */
  end(): void {
    this.flush();
  }

  /** Sends whatever is pending (stdout first, then stderr) and clears the timer. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushStream('stdout');
    this.flushStream('stderr');
  }

  /** Emits everything pending on one stream, in batches of at most maxBytes (a chunk split between two batches is split as views). */
  private flushStream(stream: Stream): void {
    if (this.pendingBytes[stream] === 0) return;
    const chunks = this.pending[stream];
    this.pending[stream] = [];
    this.pendingBytes[stream] = 0;
    let batch: Buffer[] = [];
    let size = 0;
    for (let chunk of chunks) {
      while (chunk.length > 0) {
        const take = Math.min(chunk.length, this.maxBytes - size);
        batch.push(take === chunk.length ? chunk : chunk.subarray(0, take));
        size += take;
        chunk = chunk.subarray(take);
        if (size === this.maxBytes) {
          this.emit(stream, batch, size);
          batch = [];
          size = 0;
        }
      }
    }
    if (size > 0) this.emit(stream, batch, size);
  }
}
