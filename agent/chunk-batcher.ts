/**
 * Batches an ollama task's response objects into `chunks` events, clocked by the broker's acks
 * (Nagle's algorithm with MQTT's PUBACK as the ack): a chunk goes out at once when no batch is
 * waiting for its PUBACK, so a model generating tokens at human speeds never waits; while one is
 * in flight, chunks gather and leave together when the ack comes, or after `maxWaitMs` at the
 * latest (batched by time, not only by count) or at `maxBytes` of JSON. A fast stream thus costs
 * about one MQTT message per broker round trip, however many tokens that round trip carried.
 */
export type Chunk = Record<string, unknown>;

export class ChunkBatcher {
  private pending: Chunk[] = [];
  private pendingBytes = 0;
  private inFlight = false;
  private timer?: NodeJS.Timeout;

  /**
   * @param emit publishes one batch (at least one chunk), in order; the batcher sends the next
   *   batch when the returned promise settles (a PUBACK) — or at once when it returns nothing.
   * @param maxWaitMs longest time a chunk waits behind an unacknowledged batch, ms.
   * @param maxBytes JSON size of a gathered batch that is sent without waiting, bytes.
   */
  constructor(
    private readonly emit: (chunks: Chunk[]) => Promise<unknown> | undefined,
    private readonly maxWaitMs = 20,
    private readonly maxBytes = 256 * 1024,
  ) {}

  push(chunk: Chunk): void {
    this.pending.push(chunk);
    this.pendingBytes += JSON.stringify(chunk).length;
    if (!this.inFlight || this.pendingBytes >= this.maxBytes) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
  }

  /** Sends what is pending now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const sent = this.emit(batch);
    if (!sent) return;
    this.inFlight = true;
    const acked = () => {
      this.inFlight = false;
      if (this.pending.length > 0) this.flush();
    };
    sent.then(acked, acked);
  }

  /** Same as flush(): the stream has ended. */
  end(): void {
    this.flush();
  }
}
