/**
 * The daemons do not depend on the CLI: no module of agent/, broker/, controller/ or shared/
 * imports from cli/ (what both sides use lives in shared/, e.g. shared/transfer/ for the file
 * transfer client an agent also uses to pull from another node). An import that crosses is moved
 * to shared/.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../harness.js';

const DAEMON_DIRS = ['agent', 'broker', 'controller', 'shared'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

it('no module of the daemons or shared/ imports from cli/', () => {
  const crossing = DAEMON_DIRS.flatMap((d) => sources(join(ROOT, d))).flatMap((path) =>
    [...readFileSync(path, 'utf8').matchAll(/^\s*(?:import|export)(?:[^;]*?from)?\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gms)]
      .map((m) => m[1] ?? m[2])
      .filter((spec) => spec.startsWith('.') && relative(ROOT, join(path, '..', spec)).startsWith('cli/'))
      .map((spec) => `${relative(ROOT, path)} → ${spec}`),
  );
  expect(crossing).toEqual([]);
});
