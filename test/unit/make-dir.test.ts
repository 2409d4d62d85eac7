/**
 * shared/make-dir.ts: `mkdir -p` that ends. Node 20's recursive mkdir never returns for a path under
 * /proc (a parent that exists but cannot hold children); ours throws that mkdir's ENOENT.
 */
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDir, makeDirSync } from '../../shared/make-dir.js';

describe('makeDirSync / makeDir', () => {
  it('creates missing parents with the mode, and takes an existing directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cutter-mkdir-'));
    makeDirSync(join(root, 'a', 'b', 'c'), 0o700);
    expect(statSync(join(root, 'a', 'b', 'c')).isDirectory()).toBe(true);
    expect(statSync(join(root, 'a', 'b')).mode & 0o777).toBe(0o700);
    makeDirSync(join(root, 'a', 'b', 'c'));
    await makeDir(join(root, 'x', 'y'));
    expect(statSync(join(root, 'x', 'y')).isDirectory()).toBe(true);
  });

  it('throws ENOTDIR when a component is a file', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cutter-mkdir-'));
    writeFileSync(join(root, 'f'), '');
    expect(() => makeDirSync(join(root, 'f', 'd'))).toThrow(/ENOTDIR/);
    await expect(makeDir(join(root, 'f', 'd'))).rejects.toThrow(/ENOTDIR/);
  });

  it.skipIf(process.platform !== 'linux')("throws ENOENT under /proc (where Node 20's own recursive mkdir never returns)", async () => {
    expect(() => makeDirSync('/proc/cutter-nope/data')).toThrow(/ENOENT/);
    await expect(makeDir('/proc/cutter-nope')).rejects.toThrow(/ENOENT/);
  });
});
