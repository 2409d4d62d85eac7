/**
 * agent/idle-gc.ts: a full GC every period while the agent is idle, none while a task runs, and
 * none that raises the process's peak RSS. Checked in a fresh process (the test runner's heap is
 * not an agent's): garbage promoted to the old generation stays counted in the heap while "busy"
 * and is gone within a period once "idle"; the peak RSS (VmHWM, reset through
 * /proc/self/clear_refs) stays within 2 MiB of the RSS before; the global gets no `gc`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const script = `
  import { readFileSync, writeFileSync } from 'node:fs';
  import { setTimeout as sleep } from 'node:timers/promises';
  const { collectWhileIdle } = await import(${JSON.stringify(`${ROOT}dist/agent/idle-gc.js`)});
  const status = (k) => Number(readFileSync('/proc/self/status', 'utf8').match(new RegExp(k + ':\\\\s+(\\\\d+)'))[1]) * 1024;
  // Objects that live long enough to be promoted, then nine in ten dropped: old-generation garbage.
  let kept = [];
  for (let i = 0; i < 600_000; i++) kept.push({ i, s: 'x' + i });
  kept = kept.filter((_, i) => i % 10 === 0);
  await sleep(50);
  let idle = false;
  const stop = collectWhileIdle(() => idle, 100);
  const before = process.memoryUsage().heapUsed;
  await sleep(400);
  const busy = process.memoryUsage().heapUsed;
  writeFileSync('/proc/self/clear_refs', '5');
  const rssBefore = status('VmRSS');
  idle = true;
  await sleep(400);
  const after = process.memoryUsage().heapUsed;
  const peak = status('VmHWM');
  stop();
  console.log(JSON.stringify({ before, busy, after, rssBefore, peak, kept: kept.length, gcGlobal: typeof globalThis.gc }));`;

describe("an idle agent's garbage collections", () => {
  it('collect on their period while idle and not while a task runs, without raising the peak RSS', async () => {
    const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    const { before, busy, after, rssBefore, peak, kept, gcGlobal } = JSON.parse(r.stdout) as Record<string, number | string>;
    expect(kept).toBe(60_000);
    expect(gcGlobal).toBe('undefined');
    expect(busy as number).toBeGreaterThan((before as number) * 0.8);
    expect(after as number).toBeLessThan((before as number) / 2);
    expect((peak as number) - (rssBefore as number)).toBeLessThan(2 * 1024 * 1024);
  });
});
