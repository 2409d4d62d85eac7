/**
 * Issue 16's ML-shaped flow with real processes and a real Docker engine: a 100-file, 50 MB
 * dataset of random bytes goes into a node's volume with `cutter cp -r`; a container started with
 * `cutter run -v data:/data` (placed on the one node that has the volume) reads every file and
 * writes their SHA-256 sums into the volume; `cutter cp -r NODE:data/out` brings them back and
 * they equal the sums computed here; after one file changes, a second `cp -r` moves that file only
 * (the command's --json summary and the agent's own log say so). Also: a typo'd volume, a volume
 * name with `..`, and a host path the node's policy does not list, each refused with its reason.
 * Skipped when no engine answers (CI with CUTTER_REQUIRE_ALL=1 fails instead).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const FILES = 100;
const FILE_BYTES = 500_000;

type Tree = {
  files: number;
  filesSent: number;
  filesSkipped: number;
  bytes: number;
  bytesSent: number;
  bytesSkipped: number;
  sentPaths: string[];
};
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const name = (i: number) => `shard-${String(i).padStart(3, '0')}.bin`;

describe.skipIf(engine.skip)(`volumes with docker tasks${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let holder: Daemon;
  let other: Daemon;
  const volumes = tempDir('cutter-vol-holder-');
  const local = tempDir('cutter-vol-local-');
  const dataset = join(local, 'dataset');
  /** A host directory only vholder's policy lists (--allow-host-path). */
  const shared = tempDir('cutter-vol-hostpath-');
  const run = (args: string[], timeoutMs = 120_000) => cli(args, { broker: url, timeoutMs });
  /** `file received` lines the holder's agent logged since `from` (its own count of files that came in). */
  const received = (from: number) => holder.lines.slice(from).filter((l) => l.msg === 'file received');

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
    [holder, other] = await Promise.all([
      startAgent(url, 'vholder', ['--volumes-dir', volumes, '--allow-host-path', shared]),
      startAgent(url, 'vother', ['--volumes-dir', tempDir('cutter-vol-other-')]),
    ]);
    mkdirSync(join(dataset, 'train'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(dataset, i < 50 ? 'train' : '', name(i)), randomBytes(FILE_BYTES));
  }, 120_000);
  afterAll(async () => {
    await Promise.all([holder?.stop(), other?.stop()]);
    await server?.stop();
    for (const d of [volumes, local, shared]) rmSync(d, { recursive: true, force: true });
  });

  it('fills a volume with 100 files (50 MB), runs a container on the node that has it, and brings its result back', async () => {
    const created = await run(['volume', 'create', 'vholder:data', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ node: 'vholder', name: 'data', path: join(volumes, 'data') });

    const mark = holder.lines.length;
    const up = await run(['cp', '-r', dataset, 'vholder:data/dataset', '--json']);
    expect(up.code, up.stderr).toBe(0);
    const sent = JSON.parse(up.stdout) as Tree;
    expect(sent).toMatchObject({
      files: FILES,
      filesSent: FILES,
      filesSkipped: 0,
      bytes: FILES * FILE_BYTES,
      bytesSent: FILES * FILE_BYTES,
    });
    expect(received(mark)).toHaveLength(FILES);

    const listed = await run(['volume', 'ls', '--json']);
    expect(JSON.parse(listed.stdout).nodes).toContainEqual({
      node: 'vholder',
      volumes: [expect.objectContaining({ name: 'data', files: FILES, bytes: FILES * FILE_BYTES })],
    });

    // No --node: only vholder has the volume, so the task goes there.
    const job = await run([
      'run',
      '-v',
      'data:/data',
      '--json',
      'docker',
      'run',
      TEST_IMAGE,
      'sh',
      '-c',
      'mkdir -p /data/out && cd /data/dataset && find . -type f | sort | xargs sha256sum > /data/out/sums',
    ]);
    expect(job.code, job.stderr).toBe(0);
    // --json prints the task's events, one a line, then its final state (indented).
    expect(JSON.parse(job.stdout.slice(job.stdout.lastIndexOf('\n{\n') + 1))).toMatchObject({ state: 'succeeded', node: 'vholder' });

    const results = join(local, 'results');
    const down = await run(['cp', '-r', 'vholder:data/out', results, '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ files: 1, filesSent: 1 });
    const sums = new Map(
      readFileSync(join(results, 'sums'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/))
        .map(([hash, path]) => [path.replace(/^\.\//, ''), hash]),
    );
    expect(sums.size).toBe(FILES);
    for (let i = 0; i < FILES; i++) {
      const rel = i < 50 ? `train/${name(i)}` : name(i);
      expect(sums.get(rel), rel).toBe(sha(join(dataset, rel)));
    }
  }, 300_000);

  it('sends only the changed file the second time', async () => {
    writeFileSync(join(dataset, 'train', name(7)), randomBytes(FILE_BYTES + 1234));
    const mark = holder.lines.length;
    const again = await run(['cp', '-r', dataset, 'vholder:data/dataset', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      files: FILES,
      filesSent: 1,
      filesSkipped: FILES - 1,
      bytesSent: FILE_BYTES + 1234,
      bytesSkipped: (FILES - 1) * FILE_BYTES,
      sentPaths: [`train/${name(7)}`],
    });
    // The agent's side: one file came in, the changed one.
    const came = received(mark);
    expect(came).toHaveLength(1);
    expect(came[0]).toMatchObject({ path: join(volumes, 'data', 'dataset', 'train', name(7)), size: FILE_BYTES + 1234 });
    expect(sha(join(volumes, 'data', 'dataset', 'train', name(7)))).toBe(sha(join(dataset, 'train', name(7))));
  }, 120_000);

  it('refuses a volume no node has, a volume name with "..", and a host path no node allows, saying why', async () => {
    const typo = await run(['run', '--no-queue', '-v', 'dta:/data', 'docker', 'run', TEST_IMAGE, 'true']);
    expect(typo.code).toBe(125);
    expect(typo.stderr).toContain('no volume dta');

    const dots = await run(['volume', 'create', 'vholder:a..b']);
    expect(dots.code).not.toBe(0);
    expect(dots.stderr).toContain('is not a volume name');
    const outside = await run(['cp', '-r', dataset, 'vholder:data/../../etc']);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toContain('cannot contain ".."');

    const host = await run(['run', '--no-queue', '-v', '/srv/x:/data', 'docker', 'run', TEST_IMAGE, 'true']);
    expect(host.code).toBe(125);
    expect(host.stderr).toContain("host path /srv/x is not allowed by any node's policy");
    expect(host.stderr).toContain('--allow-host-path');
  }, 120_000);

  it('mounts a volume read-only with :ro', async () => {
    const r = await run(['run', '--node', 'vholder', '-v', 'data:/data:ro', 'docker', 'run', TEST_IMAGE, 'sh', '-c', 'touch /data/x']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Read-only file system/i);
  }, 120_000);

  it("mounts a host path where the node's policy lists it, on that node", async () => {
    writeFileSync(join(shared, 'note.txt'), 'from the host\n');
    const r = await run(['run', '--json', 'docker', 'run', '-v', `${shared}:/h:ro`, TEST_IMAGE, 'cat', '/h/note.txt']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(Buffer.from('from the host\n').toString('base64'));
    expect(JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n{\n') + 1))).toMatchObject({ state: 'succeeded', node: 'vholder' });
  }, 120_000);
});
