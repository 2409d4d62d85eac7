/**
 * agent/young-generation.ts relies on V8 reading `--semi-space-growth-factor` at each growth of
 * the new space, so that setting it after start holds the young generation during the agent's
 * start-up burst. Checked in a fresh process (the test runner's heap has grown already): a burst
 * of short-lived and surviving objects leaves the new space at about its first size while held,
 * and grows it several times over once released, as before.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const script = `
  import { getHeapSpaceStatistics } from 'node:v8';
  const { holdYoungGeneration, releaseYoungGeneration } = await import(${JSON.stringify(`${ROOT}dist/agent/young-generation.js`)});
  const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
  const kept = [];
  // Like a start: many objects, a part of them kept (modules, schemas), the rest garbage.
  const burst = () => { for (let i = 0; i < 400_000; i++) { const o = { i, s: 'x' + i }; if (i % 4 === 0) kept.push(o); } };
  const first = newSpace();
  holdYoungGeneration();
  burst();
  burst();
  const held = newSpace();
  releaseYoungGeneration();
  burst();
  burst();
  console.log(JSON.stringify({ first, held, released: newSpace() }));`;

describe('holding the young generation during an agent start', () => {
  it('keeps the new space at about its first size while held, and lets it grow again once released', async () => {
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    const { first, held, released } = JSON.parse(r.stdout) as { first: number; held: number; released: number };
    // Held: at most the first scavenge's second semi-space (1 → 2 MiB on Node 20); released: 16 MiB and more.
    expect(held).toBeLessThanOrEqual(2 * first);
    expect(released).toBeGreaterThanOrEqual(4 * held);
  });
});
