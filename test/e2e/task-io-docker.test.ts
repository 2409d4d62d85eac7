/**
 * Issue 16's ML-shaped flow with task inputs and outputs and a real Docker engine: a 100-file,
 * 50 MB dataset of random bytes goes with `cutter run --input DATASET:/in --output /out:RESULTS`;
 * the container (read-only /in) reads every file and writes their SHA-256 sums into /out; the sums
 * land in the local results directory and equal the ones computed here. After one file changes,
 * the second run sends that file only (the --json `io` figures, and the agent's own log of files
 * received). The node's cache holds each content once, under its SHA-256.
 * Skipped when no engine answers (CI with CUTTER_REQUIRE_ALL=1 fails instead).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, tempDir } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const FILES = 100;
const FILE_BYTES = 500_000;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const name = (i: number) => `shard-${String(i).padStart(3, '0')}.bin`;

type Phase = { files: number; filesSent: number; filesSkipped: number; bytes: number; bytesSent: number; bytesSkipped: number };
type Final = { state: string; node: string; io: { bytesUp: number; bytesDown: number; inputs: Phase; outputs: Phase } };
const finalState = (stdout: string) => JSON.parse(stdout.slice(stdout.lastIndexOf('\n{\n') + 1)) as Final;

describe.skipIf(engine.skip)(`task inputs and outputs with docker tasks${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  const local = tempDir('cutter-io-docker-');
  const dataset = join(local, 'dataset');
  const results = join(local, 'results');
  const run = (args: string[], timeoutMs = 240_000) => cli(args, { broker: url, timeoutMs });
  /** `file received` lines the agent logged since `from` (its own count of contents that came in). */
  const received = (from: number) => agent.lines.slice(from).filter((l) => l.msg === 'file received');
  const job = [
    'run',
    '--input',
    `${dataset}:/in`,
    '--output',
    `/out:${results}`,
    '--json',
    'docker',
    'run',
    TEST_IMAGE,
    'sh',
    '-c',
    // /in is read-only: a write there fails the task.
    'cd /in && ! touch /in/x 2>/dev/null && find . -type f | sort | xargs sha256sum > /out/sums',
  ];

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, 'iodocker');
    mkdirSync(join(dataset, 'train'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(dataset, i < 50 ? 'train' : '', name(i)), randomBytes(FILE_BYTES));
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    rmSync(local, { recursive: true, force: true });
  });

  const checkSums = () => {
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
  };

  it('sends the 100-file, 50 MB dataset, runs the container on it and brings the result back with equal checksums', async () => {
    const mark = agent.lines.length;
    const r = await run(job);
    expect(r.code, r.stderr).toBe(0);
    const f = finalState(r.stdout);
    expect(f).toMatchObject({ state: 'succeeded', node: 'iodocker' });
    expect(f.io.inputs).toMatchObject({
      files: FILES,
      filesSent: FILES,
      filesSkipped: 0,
      bytes: FILES * FILE_BYTES,
      bytesSent: FILES * FILE_BYTES,
    });
    expect(f.io.outputs).toMatchObject({ files: 1, filesSent: 1 });
    expect(f.io.bytesUp).toBe(FILES * FILE_BYTES);
    expect(received(mark)).toHaveLength(FILES);
    checkSums();
  }, 300_000);

  it('sends only the changed file the second time', async () => {
    writeFileSync(join(dataset, 'train', name(7)), randomBytes(FILE_BYTES + 1234));
    const mark = agent.lines.length;
    const r = await run(job);
    expect(r.code, r.stderr).toBe(0);
    const f = finalState(r.stdout);
    expect(f.io.inputs).toMatchObject({
      files: FILES,
      filesSent: 1,
      filesSkipped: FILES - 1,
      bytesSent: FILE_BYTES + 1234,
      bytesSkipped: (FILES - 1) * FILE_BYTES,
    });
    expect(f.io.bytesUp).toBe(FILE_BYTES + 1234);
    // The agent's side: one content came in, the changed file's, into its cache under its SHA-256.
    const came = received(mark);
    expect(came).toHaveLength(1);
    const digest = sha(join(dataset, 'train', name(7)));
    expect(came[0]).toMatchObject({ size: FILE_BYTES + 1234 });
    expect(String(came[0].path)).toMatch(new RegExp(`/cas/${digest.slice(0, 2)}/${digest}$`));
    expect(existsSync(String(came[0].path))).toBe(true);
    checkSums();
  }, 300_000);
});
