/**
 * agent/start-compiler.ts relies on V8 reading `--turbofan` each time it decides to optimise a
 * function, so that turning it off after the process started holds the optimising compiler, and
 * turning it on again lets it work as before. Checked in a fresh process with `--trace-opt`
 * (V8 prints "completed optimizing <JSFunction NAME …>" for each function it optimised): a hot
 * function is not optimised while held, and is once released.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const script = `
  const { holdOptimisingCompiler, releaseOptimisingCompiler } = await import(${JSON.stringify(`${ROOT}dist/agent/start-compiler.js`)});
  const { setTimeout: sleep } = await import('node:timers/promises');
  function hotWhileHeld(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }
  function hotOnceReleased(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 5) % 11; return s; }
  // Calls enough for V8 to optimise a small function many times over, with pauses for its
  // concurrent compiler to finish and install the code.
  const heat = async (f) => { for (let r = 0; r < 20; r++) { for (let k = 0; k < 200; k++) f(1_000); await sleep(5); } };
  holdOptimisingCompiler();
  await heat(hotWhileHeld);
  console.log('--- released');
  releaseOptimisingCompiler();
  await heat(hotOnceReleased);`;

describe("holding V8's optimising compiler until an agent has work", () => {
  it('optimises no function while held, and optimises hot ones again once released', async () => {
    const r = await promisify(execFile)(process.execPath, ['--trace-opt', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const [held, released] = r.stdout.split('--- released');
    expect(released).toBeDefined();
    expect(held).not.toMatch(/completed optimizing/);
    expect(released).toMatch(/completed optimizing[^\n]*hotOnceReleased/);
  });

  it('leaves a --turbofan or --no-opt given on the command line alone', async () => {
    const r = await promisify(execFile)(process.execPath, ['--trace-opt', '--turbofan', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stdout.split('--- released')[0]).toMatch(/completed optimizing[^\n]*hotWhileHeld/);
  });
});
