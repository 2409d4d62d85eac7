import { describe, expect, it } from 'vitest';
import { decode } from '../../shared/codec.js';
import { RequestSchema } from '../../shared/schemas/index.js';

describe('decode errors stay short whatever the sender chose', () => {
  it('clips a 9,000-character record key in the error path (it is logged and echoed in replies)', () => {
    const key = 'A'.repeat(9000);
    const r = decode(
      RequestSchema,
      JSON.stringify({ v: 1, id: 'x', op: 'submit', spec: { kind: 'exec', argv: ['true'], env: { [`${key}=`]: 'x' } }, requirements: {} }),
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.length).toBeLessThanOrEqual(500);
    expect(r.error).toMatch(/^spec\.env\.A{63}…/);
  });

  it('clips a parse error of a huge non-JSON payload', () => {
    const r = decode(RequestSchema, `{${'x'.repeat(100_000)}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.length).toBeLessThanOrEqual(500);
  });
});
