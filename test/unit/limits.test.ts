/**
 * shared/limits.ts `scanJson`: agrees with JSON.parse on what it accepts (any JSON within limits
 * passes), refuses deep, wide and long input before any parsing, never throws, runs in linear time.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode } from '../../shared/codec.js';
import { type JsonLimits, LIMITS, limitsForTopic, scanJson } from '../../shared/limits.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';

const loose: JsonLimits = { maxBytes: 1 << 30, maxDepth: 1_000, maxArray: 1 << 30, maxString: 1 << 30, maxKeys: 1 << 30 };

/** Depth, widest array, most keys and longest string (UTF-8 bytes of the JSON text) of a parsed value. */
function measure(v: unknown, depth = 0): { depth: number; array: number; keys: number; str: number } {
  const str = (s: string) => Buffer.byteLength(JSON.stringify(s)) - 2;
  if (typeof v === 'string') return { depth, array: 0, keys: 0, str: str(v) };
  if (v === null || typeof v !== 'object') return { depth, array: 0, keys: 0, str: 0 };
  const entries = Array.isArray(v) ? v.map((x) => [undefined, x] as const) : Object.entries(v);
  const m = { depth: depth + 1, array: Array.isArray(v) ? v.length : 0, keys: Array.isArray(v) ? 0 : entries.length, str: 0 };
  for (const [k, x] of entries) {
    const c = measure(x, depth + 1);
    m.depth = Math.max(m.depth, c.depth);
    m.array = Math.max(m.array, c.array);
    m.keys = Math.max(m.keys, c.keys);
    m.str = Math.max(m.str, c.str, k === undefined ? 0 : str(k));
  }
  return m;
}

describe('scanJson', () => {
  it('accepts every JSON text whose measures are within the limits, refuses it when one is crossed', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.nat(8), fc.nat(8), fc.nat(40), fc.nat(8), (v, d, a, s, k) => {
        const text = JSON.stringify(v);
        const m = measure(v);
        // maxArray and maxKeys are at least 1 (the scanner counts members by commas).
        const limits = { maxBytes: 1 << 20, maxDepth: d, maxArray: a + 1, maxString: s, maxKeys: k + 1 };
        const within = m.depth <= d && m.array <= a + 1 && m.str <= s && m.keys <= k + 1;
        expect(scanJson(text, limits).ok).toBe(within);
        expect(scanJson(text, loose).ok).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it('never throws on arbitrary bytes and strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 300, unit: 'binary' })), (b) => {
        const r = scanJson(b, LIMITS.nodePorts);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 5_000 },
    );
  });

  it.each([10, 33, 1_000, 100_000, 1_000_000])('refuses %i levels of nesting over a limit of 32, naming depth and where', (n) => {
    const r = scanJson(`${'['.repeat(n)}${']'.repeat(n)}`, LIMITS.requests);
    if (n <= 32) expect(r.ok).toBe(true);
    else expect(!r.ok && r.error).toMatch(/^nesting depth 33 > 32 at \$\[0\]\[0\].*\(byte 32\)$/);
  });

  it('refuses 10^5 elements and 10^4 keys, and strings over the limit', () => {
    const wide = JSON.stringify(Array.from({ length: 100_000 }, () => 0));
    expect(!scanJson(wide, LIMITS.requests).ok && scanJson(wide, LIMITS.requests)).toMatchObject({
      error: expect.stringMatching(/^array of more than 10000 elements at \$\[10000\]/),
    });
    const keys = JSON.stringify(Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])));
    expect(scanJson(keys, LIMITS.requests)).toMatchObject({ ok: false, error: expect.stringMatching(/^object of more than 1024 keys/) });
    const long = JSON.stringify({ v: 1, spec: { image: 'x'.repeat(LIMITS.requests.maxString + 1) } });
    expect(scanJson(long, LIMITS.requests)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^string of 1048577 bytes > 1048576 at \$\.spec\.image /),
    });
    // Commas, brackets and escaped quotes inside strings count for nothing.
    expect(scanJson(JSON.stringify({ a: '[[[[[[,,,,,,\\"{{{{' }), { ...LIMITS.nodePorts, maxDepth: 1, maxKeys: 1 }).ok).toBe(true);
  });

  it('takes linear time, and refuses 1,000,000 brackets at once (JSON.parse takes 0.6 s to build them)', () => {
    const deep = Buffer.from(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`);
    const big = Buffer.from(JSON.stringify({ data: Array.from({ length: 50_000 }, (_, i) => `s${i}`) }));
    const time = (b: Buffer, l: JsonLimits) => {
      const t0 = performance.now();
      scanJson(b, l);
      return performance.now() - t0;
    };
    expect(time(deep, LIMITS.requests)).toBeLessThan(20);
    for (let i = 0; i < 3; i++) time(big, loose); // warm up the JIT
    const small = time(big.subarray(0, big.length / 10), loose);
    expect(time(big, loose)).toBeLessThan(Math.max(50, small * 30));
    // A string of escapes: each backslash must not restart a search for the closing quote.
    const escaped = Buffer.from(JSON.stringify({ d: '\n'.repeat(400_000) }));
    for (let i = 0; i < 3; i++) time(escaped, loose);
    const fewer = time(escaped.subarray(0, escaped.length / 10), loose);
    expect(time(escaped, loose)).toBeLessThan(Math.max(50, fewer * 30));
  });

  it('maps topics of any prefix to their kind, and decode uses the limits it is given', () => {
    expect(limitsForTopic('cutter/v1/nodes/a/status')).toBe(LIMITS.nodeStatus);
    expect(limitsForTopic('home/x/v1/nodes/a/ports/t1')).toBe(LIMITS.nodePorts);
    expect(limitsForTopic('elsewhere/status')).toBe(LIMITS.default);
    const deep = `{"v":1,"x":${'['.repeat(20)}${']'.repeat(20)}}`;
    expect(decode(NodeStatusSchema, deep, LIMITS.nodeStatus)).toEqual({
      ok: false,
      error: expect.stringMatching(/^nesting depth 17 > 16/),
    });
  });
});
