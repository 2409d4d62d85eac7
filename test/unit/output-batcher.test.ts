import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutputBatcher, type Stream } from '../../agent/output-batcher.js';
import { MAX_LOG_EVENT_BYTES } from '../../shared/log-data.js';

/** A batch as the tests compare it: its stream and its bytes as latin1 (one character per byte, lossless). */
type Batch = [Stream, string];

function setup(intervalMs = 50, maxBytes = 64 * 1024) {
  const batches: Batch[] = [];
  const raw: [Stream, Buffer][] = [];
  const batcher = new OutputBatcher(
    (stream, parts) => {
      const data = Buffer.concat(parts);
      raw.push([stream, Buffer.from(data)]);
      batches.push([stream, data.toString('latin1')]);
    },
    intervalMs,
    maxBytes,
  );
  /** Every byte sent on `stream`, batches joined in order. */
  const bytesOf = (stream: Stream) => Buffer.concat(raw.filter(([s]) => s === stream).map(([, d]) => d));
  return { batches, raw, batcher, bytesOf };
}

/** Text as the batches show it: its UTF-8 bytes as latin1. */
const u = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
const b = (s: string) => Buffer.from(s, 'utf8');

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.clearAllTimers();
  vi.useRealTimers();
});

describe('OutputBatcher: time', () => {
  it('holds output until intervalMs has passed, then sends it as one batch', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', b('hello '));
    vi.advanceTimersByTime(10);
    batcher.write('stdout', b('world\n'));
    vi.advanceTimersByTime(39);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([['stdout', 'hello world\n']]);
  });

  it('measures the interval from the first pending write (later writes do not postpone it)', () => {
    const { batches, batcher } = setup(100);
    batcher.write('stdout', b('a'));
    for (let i = 0; i < 9; i++) {
      vi.advanceTimersByTime(10);
      batcher.write('stdout', b('a'));
    }
    // 90 ms after the first write; nothing yet, and one timer for all of it
    expect(batches).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(10);
    expect(batches).toEqual([['stdout', 'a'.repeat(10)]]);
  });

  it('starts a new interval for output written after a flush', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', b('one'));
    vi.advanceTimersByTime(50);
    batcher.write('stdout', b('two'));
    vi.advanceTimersByTime(49);
    expect(batches).toEqual([['stdout', 'one']]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([
      ['stdout', 'one'],
      ['stdout', 'two'],
    ]);
  });

  it('sends nothing when nothing was written', () => {
    const { batches } = setup(50);
    vi.advanceTimersByTime(1_000);
    expect(batches).toEqual([]);
  });

  it('uses 50 ms by default', () => {
    const batches: Batch[] = [];
    const batcher = new OutputBatcher((s, d) => batches.push([s, Buffer.concat(d).toString('latin1')]));
    batcher.write('stderr', b('x'));
    vi.advanceTimersByTime(49);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([['stderr', 'x']]);
  });
});

