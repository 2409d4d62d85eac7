/**
 * Batches a task's output into log events: by time (every `intervalMs`) and by size (at
 * `maxBytes` of UTF-8), per stream. Bytes are decoded as UTF-8 across chunk borders and batches
 * are cut only between characters, so no character is ever split or replaced.
 */
import { StringDecoder } from 'node:string_decoder';

export type Stream = 'stdout' | 'stderr';

/** Largest prefix of `buf` of at most `max` bytes that ends on a UTF-8 character boundary. */
function cutAt(buf: Buffer, max: number): number {
  let cut = Math.min(max, buf.length);
  // Step back over continuation bytes (10xxxxxx) so the cut falls before a lead byte.
  while (cut > 0 && cut < buf.length && (buf[cut] & 0xc0) === 0x80) cut--;
  return cut === 0 ? Math.min(max, buf.length) : cut;
}

export class OutputBatcher {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly pending: Record<Stream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly pendingBytes: Record<Stream, number> = { stdout: 0, stderr: 0 };
  private timer?: NodeJS.Timeout;

  /**
   * @param emit receives each batch: a string of whole characters, at most `maxBytes` of UTF-8.
   * @param intervalMs longest time output waits before it is sent, ms.
   * @param maxBytes batch size that triggers an immediate send, bytes (at least 4).
   */
  constructor(
    private readonly emit: (stream: Stream, data: string) => void,
    private readonly intervalMs = 50,
    private readonly maxBytes = 64 * 1024,
  ) {}

  write(stream: Stream, chunk: Buffer): void {
    // Decoding first keeps incomplete characters in the decoder until their last byte arrives.
    this.push(stream, this.decoders[stream].write(chunk));
    if (this.pendingBytes[stream] >= this.maxBytes) this.flushStream(stream);
    else if (this.pendingBytes[stream] > 0) this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Sends whatever is pending, including an incomplete trailing character (as U+FFFD). */
  end(): void {
    for (const s of ['stdout', 'stderr'] as const) this.push(s, this.decoders[s].end());
    this.flush();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushStream('stdout');
    this.flushStream('stderr');
  }

  private push(stream: Stream, text: string): void {
    if (!text) return;
    const buf = Buffer.from(text, 'utf8');
    this.pending[stream].push(buf);
    this.pendingBytes[stream] += buf.length;
  }

  /** Emits everything pending on one stream, in batches of at most maxBytes. */
  private flushStream(stream: Stream): void {
    if (this.pendingBytes[stream] === 0) return;
    let buf = Buffer.concat(this.pending[stream]);
    this.pending[stream] = [];
    this.pendingBytes[stream] = 0;
    while (buf.length > 0) {
      const cut = cutAt(buf, this.maxBytes);
      this.emit(stream, buf.subarray(0, cut).toString('utf8'));
      buf = buf.subarray(cut);
    }
  }
}
