/** Pure parts of file transfer, image sync and pipelines: frames, path confinement, part files, tar manifests, pipeline validation and templating. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathPolicy } from '../../agent/files/paths.js';
import { imagesInTar } from '../../cli/image-tar.js';
import { outputOf, substitute } from '../../cli/pipeline-runner.js';
import {
  FRAME_HEADER_BYTES,
  MAX_CHUNK_BYTES,
  PipelineSchema,
  decodeFrame,
  encodeFrame,
  type TaskEvent,
} from '../../shared/schemas/index.js';
import { sha256File } from '../../shared/transfer/hash.js';
import { PartFile } from '../../shared/transfer/part-file.js';
import { tempDir } from '../harness.js';

const xfer = '0123456789abcdef0123456789abcdef';

describe('chunk frames', () => {
  it('round-trips transfer id, offset and data', () => {
    const f = decodeFrame(encodeFrame(xfer, 5_000_000_123, Buffer.from('hello')));
    expect(f).toEqual({ xfer, offset: 5_000_000_123, data: Buffer.from('hello') });
  });
  it('rejects what is not a version-1 frame of bounded size', () => {
    expect(decodeFrame(Buffer.alloc(3))).toBeNull();
    const v2 = encodeFrame(xfer, 0, Buffer.from('x'));
    v2[0] = 2;
    expect(decodeFrame(v2)).toBeNull();
    expect(decodeFrame(Buffer.alloc(FRAME_HEADER_BYTES + MAX_CHUNK_BYTES + 1, 1))).toBeNull();
    const huge = encodeFrame(xfer, 0, Buffer.alloc(0));
    huge.writeBigUInt64BE(2n ** 63n, 17);
    expect(decodeFrame(huge)).toBeNull();
  });
});

describe('PathPolicy', () => {
  const root = tempDir('cutter-paths-');
  const allowed = join(root, 'allowed');
  const outside = join(root, 'outside');
  mkdirSync(join(allowed, 'sub'), { recursive: true });
  mkdirSync(join(allowed, 'private'));
  mkdirSync(outside);
  writeFileSync(join(allowed, 'a.txt'), 'a');
  writeFileSync(join(outside, 'secret'), 's');
  symlinkSync(outside, join(allowed, 'out-link'));
  symlinkSync(join(allowed, 'a.txt'), join(allowed, 'in-link'));
  const policy = new PathPolicy([allowed], [join(allowed, 'private')]);

  it('allows files inside, relative to the first allowed directory or absolute, through links that stay inside', async () => {
    expect(await policy.forRead('a.txt')).toBe(join(allowed, 'a.txt'));
    expect(await policy.forRead(join(allowed, 'in-link'))).toBe(join(allowed, 'a.txt'));
    expect(await policy.forWrite('sub/new.bin')).toBe(join(allowed, 'sub', 'new.bin'));
  });
  it('refuses .., links out, denied directories, missing directories, and everything when off', async () => {
    await expect(policy.forRead('sub/../a.txt')).rejects.toThrow(/contains "\.\."/);
    await expect(policy.forRead('out-link/secret')).rejects.toThrow(/outside the allowed directories/);
    await expect(policy.forWrite('out-link/planted')).rejects.toThrow(/outside the allowed directories/);
    await expect(policy.forWrite('private/x')).rejects.toThrow(/denied directory/);
    await expect(policy.forRead(join(outside, 'secret'))).rejects.toThrow(/outside/);
    await expect(policy.forWrite('nope/x')).rejects.toThrow(/does not exist/);
    await expect(policy.forRead('missing.txt')).rejects.toThrow(/no such file/);
    await expect(new PathPolicy([], []).forRead('/etc/passwd')).rejects.toThrow(/file transfer is off/);
    // A sibling whose name starts like the allowed directory is not inside it.
    mkdirSync(`${allowed}-evil`, { recursive: true });
    await expect(policy.forWrite(`${allowed}-evil/x`)).rejects.toThrow(/outside/);
  });
});

describe('PartFile', () => {
  it('writes in order only, resumes a kept part of the same content, and checks the SHA-256', async () => {
    const dir = tempDir('cutter-part-');
    const src = join(dir, 'src');
    writeFileSync(src, Buffer.from('0123456789'.repeat(100)));
    const sha = await sha256File(src);
    const dest = join(dir, 'dest');
    const p = await PartFile.open(dest, 1000, sha);
    expect(await p.write(500, Buffer.alloc(10))).toBeNull();
    expect(await p.write(0, readFileSync(src).subarray(0, 400))).toBe(400);
    await p.close();
    const again = await PartFile.open(dest, 1000, sha);
    expect(again.offset).toBe(400);
    expect(await again.write(400, readFileSync(src).subarray(400))).toBe(1000);
    expect(await again.finish()).toEqual({ ok: true, sha256: sha });
    expect(readFileSync(dest)).toEqual(readFileSync(src));
    // Another content for the same destination starts from 0; a wrong hash is caught and the part deleted.
    const wrong = await PartFile.open(dest, 4, 'f'.repeat(64));
    expect(wrong.offset).toBe(0);
    await wrong.write(0, Buffer.from('abcd'));
    expect((await wrong.finish()).ok).toBe(false);
    expect(readFileSync(dest)).toEqual(readFileSync(src));
  });

  it('hashes what a resumed part keeps on disk: a kept byte changed between runs fails the check', async () => {
    const dir = tempDir('cutter-part-');
    const content = Buffer.from('abcdefghij'.repeat(100));
    const sha = createHash('sha256').update(content).digest('hex');
    const dest = join(dir, 'dest');
    const first = await PartFile.open(dest, content.length, sha);
    expect(await first.write(0, content.subarray(0, 600))).toBe(600);
    await first.close();
    const onDisk = readFileSync(first.partPath);
    onDisk[123] ^= 0xff;
    writeFileSync(first.partPath, onDisk);
    const resumed = await PartFile.open(dest, content.length, sha);
    expect(resumed.offset).toBe(600);
    expect(await resumed.write(600, content.subarray(600))).toBe(content.length);
    const result = await resumed.finish();
    expect(result.ok).toBe(false);
    expect(result.sha256).toBe(
      createHash('sha256')
        .update(Buffer.concat([onDisk, content.subarray(600)]))
        .digest('hex'),
    );
    expect(existsSync(dest)).toBe(false);
  });
});

describe('imagesInTar', () => {
  it('reads the image id and tags from a docker save manifest, and refuses other tars', async () => {
    const dir = tempDir('cutter-tar-');
    const hex = 'ab'.repeat(32);
    mkdirSync(join(dir, 'img', 'blobs', 'sha256'), { recursive: true });
    writeFileSync(
      join(dir, 'img', 'manifest.json'),
      JSON.stringify([{ Config: `blobs/sha256/${hex}`, RepoTags: ['me/app:1'], Layers: [] }]),
    );
    writeFileSync(join(dir, 'img', 'blobs', 'sha256', hex), '{}');
    spawnSync('tar', ['-cf', join(dir, 'img.tar'), '-C', join(dir, 'img'), 'blobs', 'manifest.json']);
    expect(await imagesInTar(join(dir, 'img.tar'))).toEqual([{ id: `sha256:${hex}`, repoTags: ['me/app:1'] }]);
    spawnSync('tar', ['-cf', join(dir, 'other.tar'), '-C', join(dir, 'img'), 'blobs']);
    await expect(imagesInTar(join(dir, 'other.tar'))).rejects.toThrow(/no manifest.json/);
  });
});

describe('pipelines', () => {
  const step = (id: string, needs: string[] = []) => ({ id, needs, task: { kind: 'exec', argv: ['true'] } });
  it('validates ids, needs and cycles', () => {
    expect(PipelineSchema.safeParse({ steps: [step('a'), step('b', ['a'])] }).success).toBe(true);
    const msg = (p: unknown) => {
      const r = PipelineSchema.safeParse(p);
      return r.success ? '' : r.error.issues[0].message;
    };
    expect(msg({ steps: [step('a'), step('a')] })).toMatch(/used twice/);
    expect(msg({ steps: [step('a', ['zz'])] })).toMatch(/needs "zz", which is not a step/);
    expect(msg({ steps: [step('a', ['c']), step('b', ['a']), step('c', ['b'])] })).toMatch(/cycle: a → c → b → a/);
    expect(msg({ steps: [] })).not.toBe('');
  });
  it('substitutes the outputs of needed steps in every string, and refuses others', () => {
    const outputs = new Map([['a', 'text of a\n']]);
    expect(substitute({ argv: ['x', 'got ${{ steps.a.output }}!'], request: { prompt: '${{steps.a.output}}' } }, outputs, 'b')).toEqual({
      argv: ['x', 'got text of a!'],
      request: { prompt: 'text of a' },
    });
    expect(() => substitute({ s: '${{ steps.z.output }}' }, outputs, 'b')).toThrow(/does not need/);
  });
  it('takes the output of the final attempt: stdout, or an ollama answer', () => {
    const base = { v: 1, taskId: 't', node: 'n', ts: 0 } as const;
    const events = [
      { ...base, attempt: 1, seq: 0, type: 'log', stream: 'stdout', data: 'old' },
      { ...base, attempt: 2, seq: 0, type: 'log', stream: 'stdout', data: 'new ' },
      { ...base, attempt: 2, seq: 1, type: 'log', stream: 'stderr', data: 'noise' },
      { ...base, attempt: 2, seq: 2, type: 'chunks', chunks: [{ response: 'Hel' }, { response: 'lo' }, { message: { content: '!' } }] },
    ] as TaskEvent[];
    expect(outputOf(events, 2)).toBe('new Hello!');
  });
});
