/**
 * An in-memory duplex pair: what one end writes, the other reads. The embedded broker hands one
 * end to Aedes (`aedes.handle`) and the other to an MQTT.js client in the same process (the
 * controller, the Ollama API), so their traffic costs no socket writes and reads — on the server,
 * every request, assignment and streamed chunk crosses this link once or twice.
 *
 * Backpressure is kept: a write completes only when the reading end has room (its `read()` is
 * called), so a slow reader stalls its writer exactly as a full socket would (Aedes's
 * drainTimeout then applies as to any client).
 */
import { Duplex } from 'node:stream';

class End extends Duplex {
  peer!: End;
  /** A write waiting for the peer's reader to want more. */
  private waiting?: (err?: Error | null) => void;

  override _read(): void {
    const cb = this.peer.waiting;
    this.peer.waiting = undefined;
    cb?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed) {
      cb(new Error('in-process peer closed'));
      return;
    }
    if (this.peer.push(chunk)) cb();
    else this.waiting = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.(err ?? new Error('in-process link closed'));
    if (!this.peer.destroyed) {
      this.peer.push(null);
      this.peer.destroy();
    }
    cb(err);
  }
}

/** Two connected ends: `[a, b]`, a's writes are b's reads and the reverse. Destroying one closes both. */
export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
