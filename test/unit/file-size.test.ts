/**
 * Small files with one job each: no TypeScript source of the project (tests, bench and scripts
 * included) is longer than 400 lines. A file that grows past it is split by concern.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const DIRS = ['agent', 'broker', 'bench', 'cli', 'controller', 'scripts', 'shared', 'test'];
const MAX_LINES = 400;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

it(`no source file is over ${MAX_LINES} lines`, () => {
  const long = DIRS.flatMap((d) => sources(join(ROOT, d)))
    .map((path) => ({ path: relative(ROOT, path), lines: readFileSync(path, 'utf8').split('\n').length - 1 }))
    .filter((f) => f.lines > MAX_LINES);
  expect(long).toEqual([]);
});
