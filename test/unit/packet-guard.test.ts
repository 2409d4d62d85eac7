import { describe, expect, it } from 'vitest';
import { PacketSizeGuard } from '../../broker/packet-guard.js';
import { varint } from '../mqtt-wire.js';

const packet = (type: number, bodyLength: number) => Buffer.from([type, ...varint(bodyLength), ...new Array(bodyLength).fill(7)]);
const limits = { maxConnectBytes: 100, maxPacketBytes: 1000 };

describe('PacketSizeGuard', () => {
  it('passes packets within the limits, whole or split at every byte', () => {
    const stream = Buffer.concat([packet(0x10, 100), packet(0x30, 1000), packet(0xc0, 0), packet(0x30, 300)]);
    expect(new PacketSizeGuard(limits).feed(stream)).toBeNull();
    for (let size = 1; size <= 7; size++) {
      const g = new PacketSizeGuard(limits);
      for (let i = 0; i < stream.length; i += size) expect(g.feed(stream.subarray(i, i + size))).toBeNull();
    }
  });

  it('holds the first packet (CONNECT) to the smaller limit', () => {
    expect(new PacketSizeGuard(limits).feed(packet(0x10, 101))).toBe('first packet (CONNECT) announces 101 bytes, over the limit of 100');
  });

  it('reports a later packet over the limit as soon as its length is read, before its body', () => {
    const g = new PacketSizeGuard(limits);
    expect(g.feed(packet(0x10, 10))).toBeNull();
    expect(g.feed(Buffer.from([0x30, ...varint(200 * 1024 * 1024)]))).toBe('packet announces 209715200 bytes, over the limit of 1000');
  });

  it('finds the over-limit packet after others in the same chunk, split inside its length', () => {
    const g = new PacketSizeGuard(limits);
    const header = Buffer.from([0x30, ...varint(5000)]);
    expect(g.feed(Buffer.concat([packet(0x10, 5), packet(0x30, 20), header.subarray(0, 2)]))).toBeNull();
    expect(g.feed(header.subarray(2))).toBe('packet announces 5000 bytes, over the limit of 1000');
  });

  it('rejects a remaining length longer than 4 bytes', () => {
    expect(
      new PacketSizeGuard({ maxConnectBytes: 1e12, maxPacketBytes: 1e12 }).feed(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])),
    ).toBe('malformed remaining length (more than 4 bytes)');
  });
});
