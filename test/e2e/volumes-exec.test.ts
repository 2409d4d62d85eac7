/**
 * Volumes with exec tasks, over real processes (no Docker needed): the task finds its volume in
 * `$CUTTER_VOLUME_<NAME>` and may work inside it with `-w VOLUME:SUBDIR`; it is placed on the node
 * that has the volume, `-v NODE:VOLUME` pins it there (and is refused where the volume is
 * missing); a symbolic link inside a volume that points out of it is refused both ways by `cp -r`;
 * a `cp -r` killed mid-copy, run again, skips the files that arrived and resumes the one it was in.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, Daemon, ISOLATED_ENV, ON_MOSQUITTO, cli, eventually, startAgent, startServer, tempDir } from '../harness.js';

/** The final state `cutter run --json` prints after the task's events (indented JSON). */
const finalState = (stdout: string) => JSON.parse(stdout.slice(stdout.lastIndexOf('\n{\n') + 1)) as { state: string; node: string };

describe('volumes with exec tasks', () => {
  let server: Daemon;
  let url: string;
  let dataDir: string;
  let agents: Daemon[] = [];
  const dirA = tempDir('cutter-volx-a-');
  const dirB = tempDir('cutter-volx-b-');
  const local = tempDir('cutter-volx-local-');
  const run = (args: string[], timeoutMs = 60_000) => cli(args, { broker: url, timeoutMs });

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer());
    agents = await Promise.all([
      startAgent(url, 'xa', ['--allow-exec', '--volumes-dir', dirA]),
      startAgent(url, 'xb', ['--allow-exec', '--volumes-dir', dirB]),
    ]);
    mkdirSync(join(local, 'in', 'sub'), { recursive: true });
    writeFileSync(join(local, 'in', 'words.txt'), 'hello volume\n');
    writeFileSync(join(local, 'in', 'sub', 'keep'), '');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
    for (const d of [dirA, dirB, local]) rmSync(d, { recursive: true, force: true });
  });

  it('gives the task its volume path in $CUTTER_VOLUME_WORK, runs it inside with -w work:sub, on the node that has it', async () => {
    expect((await run(['volume', 'create', 'xa:work'])).code).toBe(0);
    // The server's audit log says who created it (the embedded broker's file audit: on Mosquitto
    // the file topics are the external broker's business, as for cutter cp).
    if (!ON_MOSQUITTO)
      await eventually(() =>
        readFileSync(join(dataDir, 'audit.jsonl'), 'utf8').includes(
          '"action":"volume.create","outcome":"requested","node":"xa","detail":"work"',
        ),
      );
    const up = await run(['cp', '-r', join(local, 'in'), 'xa:work', '--json']);
    expect(up.code, up.stderr).toBe(0);
    const job = await run([
      'run',
      '-v',
      'work',
      '--json',
      'exec',
      '-w',
      'work:sub',
      '--',
      'sh',
      '-c',
      'pwd > where && tr a-z A-Z < "$CUTTER_VOLUME_WORK/words.txt" > "$CUTTER_VOLUME_WORK/shout.txt"',
    ]);
    expect(job.code, job.stderr).toBe(0);
    expect(finalState(job.stdout)).toMatchObject({ state: 'succeeded', node: 'xa' });
    const back = join(local, 'back');
    const down = await run(['cp', '-r', 'xa:work', back, '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(join(back, 'shout.txt'), 'utf8')).toBe('HELLO VOLUME\n');
    expect(readFileSync(join(back, 'sub', 'where'), 'utf8').trim()).toBe(join(realpathSync(dirA), 'work', 'sub'));
  }, 120_000);

  it('pins the task with -v NODE:VOLUME, and refuses it where that node lacks the volume', async () => {
    const pinned = await run(['run', '-v', 'xa:work', '--json', 'exec', '--', 'sh', '-c', 'test -f "$CUTTER_VOLUME_WORK/words.txt"']);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(finalState(pinned.stdout)).toMatchObject({ state: 'succeeded', node: 'xa' });
    const missing = await run(['run', '--no-queue', '-v', 'xb:work', 'exec', '--', 'true']);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain('xb');
    expect(missing.stderr).toContain('no volume work');
  }, 120_000);

  it('refuses a symbolic link inside the volume that leads out of it, both ways', async () => {
    symlinkSync(local, join(dirA, 'work', 'escape'));
    const out = await run(['cp', '-r', 'xa:work/escape', join(local, 'stolen')]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('leaves volume work through a symbolic link');
    const into = await run(['cp', '-r', join(local, 'in'), 'xa:work/escape/planted']);
    expect(into.code).not.toBe(0);
    expect(into.stderr).toContain('leaves volume work through a symbolic link');
  }, 60_000);

  it('resumes a cp -r killed mid-copy: files that arrived are skipped, the partial one continues', async () => {
    const big = join(local, 'big');
    mkdirSync(big);
    const MB = 1_000_000;
    for (let i = 0; i < 4; i++) writeFileSync(join(big, `f${i}.bin`), randomBytes(20 * MB));
    const cp = new Daemon(
      spawn(process.execPath, [CUTTER, 'cp', '-r', big, 'xa:work/big', '--chunk-size', '65536'], {
        env: { ...ISOLATED_ENV, CUTTER_BROKER: url },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      'cli cp -r',
    );
    const part = join(dirA, 'work', 'big', 'f2.bin.cutter-part');
    await eventually(() => existsSync(part) && statSync(part).size > 2 * MB, 60_000, 10);
    cp.child.kill('SIGKILL');
    await cp.exited;
    const again = await run(['cp', '-r', big, 'xa:work/big', '--json'], 120_000);
    expect(again.code, again.stderr).toBe(0);
    const r = JSON.parse(again.stdout) as {
      filesSkipped: number;
      filesSent: number;
      bytesResumed: number;
      wireBytes: number;
      bytesSent: number;
    };
    expect(r.filesSkipped).toBeGreaterThanOrEqual(2);
    expect(r.filesSent).toBe(4 - r.filesSkipped);
    expect(r.bytesResumed).toBeGreaterThan(2 * MB);
    expect(r.wireBytes).toBeLessThan(r.bytesSent);
    for (let i = 0; i < 4; i++)
      expect(readFileSync(join(dirA, 'work', 'big', `f${i}.bin`)).equals(readFileSync(join(big, `f${i}.bin`)))).toBe(true);
  }, 180_000);
});
