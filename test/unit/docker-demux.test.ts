/**
 * agent/executors/docker-demux.ts: the attach stream split into stdout and stderr as the Docker
 * Engine API frames it (8-byte header: type, 0, 0, 0, big-endian size), whatever the chunking, with
 * the same results as dockerode's `modem.demuxStream`, and without copying the output.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import Modem from 'docker-modem';
import { describe, expect, it } from 'vitest';
import { DockerDemux } from '../../agent/executors/docker-demux.js';

/** One multiplexed frame. */
const frame = (type: number, data: Buffer) => {
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
};

/** Feeds `wire` to a DockerDemux in chunks cut at `cuts`; returns what each stream got. */
function demux(wire: Buffer, cuts: number[]): { stdout: Buffer; stderr: Buffer; views: Buffer[] } {
  const got = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const views: Buffer[] = [];
  const d = new DockerDemux((s, b) => {
    got[s].push(b);
    views.push(b);
  });
  let at = 0;
  for (const c of [...cuts.filter((c) => c > 0 && c < wire.length)].sort((a, b) => a - b).concat(wire.length)) {
    if (c > at) d.write(wire.subarray(at, c));
    at = Math.max(at, c);
  }
  return { stdout: Buffer.concat(got.stdout), stderr: Buffer.concat(got.stderr), views };
}

/** What dockerode's demuxStream makes of the same bytes, fed in one chunk. */
async function reference(wire: Buffer): Promise<{ stdout: Buffer; stderr: Buffer }> {
  const src = new PassThrough();
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.stdout.push(c));
  stderr.on('data', (c: Buffer) => out.stderr.push(c));
  new Modem().demuxStream(src, stdout, stderr);
  src.end(wire);
  await new Promise((r) => setImmediate(r));
  return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr) };
}

describe('DockerDemux', () => {
  it('splits frames of every size, cut anywhere, exactly as dockerode does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 300 })), { maxLength: 20 }),
        fc.array(fc.nat(7000), { maxLength: 30 }),
        async (frames, cuts) => {
          const wire = Buffer.concat(frames.map(([t, d]) => frame(t, Buffer.from(d))));
          const got = demux(wire, cuts);
          const want = await reference(wire);
          expect(got.stdout.equals(want.stdout)).toBe(true);
          expect(got.stderr.equals(want.stderr)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes stdin frames (type 0) on stdout, as the Engine API documents (dockerode sends them to stderr)', () => {
    const { stdout, stderr } = demux(Buffer.concat([frame(0, Buffer.from('in')), frame(1, Buffer.from('out'))]), [4]);
    expect(stdout.toString()).toBe('inout');
    expect(stderr.length).toBe(0);
  });

  it('hands on views of the chunks it was given, never copies of the output', () => {
    const out = randomBytes(200_000);
    const wire = Buffer.concat([frame(1, out.subarray(0, 100_000)), frame(2, out.subarray(100_000))]);
    const { stdout, stderr, views } = demux(wire, [65_536, 131_072]);
    expect(stdout.equals(out.subarray(0, 100_000))).toBe(true);
    expect(stderr.equals(out.subarray(100_000))).toBe(true);
    for (const v of views) expect(v.buffer).toBe(wire.buffer);
  });

  it('passes a stream that is not multiplexed (a TTY) on to stdout from the first bad header', () => {
    const text = Buffer.from('hello, this is a TTY stream\r\n');
    const { stdout, stderr } = demux(text, [3, 9]);
    expect(stdout.equals(text)).toBe(true);
    expect(stderr.length).toBe(0);
    const mixed = Buffer.concat([frame(2, Buffer.from('err')), Buffer.from('garbage: not a header')]);
    const m = demux(mixed, [5]);
    expect(m.stderr.toString()).toBe('err');
    expect(m.stdout.toString()).toBe('garbage: not a header');
  });
});
