import { describe, expect, it } from 'vitest';
import { decodeStdinFrame, encodeStdinFrame, MAX_STDIN_CHUNK, STDIN_HEADER_BYTES } from '../../shared/schemas/index.js';

describe('stdin frames (shared/schemas/stdin.ts)', () => {
  it('round-trip attempt, offset, EOF and every byte value', () => {
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const f = { attempt: 3, offset: 2 ** 40 + 7, eof: true, data };
    const decoded = decodeStdinFrame(encodeStdinFrame(f));
    expect(decoded).toEqual(f);
    expect(decodeStdinFrame(encodeStdinFrame({ attempt: 1, offset: 0, eof: false, data: Buffer.alloc(0) }))).toEqual({
      attempt: 1,
      offset: 0,
      eof: false,
      data: Buffer.alloc(0),
    });
  });

  it('round-trips a window-size frame, which carries no stream data', () => {
    const frame = encodeStdinFrame({ attempt: 2, offset: 10, eof: false, data: Buffer.alloc(0), size: { rows: 30, cols: 100 } });
    expect(decodeStdinFrame(frame)).toEqual({ attempt: 2, offset: 10, eof: false, data: Buffer.alloc(0), size: { rows: 30, cols: 100 } });
    expect(decodeStdinFrame(Buffer.concat([frame, Buffer.from('x')]))).toBeNull();
  });

  it('refuses what is not a version-1 frame: short, other version, unknown flags, attempt 0, too much data', () => {
    const ok = encodeStdinFrame({ attempt: 1, offset: 0, eof: false, data: Buffer.from('x') });
    const with_ = (i: number, v: number) => Buffer.from(ok.map((b, j) => (j === i ? v : b)));
    expect(decodeStdinFrame(ok.subarray(0, STDIN_HEADER_BYTES - 1))).toBeNull();
    expect(decodeStdinFrame(with_(0, 2))).toBeNull();
    expect(decodeStdinFrame(with_(1, 3))).toBeNull();
    expect(decodeStdinFrame(with_(5, 0))).toBeNull();
    expect(decodeStdinFrame(Buffer.concat([ok.subarray(0, STDIN_HEADER_BYTES), Buffer.alloc(MAX_STDIN_CHUNK + 1)]))).toBeNull();
    expect(() => encodeStdinFrame({ attempt: 1, offset: 0, eof: false, data: Buffer.alloc(MAX_STDIN_CHUNK + 1) })).toThrow(RangeError);
  });
});
