import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutputBatcher, type Stream } from '../../agent/output-batcher.js';

type Batch = [Stream, string];

function setup(intervalMs = 50, maxBytes = 64 * 1024) {
  const batches: Batch[] = [];
  const batcher = new OutputBatcher((stream, data) => batches.push([stream, data]), intervalMs, maxBytes);
  return { batches, batcher };
}

const b = (s: string) => Buffer.from(s, 'utf8');

/** True when `s` survives a UTF-8 round trip (no lone surrogates, so no character was split). */
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8') === s;

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
    const batcher = new OutputBatcher((s, d) => batches.push([s, d]));
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
    const { batches, batcher } = setup(1_000, 6);
    batcher.write('stdout', b('€€€')); // 9 bytes, 3 UTF-16 units
    expect(batches.length).toBeGreaterThan(0);
    for (const [, data] of batches) expect(Buffer.byteLength(data)).toBeLessThanOrEqual(6);
  });

  // Regression test for a bug found in review (fixed).
  it('never splits a character beyond U+FFFF at the maxBytes boundary', () => {
    const { batches, batcher } = setup(1_000, 5);
    batcher.write('stdout', b('aaaa😀bbbb'));
    batcher.end();
    expect(batches.map(([, d]) => d).join('')).toBe('aaaa😀bbbb');
    for (const [, data] of batches) expect(wellFormed(data)).toBe(true);
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

describe('OutputBatcher: UTF-8', () => {
  it('does not split a 3-byte character written in two chunks', () => {
    const { batches, batcher } = setup(50);
    const euro = b('€'); // e2 82 ac
    batcher.write('stdout', Buffer.concat([b('price: '), euro.subarray(0, 2)]));
    batcher.write('stdout', Buffer.concat([euro.subarray(2), b('5')]));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([['stdout', 'price: €5']]);
  });

  it('holds back an incomplete character across a timer flush and completes it in the next batch', () => {
    const { batches, batcher } = setup(50);
    const euro = b('€');
    batcher.write('stdout', Buffer.concat([b('a'), euro.subarray(0, 1)]));
    vi.advanceTimersByTime(50);
    batcher.write('stdout', euro.subarray(1));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([
      ['stdout', 'a'],
      ['stdout', '€'],
    ]);
    expect(batches.every(([, d]) => !d.includes('\uFFFD'))).toBe(true);
  });

  it('does not split a 4-byte character written one byte at a time', () => {
    const { batches, batcher } = setup(50);
    for (const byte of b('😀')) batcher.write('stdout', Buffer.from([byte]));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([['stdout', '😀']]);
  });

  it('decodes each stream separately, so interleaved partial characters do not mix', () => {
    const { batches, batcher } = setup(50);
    const euro = b('€');
    const ae = b('ä'); // c3 a4
    batcher.write('stdout', euro.subarray(0, 1));
    batcher.write('stderr', ae.subarray(0, 1));
    batcher.write('stdout', euro.subarray(1));
    batcher.write('stderr', ae.subarray(1));
    vi.advanceTimersByTime(50);
    expect(batches).toEqual([
      ['stdout', '€'],
      ['stderr', 'ä'],
    ]);
  });

  it('does not split a character when a size flush happens mid-character', () => {
    const { batches, batcher } = setup(1_000, 4);
    const euro = b('€');
    batcher.write('stdout', Buffer.concat([b('abcd'), euro.subarray(0, 2)]));
    batcher.write('stdout', Buffer.concat([euro.subarray(2), b('efg')]));
    batcher.end();
    expect(batches.map(([, d]) => d).join('')).toBe('abcd€efg');
    expect(batches.every(([, d]) => !d.includes('\uFFFD'))).toBe(true);
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

  it('sends an incomplete trailing character as a replacement character rather than dropping the output', () => {
    const { batches, batcher } = setup(50);
    batcher.write('stdout', Buffer.concat([b('abc'), b('€').subarray(0, 2)]));
    batcher.end();
    expect(batches).toEqual([['stdout', 'abc\uFFFD']]);
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
