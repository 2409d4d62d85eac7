/** The one progress bar (cli/progress.ts) and the colour rule (cli/tty.ts). */
import { describe, expect, it } from 'vitest';
import { progressLine } from '../../cli/progress.js';
import { colorAllowed } from '../../cli/tty.js';

describe('progressLine', () => {
  it('shows percent, a bar, bytes in binary units, rate and time left', () => {
    const line = progressLine('llama3:8b', 2 * 1024 ** 3, 4 * 1024 ** 3, 32 * 1024 ** 2);
    expect(line).toBe('llama3:8b  50% [##############..............] 2.0 GiB / 4.0 GiB  32.0 MiB/s  1m 04s left');
  });
  it('shows only the bytes when the total is unknown, and no time left when done', () => {
    expect(progressLine('x', 1536, 0)).toBe('x  1.5 KiB');
    expect(progressLine('x', 10, 10, 5)).toBe('x 100% [############################] 10 B / 10 B  5 B/s');
  });
});

describe('colorAllowed', () => {
  const tty = { isTTY: true } as NodeJS.WriteStream;
  const pipe = { isTTY: false } as unknown as NodeJS.WriteStream;
  it('colour only on a terminal, never with NO_COLOR set and not empty, nor on TERM=dumb', () => {
    expect(colorAllowed(tty, {})).toBe(true);
    expect(colorAllowed(pipe, {})).toBe(false);
    expect(colorAllowed(tty, { NO_COLOR: '1' })).toBe(false);
    expect(colorAllowed(tty, { NO_COLOR: '' })).toBe(true);
    expect(colorAllowed(tty, { TERM: 'dumb' })).toBe(false);
  });
});
