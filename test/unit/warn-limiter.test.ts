/** shared/warn-limiter.ts: a flood of one kind of warning costs one line per interval plus one summary with the count. */
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../shared/logger.js';
import { WarnLimiter, warnCounts } from '../../shared/warn-limiter.js';

function fakeLog(): { log: Logger; lines: [Record<string, unknown>, string][] } {
  const lines: [Record<string, unknown>, string][] = [];
  return { log: { warn: (fields: Record<string, unknown>, msg: string) => lines.push([fields, msg]) } as unknown as Logger, lines };
}

describe('WarnLimiter', () => {
  it('logs the first of a kind at once, counts the rest, then one summary line with suppressed: n', () => {
    const { log, lines } = fakeLog();
    const w = new WarnLimiter(log, 10_000);
    const before = warnCounts.get('invalid-message') ?? 0;
    for (let i = 0; i < 10_000; i++) w.warn('invalid-message', { topic: `t${i}` }, 'dropped invalid input', 1_000 + i);
    w.warn('invalid-request', { id: 'x' }, 'other kind', 1_000);
    expect(lines).toEqual([
      [{ kind: 'invalid-message', topic: 't0' }, 'dropped invalid input'],
      [{ kind: 'invalid-request', id: 'x' }, 'other kind'],
    ]);
    w.flush(12_000);
    expect(lines[2]).toEqual([{ kind: 'invalid-message', topic: 't9999', suppressed: 9_999 }, 'dropped invalid input (and 9999 more)']);
    w.warn('invalid-message', { topic: 'next' }, 'dropped invalid input', 12_001);
    expect(lines).toHaveLength(4);
    w.close();
    expect(lines).toHaveLength(4); // nothing suppressed since: no summary
    expect((warnCounts.get('invalid-message') ?? 0) - before).toBe(10_001);
  });
});
