/**
 * Sizes and durations as users write them (`512m`, `1.5GiB`, `90s`) and as cutter prints them,
 * and the config schemas that accept them.
 */
import { describe, expect, it } from 'vitest';
import { SizeSchema, DurationSchema } from '../../shared/config.js';
import { formatBytes, formatDuration, parseBytes } from '../../shared/units.js';
import { KiB, MiB, GiB, TiB, thrown } from './units-helpers.js';

describe('parseBytes', () => {
  it.each([
    ['24g', 24 * GiB],
    ['24G', 24 * GiB],
    ['512m', 512 * MiB],
    ['512M', 512 * MiB],
    ['1.5g', 1.5 * GiB],
    ['1024', 1024],
    ['0', 0],
    ['100b', 100],
    ['4k', 4 * KiB],
    ['2t', 2 * TiB],
    ['10GiB', 10 * GiB],
    ['10gib', 10 * GiB],
    ['10GB', 10 * GiB],
    ['64KiB', 64 * KiB],
    ['256MB', 256 * MiB],
    [' 8g ', 8 * GiB],
    ['8 g', 8 * GiB],
    ['0.5k', 512],
    ['1.9', 1],
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it('always returns an integer', () => {
    expect(Number.isInteger(parseBytes('1.3k'))).toBe(true);
    expect(parseBytes('1.3k')).toBe(Math.floor(1.3 * 1024));
  });

  it.each(['', 'lots', '-1', '-1g', '1x', '1gg', 'g', '1,5g', '1e9', '.5g', '12 gigabytes', '0x10', 'Infinity', 'NaN'])(
    'rejects %j with INVALID_SIZE',
    (text) => {
      const err = thrown(() => parseBytes(text));
      expect(err.code).toBe('INVALID_SIZE');
      expect(err.message).toContain(`"${text}"`);
    },
  );

  it('rejects sizes beyond Number.MAX_SAFE_INTEGER', () => {
    const err = thrown(() => parseBytes('99999999t'));
    expect(err.code).toBe('INVALID_SIZE');
    expect(err.message).toContain('too large');
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [900, '900 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [512 * MiB, '512.0 MiB'],
    [24 * GiB, '24.0 GiB'],
    [Math.round(23.4 * GiB), '23.4 GiB'],
    [3 * TiB, '3.0 TiB'],
    [2048 * TiB, '2048.0 TiB'],
    [-2048, '-2.0 KiB'],
  ])('%d → %j', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('round-trips with parseBytes for whole units', () => {
    for (const s of ['512m', '24g', '3t', '4k']) expect(parseBytes(formatBytes(parseBytes(s)))).toBe(parseBytes(s));
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [850, '850 ms'],
    [999.6, '1000 ms'],
    [1000, '1.0 s'],
    [3200, '3.2 s'],
    [59_949, '59.9 s'],
    [60_000, '1m 00s'],
    [245_000, '4m 05s'],
    [3_599_000, '59m 59s'],
    [3_600_000, '1h 00m'],
    [7_380_000, '2h 03m'],
  ])('%d ms → %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('SizeSchema', () => {
  it('accepts numbers and size strings, rejects other text with the parseBytes message', () => {
    expect(SizeSchema.parse(42)).toBe(42);
    expect(SizeSchema.parse('2g')).toBe(2 * GiB);
    const r = SizeSchema.safeParse('lots');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].message).toContain('"lots" is not a size');
    expect(SizeSchema.safeParse(-1).success).toBe(false);
  });
});

describe('DurationSchema', () => {
  it.each([
    ['250', 250],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['10m', 600_000],
    ['2h', 7_200_000],
    [0, 0],
  ] as const)('reads %j as %d ms', (text, ms) => {
    expect(DurationSchema.parse(text)).toBe(ms);
  });
  it.each(['soon', '10 minutes', '-5s', '5w'])('rejects %j naming the value', (text) => {
    const r = DurationSchema.safeParse(text);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toContain(`"${text}" is not a duration`);
  });
});
