/**
 * Batches a task's output into log events: by time (every `intervalMs`) and by size (at
 * `maxBytes`), per stream, decoding UTF-8 across chunk borders so no character is split.
 */
import { StringDecoder } from 'node:string_decoder';

export type Stream = 'stdout' | 'stderr';

export class OutputBatcher {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly pending = { stdout: '', stderr: '' };
  private timer?: NodeJS.Timeout;

  /**
   * @param emit receives each batch (a string of at most about `maxBytes`).
   * @param intervalMs longest time output waits before it is sent, ms.
   * @param maxBytes batch size that triggers an immediate send, bytes.
   */
  constructor(
    private readonly emit: (stream: Stream, data: string) => void,
    private readonly intervalMs = 50,
    private readonly maxBytes = 64 * 1024,
  ) {}

  write(stream: Stream, chunk: Buffer): void {
    this.pending[stream] += this.decoders[stream].write(chunk);
    if (this.pending[stream].length >= this.maxBytes) this.flushStream(stream);
    else this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Sends whatever is pending, including an incomplete trailing character. */
  end(): void {
    for (const s of ['stdout', 'stderr'] as const) this.pending[s] += this.decoders[s].end();
    this.flush();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushStream('stdout');
    this.flushStream('stderr');
  }

  private flushStream(stream: Stream): void {
    while (this.pending[stream].length > 0) {
      const data = this.pending[stream].slice(0, this.maxBytes);
      this.pending[stream] = this.pending[stream].slice(data.length);
      this.emit(stream, data);
    }
  }
}
