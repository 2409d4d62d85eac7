/**
 * Batches an ollama task's response objects into `chunks` events by time, not only by count:
 * a chunk that arrives after a quiet spell of at least `intervalMs` goes out at once (a model
 * generating 20-100 tokens/s never waits), while a burst is gathered and sent every `intervalMs`
 * (or at `maxBytes` of JSON), so a fast stream costs a few MQTT messages per interval, not one
 * per token.
 */
export type Chunk = Record<string, unknown>;

export class ChunkBatcher {
  private pending: Chunk[] = [];
  private pendingBytes = 0;
  private lastSent = -Infinity;
  private timer?: NodeJS.Timeout;

  /**
   * @param emit receives each batch, in order (at least one chunk).
   * @param intervalMs longest time a chunk waits during a burst, ms.
   * @param maxBytes JSON size of a batch that triggers an immediate send, bytes.
   * @param now clock, ms (tests may pass their own).
   */
  constructor(
    private readonly emit: (chunks: Chunk[]) => void,
    private readonly intervalMs = 5,
    private readonly maxBytes = 256 * 1024,
    private readonly now: () => number = () => performance.now(),
  ) {}

  push(chunk: Chunk): void {
    this.pending.push(chunk);
    this.pendingBytes += JSON.stringify(chunk).length;
    if (this.timer) {
      if (this.pendingBytes >= this.maxBytes) this.flush();
      return;
    }
    const wait = this.lastSent + this.intervalMs - this.now();
    if (wait <= 0 || this.pendingBytes >= this.maxBytes) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Sends what is pending now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.lastSent = this.now();
    this.emit(batch);
  }

  /** Same as flush(): the stream has ended. */
  end(): void {
    this.flush();
  }
}
