/** The one duration syntax (shared/duration.ts): what every duration flag, config key and pipeline field reads. */
import { describe, expect, it } from 'vitest';
import { DurationSchema } from '../../shared/config.js';
import { durationFlag, durationWords, parseDuration } from '../../shared/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['2h', 7_200_000],
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['1.5s', 1_500],
    ['7d', 604_800_000],
    [' 10m ', 600_000],
    ['250', 250],
    ['0', 0],
  ])('reads %j as %d ms (a bare number is ms)', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 'soon', '10 minutes', '-5s', '5x', '1h30', 's', '1e3'])('refuses %j, saying what a duration is', (text) => {
    expect(() => parseDuration(text)).toThrow(`"${text}" is not a duration: use a number with a unit ms, s, m, h or d`);
  });

  it('DurationSchema (config keys, pipeline timeout) reads the same syntax', () => {
    expect(DurationSchema.parse('1h30m')).toBe(5_400_000);
    expect(DurationSchema.parse(1500)).toBe(1500);
    expect(DurationSchema.safeParse('1 hour').error?.issues[0].message).toContain('"1 hour" is not a duration');
  });
});

describe('durationFlag', () => {
  it('names the flag in the error', () => {
    expect(() => durationFlag('--grace', 'x')).toThrow('--grace "x": "x" is not a duration');
  });
  it('checks bounds in words a user can type back', () => {
    expect(() => durationFlag('--stall', '50', { min: 100 })).toThrow('--stall "50": must be at least 100ms');
    expect(() => durationFlag('--grace', '2h', { max: 3_600_000 })).toThrow('--grace "2h": must be at most 1h');
    expect(durationFlag('--grace', '10s', { max: 3_600_000 })).toBe(10_000);
  });
  it('durationWords reads back to the same ms', () => {
    for (const ms of [1, 999, 1000, 90_000, 5_400_000, 90_061_001]) expect(parseDuration(durationWords(ms))).toBe(ms);
  });
});
