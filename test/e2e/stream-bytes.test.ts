/**
 * Output is bytes end to end (issue 15): what a task writes to stdout and stderr is what `cutter run`
 * writes to its own stdout and stderr, and what `cutter logs` writes afterwards, byte for byte, each
 * stream in order: empty output, one byte, every byte value (NUL, 0x80-0xff: not UTF-8), a 2 MB
 * binary. The reference for a docker task is `docker run --rm` of the same command on this engine;
 * for an exec task the file it `cat`s. Real server, real agent, the real CLI; stdout and stderr are
 * collected as Buffers and compared by length and sha256. Docker cases are skipped when no engine
 * answers (needs('docker')), except in CI (CUTTER_REQUIRE_ALL=1).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Captured, cutterBytes as cutter, digest, taskIdOf } from '../cli-bytes.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, ensureTestImage, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const NODE = 'bytes-node';

/** `docker run --rm TEST_IMAGE CMD…` straight on the engine: the bytes the task writes. */
function dockerRun(cmd: string[]): Captured {
  const r = spawnSync('docker', ['run', '--rm', TEST_IMAGE, ...cmd], { maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr without the CLI's own leading lines ("cutter: task … placed on …"): the task's stderr. */
function taskStderr(stderr: Buffer): Buffer {
  let at = 0;
  while (stderr.subarray(at, at + 8).toString('latin1') === 'cutter: ') {
    const nl = stderr.indexOf(0x0a, at);
    if (nl < 0) break;
    at = nl + 1;
  }
  return stderr.subarray(at);
}

/** Bytes 0…255 once. */
const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
/** A printf format that prints `bytes`, each as an octal escape (so NUL and `%` come out as bytes). */
const printfFormat = (bytes: Buffer) => [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
/** `sh -c` script printing its $1 format 256 times (and, when given, $2 on stderr each time). */
const REPEAT_256 = 'i=0; while [ $i -lt 256 ]; do printf "$1"; [ -z "$2" ] || printf "$2" >&2; i=$((i+1)); done';

const CASES: { name: string; cmd: string[]; bytes: number }[] = [
  { name: 'no output (true)', cmd: ['true'], bytes: 0 },
  { name: 'one byte (printf x)', cmd: ['printf', 'x'], bytes: 1 },
  {
    name: '64 KiB holding every byte value, NUL and 0x80-0xff included',
    cmd: ['sh', '-c', REPEAT_256, 'sh', printfFormat(EVERY_BYTE)],
    bytes: 65_536,
  },
  { name: '2,000,000 bytes of a binary', cmd: ['sh', '-c', 'cat /bin/busybox /bin/busybox | head -c 2000000'], bytes: 2_000_000 },
];

describe('task output is bytes, end to end', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;

  beforeAll(async () => {
    if (!engine.skip) ensureTestImage();
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--allow-exec']);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  describe.skipIf(engine.skip)(`docker tasks${engine.tag}`, () => {
    it.each(CASES)('cutter run and cutter logs give the bytes docker run gives: $name', async ({ cmd, bytes }) => {
      const reference = dockerRun(cmd);
      expect(reference.code).toBe(0);
      expect(reference.stdout.length).toBe(bytes);

      const run = await cutter(['run', '--node', NODE, 'docker', 'run', TEST_IMAGE, ...cmd], url);
      expect(run.code, run.stderr.toString('latin1')).toBe(0);
      expect(digest(run.stdout)).toEqual(digest(reference.stdout));
      expect(digest(taskStderr(run.stderr))).toEqual(digest(reference.stderr));

      const logs = await cutter(['logs', taskIdOf(run.stderr)], url);
      expect(logs.code, logs.stderr.toString('latin1')).toBe(0);
      expect(digest(logs.stdout)).toEqual(digest(reference.stdout));
      expect(digest(logs.stderr)).toEqual(digest(reference.stderr));
    });

    it('keeps stdout and stderr apart, each in order, when the task interleaves them', async () => {
      const reversed = Buffer.from(EVERY_BYTE).reverse();
      const cmd = ['sh', '-c', REPEAT_256, 'sh', printfFormat(EVERY_BYTE), printfFormat(reversed)];
      const reference = dockerRun(cmd);
      expect(reference.stdout.equals(Buffer.concat(Array.from({ length: 256 }, () => EVERY_BYTE)))).toBe(true);
      expect(reference.stderr.equals(Buffer.concat(Array.from({ length: 256 }, () => reversed)))).toBe(true);

      const run = await cutter(['run', '--node', NODE, 'docker', 'run', TEST_IMAGE, ...cmd], url);
      expect(run.code, run.stderr.toString('latin1')).toBe(0);
      expect(digest(run.stdout)).toEqual(digest(reference.stdout));
      expect(digest(taskStderr(run.stderr))).toEqual(digest(reference.stderr));

      const logs = await cutter(['logs', taskIdOf(run.stderr)], url);
      expect(digest(logs.stdout)).toEqual(digest(reference.stdout));
      expect(digest(logs.stderr)).toEqual(digest(reference.stderr));
    });
  });

  it('an exec task that cats a random binary file gives the file, through cutter run and cutter logs', async () => {
    const file = join(tempDir('cutter-bytes-'), 'random.bin');
    const content = randomBytes(1_500_000);
    writeFileSync(file, content);

    const run = await cutter(['run', '--node', NODE, 'exec', '--', 'cat', file], url);
    expect(run.code, run.stderr.toString('latin1')).toBe(0);
    expect(digest(run.stdout)).toEqual(digest(content));
    expect(taskStderr(run.stderr).length).toBe(0);

    const logs = await cutter(['logs', taskIdOf(run.stderr)], url);
    expect(logs.code).toBe(0);
    expect(digest(logs.stdout)).toEqual(digest(content));
    expect(logs.stderr.length).toBe(0);
  });
});