describe('OutputBatcher: size', () => {
  it('sends at once, without waiting for the timer, when a stream reaches maxBytes', () => {
    const { batches, batcher } = setup(1_000, 8);
    batcher.write('stdout', b('abcdefgh'));
    expect(batches).toEqual([['stdout', 'abcdefgh']]);
  });

  it('splits output larger than maxBytes into batches of maxBytes', () => {
    const { batches, batcher } = setup(1_000, 8);
    batcher.write('stdout', b('abcdefghijklmnopqrst'));
    expect(batches).toEqual([
      ['stdout', 'abcdefgh'],
      ['stdout', 'ijklmnop'],
      ['stdout', 'qrst'],
    ]);
  });

  it('sends when several small writes add up to maxBytes', () => {
    const { batches, batcher } = setup(1_000, 8);
    batcher.write('stdout', b('abcde'));
    expect(batches).toEqual([]);
    batcher.write('stdout', b('fghij'));
    expect(batches).toEqual([
      ['stdout', 'abcdefgh'],
      ['stdout', 'ij'],
    ]);
  });

  it('stays below maxBytes: one byte short waits for the timer', () => {
    const { batches, batcher } = setup(1_000, 8);
    batcher.write('stdout', b('abcdefg'));
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(batches).toEqual([['stdout', 'abcdefg']]);
  });

  it('a size flush of one stream leaves the other stream to its timer', () => {
    const { batches, batcher } = setup(100, 8);
    batcher.write('stderr', b('err'));
    batcher.write('stdout', b('0123456789'));
    expect(batches).toEqual([
      ['stdout', '01234567'],
      ['stdout', '89'],
    ]);
    vi.advanceTimersByTime(100);
    expect(batches.slice(2)).toEqual([['stderr', 'err']]);
  });

  // Regression: maxBytes once counted UTF-16 units, so 3-byte characters were sent at 3 × maxBytes.
  it('counts maxBytes in bytes: multi-byte output is sent once it reaches maxBytes bytes', () => {
    const { raw, batcher } = setup(1_000, 6);
    batcher.write('stdout', b('€€€')); // 9 bytes, 3 UTF-16 units
    expect(raw.length).toBeGreaterThan(0);
    for (const [, data] of raw) expect(data.length).toBeLessThanOrEqual(6);
  });

  it('cuts at maxBytes even inside a character: the joined batches are the bytes written', () => {
    const { raw, batcher, bytesOf } = setup(1_000, 5);
    batcher.write('stdout', b('aaaa😀bbbb'));
    batcher.end();
    expect(raw.map(([, d]) => d.length)).toEqual([5, 5, 2]);
    expect(bytesOf('stdout').toString('utf8')).toBe('aaaa😀bbbb');
  });

  it('never sends a batch above MAX_LOG_EVENT_BYTES (its base64 stays within the 1 MiB string limit)', () => {
    const { raw, batcher, bytesOf } = setup(1_000, 10 * 1024 * 1024);
    const big = randomBytes(2 * MAX_LOG_EVENT_BYTES + 10);
    batcher.write('stdout', big);
    expect(raw.map(([, d]) => d.length)).toEqual([MAX_LOG_EVENT_BYTES, MAX_LOG_EVENT_BYTES, 10]);
    expect(bytesOf('stdout').equals(big)).toBe(true);
    for (const [, d] of raw) expect(d.toString('base64').length).toBeLessThanOrEqual(1024 * 1024);
  });
});

describe('OutputBatcher: streams', () => {
  it('keeps stdout and stderr apart, one batch per stream', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', b('out1 '));
    batcher.write('stderr', b('err1 '));
    batcher.write('stdout', b('out2'));
    batcher.write('stderr', b('err2'));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([
      ['stdout', 'out1 out2'],
      ['stderr', 'err1 err2'],
    ]);
  });

  it('sends only the stream that has output', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stderr', b('only err'));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([['stderr', 'only err']]);
  });
});

