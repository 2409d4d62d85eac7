/**
 * The sending half of a file transfer (shared/transfer/pump.ts) with the frame header written in
 * place (`headroom`, shared/schemas/files.ts `frameInPlace`): every byte of the file arrives once,
 * in its frame, and a chunk still held by the transport is never overwritten by the next read.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFrame, FRAME_HEADER_BYTES, frameInPlace } from '../../shared/schemas/files.js';
import { ChunkPump } from '../../shared/transfer/pump.js';
import { tempDir } from '../harness.js';

describe('ChunkPump', () => {
  it('sends the file in frames made in place, each chunk in a buffer of its own, the last one short', async () => {
    const file = join(tempDir(), 'data.bin');
    const bytes = randomBytes(3 * 64 * 1024 + 1234);
    writeFileSync(file, bytes);
    const xfer = 'ab'.repeat(16);
    const frames: Buffer[] = [];
    let pump: ChunkPump;
    const done = new Promise<void>((resolve) => {
      pump = new ChunkPump({
        path: file,
        size: bytes.length,
        chunkBytes: 64 * 1024,
        windowBytes: 2 * 64 * 1024,
        headroom: FRAME_HEADER_BYTES,
        send: async (offset, chunk) => {
          // Held, as MQTT.js holds a frame until it is written: acked later, never copied.
          frames.push(frameInPlace(xfer, offset, chunk));
          setImmediate(() => {
            pump.ack(offset + chunk.length - FRAME_HEADER_BYTES);
            if (offset + chunk.length - FRAME_HEADER_BYTES === bytes.length) resolve();
          });
          return true;
        },
      });
    });
    await pump!.start(0);
    await done;
    await pump!.close();
    const decoded = frames.map((f) => decodeFrame(f)!);
    expect(decoded.map((d) => [d.xfer, d.offset, d.data.length])).toEqual([
      [xfer, 0, 65_536],
      [xfer, 65_536, 65_536],
      [xfer, 131_072, 65_536],
      [xfer, 196_608, 1234],
    ]);
    // Checked at the end: a buffer reused by a later read would have changed an earlier frame.
    expect(Buffer.concat(decoded.map((d) => d.data)).equals(bytes)).toBe(true);
    expect(new Set(frames.map((f) => f.buffer)).size).toBe(frames.length);
  });

  it('hands over the data alone without headroom, and resumes from the offset asked', async () => {
    const file = join(tempDir(), 'data.bin');
    const bytes = randomBytes(100_000);
    writeFileSync(file, bytes);
    const got: [number, Buffer][] = [];
    let pump: ChunkPump;
    const done = new Promise<void>((resolve) => {
      pump = new ChunkPump({
        path: file,
        size: bytes.length,
        chunkBytes: 40_000,
        windowBytes: 80_000,
        send: async (offset, chunk) => {
          got.push([offset, chunk]);
          setImmediate(() => {
            pump.ack(offset + chunk.length);
            if (offset + chunk.length === bytes.length) resolve();
          });
          return true;
        },
      });
    });
    await pump!.start(30_000);
    await done;
    await pump!.close();
    expect(got.map(([o, c]) => [o, c.length])).toEqual([
      [30_000, 40_000],
      [70_000, 30_000],
    ]);
    expect(Buffer.concat(got.map(([, c]) => c)).equals(bytes.subarray(30_000))).toBe(true);
  });
});
