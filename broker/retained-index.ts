/**
 * Retained messages for a SUBSCRIBE without a scan of all of them. Aedes asks its persistence for
 * the retained messages of every accepted filter (aedes 1.2 lib/handlers/subscribe.js:
 * `createRetainedStreamCombi(topics)`), and the in-memory aedes-persistence 11 answers each filter
 * by testing every retained topic against it (asyncPersistence.js `retainedMessagesByPattern`).
 * Each node's status is retained, and with Home Assistant discovery three more messages per node,
 * while an agent subscribes to a dozen exact topics of its own: connecting one agent cost
 * O(nodes), and all agents reconnecting after a server restart O(nodes²) (bench/sections/scale.ts:
 * 165 agents/s at 1,000 nodes, 31/s at 4,000).
 *
 * `indexRetained` wraps the persistence: it keeps the retained packets by topic beside it, answers
 * an exact filter (no `+` or `#`) with one lookup, and passes wildcard filters to the persistence's
 * own scan. What is answered, and in which order (filter by filter, as given), stays Aedes's.
 */
import { Readable } from 'node:stream';

/** A retained packet as Aedes stores it (topic, payload; the rest is passed through untouched). */
interface RetainedPacket {
  topic: string;
  payload: Buffer;
}

/** The two methods of an Aedes persistence that retained messages go through (aedes-persistence 11). */
export interface RetainedPersistence {
  storeRetained(packet: RetainedPacket, cb?: (err: Error | null) => void): unknown;
  createRetainedStreamCombi(patterns: string[]): Readable;
  createRetainedStream(pattern: string): Readable;
}

/**
 * `payload` in memory of its own: a copy when it is a view into a larger ArrayBuffer, else itself.
 * A retained message lives until its topic is cleared, and a small payload is usually a view of
 * more: Node's 8 KiB pool slab (`Buffer.from` of a short string: every payload the controller
 * publishes over the in-process link) or the socket read it was parsed from. Kept as it came, each
 * of the up to `keepFinished` (default 1,000) retained task states held a whole slab, 8 KiB for
 * ~300 bytes: 4 MB more after 2,000 tasks in a soak (heap snapshots, bench/profile.md).
 * `Buffer.allocUnsafeSlow` takes no slab of the pool.
 */
export function ownBytes(payload: Buffer): Buffer {
  if (payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength) return payload;
  const own = Buffer.allocUnsafeSlow(payload.length);
  payload.copy(own);
  return own;
}

/** True for an MQTT topic filter without wildcards: it matches one topic, itself (MQTT 3.1.1 §4.7.1). */
export function isExactFilter(filter: string): boolean {
  return !filter.includes('+') && !filter.includes('#');
}

/**
 * Makes `persistence` answer exact filters from an index of its retained messages (see the file
 * comment). The index follows every `storeRetained` (an empty payload deletes, as in Aedes) with a
 * shallow copy of the packet, as the in-memory persistence keeps one; both keep the payload's
 * bytes in a buffer of their own ({@link ownBytes}).
 * @returns the same object, changed in place.
 */
export function indexRetained<P extends RetainedPersistence>(persistence: P): P {
  const retained = new Map<string, RetainedPacket>();
  const store = persistence.storeRetained.bind(persistence);
  persistence.storeRetained = (packet, cb) => {
    if (packet.payload.length === 0) {
      retained.delete(packet.topic);
      return store(packet, cb);
    }
    const kept = { ...packet, payload: ownBytes(packet.payload) };
    retained.set(packet.topic, kept);
    return store(kept, cb);
  };
  async function* answer(patterns: string[]): AsyncGenerator<RetainedPacket> {
    for (const pattern of patterns) {
      if (isExactFilter(pattern)) {
        const packet = retained.get(pattern);
        if (packet) yield packet;
      } else {
        yield* persistence.createRetainedStream(pattern) as AsyncIterable<RetainedPacket>;
      }
    }
  }
  persistence.createRetainedStreamCombi = (patterns) =>
    patterns.some((p) => !isExactFilter(p))
      ? Readable.from(answer(patterns))
      : Readable.from(patterns.flatMap((p) => retained.get(p) ?? []));
  return persistence;
}
