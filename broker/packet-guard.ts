/**
 * Packet size limits enforced on the raw socket, before Aedes buffers a byte of the packet.
 *
 * Aedes 1.2's parser (mqtt-packet) waits until a whole packet is in memory: a client announcing a
 * 200 MB packet makes the broker buffer it, before it has even logged in (the class of bug of
 * Mosquitto's CVE-2023-0809). The guard reads only each packet's fixed header — the type byte and
 * the Remaining Length varint (MQTT 3.1.1 §2.2.3: at most 4 bytes, 7 bits each) — and cuts the
 * connection as soon as an announced length passes the limit: a smaller one for the first packet
 * (CONNECT), the normal one after it.
 */
import { Duplex } from 'node:stream';
import { Socket } from 'node:net';

/** Limits in bytes of a packet's remaining length (everything after the fixed header). */
export interface PacketLimits {
  /** For the first packet of a connection, which must be CONNECT. */
  maxConnectBytes: number;
  /** For every later packet. */
  maxPacketBytes: number;
  /**
   * Bytes a client may have waiting to be sent to it before it is cut as a reader that does not
   * keep up (Mosquitto's max_queued_bytes idea): delivery to everyone else never waits for it.
   * Absent or 0: writes wait for the socket to drain instead (Aedes' drainTimeout then applies),
   * as on the server's internal link, where the reader is the controller itself.
   */
  maxQueuedBytes?: number;
}

/** Follows packet boundaries in a byte stream and reports the first packet over its limit. */
export class PacketSizeGuard {
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;
  private packets = 0;

  constructor(private readonly limits: PacketLimits) {}

  /**
   * Advances over `chunk`.
   * @returns null while every packet is within its limit, else why the connection must close.
   */
  feed(chunk: Buffer): string | null {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'type':
          this.state = 'length';
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          i++;
          break;
        case 'length': {
          const b = chunk[i++];
          this.length += (b & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          if (++this.lengthBytes > 4) return 'malformed remaining length (more than 4 bytes)';
          if (b & 0x80) break;
          const limit = this.packets === 0 ? this.limits.maxConnectBytes : this.limits.maxPacketBytes;
          if (this.length > limit) {
            return `${this.packets === 0 ? 'first packet (CONNECT)' : 'packet'} announces ${this.length} bytes, over the limit of ${limit}`;
          }
          this.remaining = this.length;
          this.state = 'body';
          if (this.remaining === 0) this.endPacket();
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.endPacket();
          break;
        }
      }
    }
    return null;
  }

  private endPacket(): void {
    this.packets++;
    this.state = 'type';
  }
}

/**
 * Wraps a socket in a stream for `aedes.handle()` that passes bytes through the guard. Reading
 * follows the consumer's pace (the socket is paused while Aedes is behind). Writes complete at
 * once while the client's unsent bytes stay within `limits.maxQueuedBytes`, and the client is cut
 * past it: Aedes delivers a publisher's message to every subscriber before it reads that
 * publisher's next packet, so waiting for one slow reader's drain would stall every publisher it
 * subscribes to (the controller included) for up to the drain timeout, again and again. Without
 * `maxQueuedBytes` writes wait for the socket to drain, so Aedes' own `drainTimeout` sees a frozen reader.
 * @param onViolation called once, with the reason, before the socket is destroyed (a packet over its limit).
 * @param onSlow called once, with the reason, before a reader that fell `maxQueuedBytes` behind is cut.
 */
export function guardSocket(
  socket: Socket,
  limits: PacketLimits,
  onViolation: (reason: string) => void,
  onSlow: (reason: string) => void = () => undefined,
): Duplex {
  const maxQueued = limits.maxQueuedBytes ?? 0;
  const guard = new PacketSizeGuard(limits);
  let corked = false;
  /** Sends what is corked now; also before end/destroy, which would otherwise drop it (a refusal's CONNACK). */
  const uncork = () => {
    if (!corked) return;
    corked = false;
    if (!socket.destroyed) socket.uncork();
  };
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.destroyed) return callback();
      // Aedes writes every packet on its own; under load a subscriber gets many packets in one
      // turn of the event loop. Corked until the turn ends, they leave in one writev() instead of
      // a syscall each (the profile of the throughput benchmark had a quarter of the server's CPU
      // in per-packet socket writes). Nothing waits longer than the current turn.
      // TCP and TLS sockets only: a WebSocket stream writes asynchronously, and its destroy() would
      // drop what uncork() had just handed it.
      if (!corked && socket instanceof Socket) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      const flushed = socket.write(chunk);
      if (maxQueued > 0) {
        callback();
        if (socket.writableLength > maxQueued) {
          onSlow(`${socket.writableLength} bytes waiting to be sent to it (limit ${maxQueued})`);
          stream.destroy();
        }
        return;
      }
      if (flushed) return callback();
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        callback();
      };
      socket.once('drain', done);
      socket.once('close', done);
    },
    final(callback) {
      uncork();
      socket.end();
      callback();
    },
    destroy(err, callback) {
      uncork();
      socket.destroy();
      callback(err);
    },
  });
  // Aedes and the auth handlers read the peer's address from the stream they are given.
  Object.assign(stream, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
  socket.on('data', (chunk: Buffer) => {
    const violation = guard.feed(chunk);
    if (violation) {
      socket.removeAllListeners('data');
      onViolation(violation);
      stream.destroy();
      return;
    }
    if (!stream.push(chunk)) socket.pause();
  });
  socket.once('end', () => stream.push(null));
  socket.once('close', () => stream.destroy());
  socket.on('error', () => stream.destroy());
  return stream;
}
