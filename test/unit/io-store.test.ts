/**
 * The node's store of task inputs and outputs (agent/io/store.ts): paths from the network never
 * leave their directory — a manifest path that is absolute or not normalised fails the staging,
 * an output path with `..`, a symbolic link, or a directory reached through a link is refused,
 * links are never listed — and only contents a manifest named enter the cache.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IoStore } from '../../agent/io/store.js';
import { tempDir } from '../harness.js';

const dir = tempDir('cutter-io-store-');
const outside = tempDir('cutter-io-outside-');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const never = () => false;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

/** Puts `content` into the cache as a finished transfer would. */
async function cache(store: IoStore, task: string, content: string) {
  const path = await store.inputPath(task, 1, sha(content));
  writeFileSync(path, content);
}

describe('IoStore', () => {
  const store = new IoStore(dir, 'nb', 1024);

  it('builds an input from the cache and creates the outputs', async () => {
    store.expect('ok', 1, 1, 1, true);
    const files = [{ path: 'a/b.txt', size: 5, sha256: sha('hello') }];
    expect(await store.diff('ok', 1, 0, 'x'.repeat(32), files)).toEqual({ need: [0], haveBytes: 0 });
    await cache(store, 'ok', 'hello');
    const waited = store.wait('ok', 1, never, 60_000);
    expect(await store.ready('ok', 1, [{ files: 1, bytes: 5 }])).toEqual({ files: 1, bytes: 5 });
    const dirs = await waited;
    expect(readFileSync(join(dirs!.inputs[0], 'a', 'b.txt'), 'utf8')).toBe('hello');
    // The same content again: already in the cache.
    store.expect('ok', 2, 1, 0, true);
    expect(await store.diff('ok', 2, 0, 'y'.repeat(32), files)).toEqual({ need: [], haveBytes: 5 });
  });

  it('fails the staging of a manifest path that is absolute, naming it', async () => {
    store.expect('abs', 1, 1, 0, false);
    await store.diff('abs', 1, 0, 'x'.repeat(32), [{ path: '/etc/passwd', size: 2, sha256: sha('hi') }]);
    await cache(store, 'abs', 'hi');
    const waited = store.wait('abs', 1, never, 60_000);
    await expect(store.ready('abs', 1, [{ files: 1, bytes: 2 }])).rejects.toThrow(/"\/etc\/passwd" leaves its directory/);
    await expect(waited).rejects.toMatchObject({ code: 'STAGING_FAILED' });
  });

  it('refuses content no manifest named, and counts that differ from the manifest', async () => {
    store.expect('stuff', 1, 1, 0, false);
    await expect(store.inputPath('stuff', 1, sha('other'))).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(store.inputPath('ghost', 1, sha('other'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await store.diff('stuff', 1, 0, 'x'.repeat(32), [{ path: 'f', size: 2, sha256: sha('hi') }]);
    await expect(store.ready('stuff', 1, [{ files: 2, bytes: 4 }])).rejects.toThrow(/name 1 files/);
    await expect(store.diff('stuff', 1, 0, 'y'.repeat(32), [{ path: 'big', size: 4096, sha256: sha('x') }])).rejects.toThrow(
      /limit of 1024/,
    );
  });

  it('never lists nor sends an output that leaves its directory', async () => {
    store.expect('out', 1, 0, 1, false);
    const dirs = (await store.wait('out', 1, never, 60_000))!;
    const out = dirs.outputs[0];
    writeFileSync(join(outside, 'secret'), 'secret');
    mkdirSync(join(outside, 'dir'));
    writeFileSync(join(outside, 'dir', 'inner'), 'inner');
    writeFileSync(join(out, 'result'), 'fine');
    symlinkSync(join(outside, 'secret'), join(out, 'leak'));
    symlinkSync(join(outside, 'dir'), join(out, 'linked'));
    await store.ended('out', 1, true);
    const { files } = await store.outputManifest('out', 1, 0, 0, 100, 1 << 20);
    expect(files.map((f) => f.path)).toEqual(['result']);
    expect(await store.outputPath('out', 1, 0, 'result')).toBe(join(out, 'result'));
    await expect(store.outputPath('out', 1, 0, 'leak')).rejects.toThrow(/not a regular file/);
    await expect(store.outputPath('out', 1, 0, 'linked/inner')).rejects.toThrow(/leaves its directory through a symbolic link/);
    await expect(store.outputPath('out', 1, 0, '../../../../etc/passwd')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await store.done('out', 1);
    await expect(store.outputManifest('out', 1, 0, 0, 100, 1 << 20)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('IoStore cleanup', () => {
  it('deletes an attempt collected before the runner let go of it once it does', async () => {
    const store = new IoStore(tempDir('cutter-io-clean-'), 'nb', 1024);
    store.expect('early', 1, 0, 1, false);
    const dirs = (await store.wait('early', 1, never, 60_000))!;
    await store.done('early', 1);
    expect(existsSync(dirs.outputs[0])).toBe(true);
    await store.ended('early', 1, true);
    expect(existsSync(dirs.outputs[0])).toBe(false);
  });
});

describe('volume grants (node-to-node copies)', () => {
  it('cover only the granted directory of the granted volume, for the granted agent', async () => {
    const { VolumeStore } = await import('../../agent/volumes/store.js');
    const v = new VolumeStore(tempDir('cutter-grants-'), 'na');
    v.grant('nb', 'data', 'set', 60_000);
    expect(v.granted('nb', 'data', 'set/a/b')).toBe(true);
    expect(v.granted('nb', 'data', 'set')).toBe(true);
    expect(v.granted('nb', 'data', 'settings')).toBe(false);
    expect(v.granted('nb', 'data', 'set/../secret')).toBe(false);
    expect(v.granted('nb', 'other', 'set/a')).toBe(false);
    expect(v.granted('nc', 'data', 'set/a')).toBe(false);
  });
});
