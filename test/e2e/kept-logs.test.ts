/**
 * Kept logs say what they dropped (issue 15). A real server keeping 64 KiB per task
 * (CUTTER_MAX_LOG_BYTES=64k) and a real exec agent: a task that writes 1,000,000 known bytes (a
 * random file it cats) streams all of them through `cutter run`, while `cutter logs` prints
 * exactly the first 32 KiB and the last 32 KiB and says on stderr, never on stdout, how many bytes
 * of which stream were dropped, where, and which setting keeps more; `--json` and `tasks show
 * --json` carry the counts. Under the limit, nothing is said. Bytes are compared as Buffers.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cutterBytes as cutter, digest, taskIdOf } from '../cli-bytes.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, type Daemon, eventually, ISOLATED_ENV, startAgent, startServer, tempDir } from '../harness.js';

const NODE = 'kept-node';
const LIMIT = 64 * 1024;
const HALF = LIMIT / 2;
const SIZE = 1_000_000;

/** The parsed lines of `cutter logs --json`: events, then the `kept` line. */
function jsonLines(out: Buffer): Record<string, unknown>[] {
  return out
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('cutter logs past maxLogBytes', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let dir: string;
  let big: Buffer;
  let bigFile: string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer([], { env: { CUTTER_MAX_LOG_BYTES: '64k' } }));
    agent = await startAgent(url, NODE, ['--allow-exec']);
    dir = tempDir('cutter-kept-');
    big = randomBytes(SIZE);
    bigFile = join(dir, 'big.bin');
    writeFileSync(bigFile, big);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('prints exactly the first and the last 32 KiB, and says on stderr what was dropped, where, and what to do', async () => {
    const run = await cutter(['run', '--node', NODE, 'exec', '--', 'cat', bigFile], url);
    expect(run.code, run.stderr.toString('latin1')).toBe(0);
    expect(digest(run.stdout)).toEqual(digest(big)); // live output is never cut
    const id = taskIdOf(run.stderr);

    const logs = await cutter(['logs', id], url);
    expect(logs.code, logs.stderr.toString('latin1')).toBe(0);
    expect(digest(logs.stdout)).toEqual(digest(Buffer.concat([big.subarray(0, HALF), big.subarray(SIZE - HALF)])));
    const said = logs.stderr.toString('utf8');
    expect(said).toContain(`task ${id} was cut to 64.0 KiB`);
    expect(said).toContain(
      `stdout: ${(SIZE - LIMIT).toLocaleString('en-US')} bytes dropped between its first 32,768 bytes and its last 32,768 bytes`,
    );
    expect(said).toContain('CUTTER_MAX_LOG_BYTES=1m would have kept all of this');
    expect(said).not.toContain('stderr:');
    for (const line of said.trimEnd().split('\n')) expect(line).toMatch(/^cutter: /);

    const json = await cutter(['logs', '--json', id], url);
    expect(json.code).toBe(0);
    const lines = jsonLines(json.stdout);
    const kept = lines.at(-1) as { type: string; truncated: boolean; output: Record<string, Record<string, number>> & { limit: number } };
    expect(kept).toMatchObject({ type: 'kept', taskId: id, truncated: true });
    expect(kept.output.limit).toBe(LIMIT);
    expect(kept.output.stdout).toEqual({ written: SIZE, kept: LIMIT, dropped: SIZE - LIMIT, droppedFrom: HALF, lost: 0 });
    expect(json.stderr.length).toBe(0);

    const show = await cutter(['tasks', 'show', '--json', id], url);
    const state = JSON.parse(show.stdout.toString('utf8')) as { state: string; output: { stdout: { dropped: number } } };
    expect(state.state).toBe('succeeded');
    expect(state.output.stdout.dropped).toBe(SIZE - LIMIT);
    const human = await cutter(['tasks', 'show', id], url);
    expect(human.stdout.toString('utf8')).toMatch(
      /Output: +64\.0 KiB kept \(the first 32\.0 KiB and the last 32\.0 KiB\), 934,464 bytes of stdout dropped/,
    );
  });

  it('with both streams, keeps a head and a tail of each and names each stream’s dropped range', async () => {
    const errBytes = randomBytes(200_000);
    const errFile = join(dir, 'err.bin');
    writeFileSync(errFile, errBytes);
    const run = await cutter(['run', '--node', NODE, 'exec', '--', 'sh', '-c', 'cat "$1"; cat "$2" >&2', 'sh', bigFile, errFile], url);
    expect(run.code, run.stderr.toString('latin1')).toBe(0);
    const id = taskIdOf(run.stderr);

    const json = await cutter(['logs', '--json', id], url);
    const lines = jsonLines(json.stdout);
    type Stream = { written: number; kept: number; dropped: number; droppedFrom: number };
    const kept = lines.at(-1) as { output: { headBytes: number; tailBytes: number; stdout: Stream; stderr: Stream } };
    const { stdout, stderr } = kept.output;
    expect(kept.output.headBytes + kept.output.tailBytes).toBe(LIMIT);
    expect(stdout.written).toBe(SIZE);
    expect(stderr.written).toBe(errBytes.length);
    expect(stdout.kept + stderr.kept).toBe(LIMIT);
    expect(stdout.dropped + stderr.dropped).toBe(SIZE + errBytes.length - LIMIT);

    // What `cutter logs` prints of each stream is its head up to droppedFrom and its tail: exactly those bytes.
    const logs = await cutter(['logs', id], url);
    const headTail = (all: Buffer, s: Stream) => Buffer.concat([all.subarray(0, s.droppedFrom), all.subarray(s.droppedFrom + s.dropped)]);
    expect(digest(logs.stdout)).toEqual(digest(headTail(big, stdout)));
    const said = logs.stderr.toString('latin1');
    const notice = said.indexOf('cutter: the output of task');
    expect(notice).toBeGreaterThanOrEqual(0);
    expect(digest(logs.stderr.subarray(0, notice))).toEqual(digest(headTail(errBytes, stderr)));
    expect(said.slice(notice)).toContain(`stderr: ${stderr.dropped.toLocaleString('en-US')} bytes dropped`);
  });

  it('says it too after -f, when the kept output it printed missed some', async () => {
    const gate = join(dir, 'gate');
    const id = (
      await cutter(
        ['run', '-d', '--node', NODE, 'exec', '--', 'sh', '-c', 'cat "$1"; while [ ! -e "$2" ]; do sleep 0.1; done', 'sh', bigFile, gate],
        url,
      )
    ).stdout
      .toString('utf8')
      .trim();
    // All of its output reached the server before following starts: the follow sees only what was kept.
    await eventually(async () => {
      const show = await cutter(['tasks', 'show', '--json', id], url);
      return (JSON.parse(show.stdout.toString('utf8')) as { output: { stdout: { written: number } } }).output.stdout.written === SIZE;
    }, 30_000);
    const following = spawn(process.execPath, [CUTTER, 'logs', '-f', id], {
      env: { ...ISOLATED_ENV, CUTTER_BROKER: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    following.stdout.on('data', (c: Buffer) => out.push(c));
    following.stderr.on('data', (c: Buffer) => err.push(c));
    const code = new Promise<number | null>((resolve) => following.once('close', resolve));
    // The task cannot end before the gate opens: once the kept output is printed, -f is following a running task.
    await eventually(() => Buffer.concat(out).length >= LIMIT, 30_000);
    writeFileSync(gate, '');
    const logs = { code: await code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
    expect(logs.code, logs.stderr.toString('latin1')).toBe(0);
    expect(digest(logs.stdout)).toEqual(digest(Buffer.concat([big.subarray(0, HALF), big.subarray(SIZE - HALF)])));
    expect(logs.stderr.toString('utf8')).toContain(`stdout: ${(SIZE - LIMIT).toLocaleString('en-US')} bytes dropped`);
  });

  it('says nothing when the output fits: stdout and stderr are the task’s own, byte for byte', async () => {
    const small = randomBytes(20_000);
    const smallFile = join(dir, 'small.bin');
    writeFileSync(smallFile, small);
    const run = await cutter(['run', '--node', NODE, 'exec', '--', 'sh', '-c', 'cat "$1"; printf "err\\n" >&2', 'sh', smallFile], url);
    expect(run.code, run.stderr.toString('latin1')).toBe(0);
    const id = taskIdOf(run.stderr);

    const logs = await cutter(['logs', id], url);
    expect(logs.code).toBe(0);
    expect(digest(logs.stdout)).toEqual(digest(small));
    expect(logs.stderr.toString('latin1')).toBe('err\n');
    const kept = jsonLines((await cutter(['logs', '--json', id], url)).stdout).at(-1);
    expect(kept).toMatchObject({ type: 'kept', truncated: false, output: { stdout: { written: 20_000, kept: 20_000, dropped: 0 } } });
  });
});