describe('OutputBatcher: bytes are bytes', () => {
  it('sends a 3-byte character written in two chunks as its three bytes', () => {
    const { batches, batcher } = setup(50);
    const euro = b('€'); // e2 82 ac
    batcher.write('stdout', Buffer.concat([b('price: '), euro.subarray(0, 2)]));
    batcher.write('stdout', Buffer.concat([euro.subarray(2), b('5')]));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([['stdout', u('price: €5')]]);
  });

  it('sends an incomplete character at a timer flush as it is; the next batch carries the rest', () => {
    const { batches, batcher, bytesOf } = setup(50);
    const euro = b('€');
    batcher.write('stdout', Buffer.concat([b('a'), euro.subarray(0, 1)]));
    vi.advanceTimersByTime(50);
    batcher.write('stdout', euro.subarray(1));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([
      ['stdout', 'a\xe2'],
      ['stdout', '\x82\xac'],
    ]);
    expect(bytesOf('stdout').toString('utf8')).toBe('a€');
  });

  it('joins a 4-byte character written one byte at a time', () => {
    const { batches, batcher } = setup(50);
    for (const byte of b('😀')) batcher.write('stdout', Buffer.from([byte]));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([['stdout', u('😀')]]);
  });

  it('keeps each stream apart, so interleaved partial characters do not mix', () => {
    const { batches, batcher } = setup(50);
    const euro = b('€');
    const ae = b('ä'); // c3 a4
    batcher.write('stdout', euro.subarray(0, 1));
    batcher.write('stderr', ae.subarray(0, 1));
    batcher.write('stdout', euro.subarray(1));
    batcher.write('stderr', ae.subarray(1));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([
      ['stdout', u('€')],
      ['stderr', u('ä')],
    ]);
  });

  it('sends bytes that are not UTF-8 (0x80-0xff alone) unchanged, not as U+FFFD', () => {
    const { bytesOf, batcher } = setup(50);
    const invalid = Buffer.from([0x80, 0xbf, 0xc0, 0xc1, 0xf5, 0xfe, 0xff, 0xe2, 0x28, 0xa1, 0xed, 0xa0, 0x80]);
    batcher.write('stderr', invalid);
    batcher.end();
    expect(bytesOf('stderr').equals(invalid)).toBe(true);
  });

  it('sends NUL bytes unchanged', () => {
    const { bytesOf, batcher } = setup(50);
    batcher.write('stdout', Buffer.from([0, 0x61, 0, 0, 0x62, 0]));
    batcher.end();
    expect([...bytesOf('stdout')]).toEqual([0, 0x61, 0, 0, 0x62, 0]);
  });

  it('round-trips all 256 byte values exactly, through odd write and batch sizes and base64', () => {
    const { raw, batcher, bytesOf } = setup(1_000, 7);
    const all = Buffer.alloc(256 * 4);
    for (let i = 0; i < all.length; i++) all[i] = i % 256;
    for (let at = 0; at < all.length; at += 13) batcher.write('stdout', all.subarray(at, at + 13));
    batcher.end();
    expect(bytesOf('stdout').equals(all)).toBe(true);
    // what the agent sends is each batch in base64: decoded and joined, the same bytes
    const viaBase64 = Buffer.concat(raw.map(([, d]) => Buffer.from(d.toString('base64'), 'base64')));
    expect(viaBase64.equals(all)).toBe(true);
  });

  it('ignores empty writes (no empty batch, no timer)', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', Buffer.alloc(0));
    expect(vi.getTimerCount()).toBe(0);
    batcher.end();
    expect(batches).toEqual([]);
  });
});

describe('OutputBatcher: end()', () => {
  it('sends everything pending on both streams at once', () => {
    const { batches, batcher } = setup(10_000);
    batcher.write('stdout', b('last words'));
    batcher.write('stderr', b('last error'));
    batcher.end();
    expect(batches).toEqual([
      ['stdout', 'last words'],
      ['stderr', 'last error'],
    ]);
  });

  it('cancels the timer, so nothing is sent twice afterwards', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', b('x'));
    batcher.end();
    vi.advanceTimersByTime(1_000);
    expect(batches).toEqual([['stdout', 'x']]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sends an incomplete trailing character as its bytes, not as a replacement character', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', Buffer.concat([b('abc'), b('€').subarray(0, 2)]));
    batcher.end();
    expect(batches).toEqual([['stdout', 'abc\xe2\x82']]);
  });

  it('sends nothing when nothing is pending', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', b('x'));
    vi.advanceTimersByTime(50);
    batcher.end();
    expect(batches).toEqual([['stdout', 'x']]);
  });

  it('flush() sends pending output now and clears the timer', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stderr', b('now'));
    batcher.flush();
    expect(batches).toEqual([['stderr', 'now']]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
