/**
 * Task inputs and outputs with exec tasks, over real processes (no Docker needed):
 * `cutter run --input DIR:in --output out:DIR exec …` uploads the directory into the node's
 * content-addressed cache, the command finds it in `$CUTTER_INPUT_IN` and writes into
 * `$CUTTER_OUTPUT_OUT`, the result lands in the local directory with equal checksums; a second run
 * with one file changed sends only that file (the --json `io` figures); a symbolic link the task
 * leaves in its output pointing out of it is never collected; a staging the node cannot finish
 * fails the task STAGING_FAILED with exit 125, and the command never ran.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, cli, startAgent, startServer, tempDir } from '../harness.js';

const FILES = 20;
const FILE_BYTES = 100_000;
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const name = (i: number) => `part-${String(i).padStart(2, '0')}.bin`;

type Phase = { files: number; filesSent: number; filesSkipped: number; bytes: number; bytesSent: number; bytesSkipped: number };
type Final = {
  state: string;
  node: string;
  error: { code: string; message: string } | null;
  io: { bytesUp: number; bytesDown: number; inputs?: Phase; outputs?: Phase };
};
/** The final state `cutter run --json` prints after the task's events (indented JSON). */
const finalState = (stdout: string) => JSON.parse(stdout.slice(stdout.lastIndexOf('\n{\n') + 1)) as Final;

describe('task inputs and outputs with exec tasks', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  /** Takes no file over 50 KB: staging the 100 KB files there fails. */
  let small: Daemon;
  const local = tempDir('cutter-io-exec-');
  const dataset = join(local, 'dataset');
  const results = join(local, 'results');
  const run = (args: string[], timeoutMs = 120_000) => cli(args, { broker: url, timeoutMs });
  /** Reads every input file, writes their sums and a marker into the output (and a link pointing out of it). */
  const job = [
    'run',
    '--node',
    'ioexec',
    '--input',
    `${dataset}:in`,
    '--output',
    `out:${results}`,
    '--json',
    'exec',
    '--',
    'sh',
    '-c',
    'cd "$CUTTER_INPUT_IN" && find . -type f | sort | xargs sha256sum > "$CUTTER_OUTPUT_OUT/sums" && ln -s /etc/hostname "$CUTTER_OUTPUT_OUT/leak" && mkdir "$CUTTER_OUTPUT_OUT/sub" && echo done > "$CUTTER_OUTPUT_OUT/sub/marker"',
  ];

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    [agent, small] = await Promise.all([
      startAgent(url, 'ioexec', ['--allow-exec']),
      startAgent(url, 'iosmall', ['--allow-exec', '--files-max-size', '50k']),
    ]);
    mkdirSync(join(dataset, 'deep', 'er'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(dataset, i % 2 ? 'deep/er' : '', name(i)), randomBytes(FILE_BYTES));
  }, 60_000);
  afterAll(async () => {
    await Promise.all([agent?.stop(), small?.stop()]);
    await server?.stop();
    rmSync(local, { recursive: true, force: true });
  });

  it('uploads the inputs, runs the command on them and brings its output back with equal checksums', async () => {
    const r = await run(job);
    expect(r.code, r.stderr).toBe(0);
    const f = finalState(r.stdout);
    expect(f).toMatchObject({ state: 'succeeded', node: 'ioexec' });
    expect(f.io.inputs).toMatchObject({ files: FILES, filesSent: FILES, bytes: FILES * FILE_BYTES, bytesSent: FILES * FILE_BYTES });
    expect(f.io.bytesUp).toBe(FILES * FILE_BYTES);
    const sums = new Map(
      readFileSync(join(results, 'sums'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/))
        .map(([hash, path]) => [path.replace(/^\.\//, ''), hash]),
    );
    expect(sums.size).toBe(FILES);
    for (let i = 0; i < FILES; i++) {
      const rel = i % 2 ? `deep/er/${name(i)}` : name(i);
      expect(sums.get(rel), rel).toBe(sha(readFileSync(join(dataset, rel))));
    }
    expect(readFileSync(join(results, 'sub', 'marker'), 'utf8')).toBe('done\n');
    // The link pointing out of the output was neither listed nor followed.
    expect(existsSync(join(results, 'leak'))).toBe(false);
    expect(f.io.outputs).toMatchObject({ files: 2, filesSent: 2 });
    expect(f.io.bytesDown).toBe(f.io.outputs!.bytesSent);
  }, 180_000);

  it('sends only the changed file the second time, and fetches only the output that changed', async () => {
    writeFileSync(join(dataset, 'deep', 'er', name(3)), randomBytes(FILE_BYTES + 77));
    const r = await run(job);
    expect(r.code, r.stderr).toBe(0);
    const f = finalState(r.stdout);
    expect(f.io.inputs).toMatchObject({
      files: FILES,
      filesSent: 1,
      filesSkipped: FILES - 1,
      bytesSent: FILE_BYTES + 77,
      bytesSkipped: (FILES - 1) * FILE_BYTES,
    });
    expect(f.io.bytesUp).toBe(FILE_BYTES + 77);
    // The sums changed, the marker did not.
    expect(f.io.outputs).toMatchObject({ files: 2, filesSent: 1, filesSkipped: 1 });
    const line = readFileSync(join(results, 'sums'), 'utf8')
      .split('\n')
      .find((l) => l.endsWith(`deep/er/${name(3)}`));
    expect(line?.split(/\s+/)[0]).toBe(sha(readFileSync(join(dataset, 'deep', 'er', name(3)))));
  }, 180_000);

  it('says what it moved on stderr without --json', async () => {
    const r = await run(job.filter((a) => a !== '--json'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/inputs staged on ioexec in .*: 0 of 20 files sent \(0 B\), 20 already there with the same SHA-256/);
    expect(r.stderr).toMatch(/outputs collected from ioexec .*: 0 of 2 files received/);
    expect(r.stderr).toMatch(/moved 0 B up \(inputs\), 0 B down \(outputs\)/);
  }, 180_000);

  it('fails the task STAGING_FAILED with exit 125 when the node refuses the inputs, and never runs the command', async () => {
    const marker = join(local, 'ran');
    const r = await run(['run', '--node', 'iosmall', '--input', `${dataset}:in`, 'exec', '--', 'sh', '-c', `touch ${marker}`]);
    expect(r.code, r.stderr).toBe(125);
    expect(r.stderr).toMatch(
      /failed: staging the inputs failed: could not send the inputs to node iosmall: .*over node iosmall's limit of 51200 bytes/,
    );
    expect(existsSync(marker)).toBe(false);
  }, 180_000);
});
