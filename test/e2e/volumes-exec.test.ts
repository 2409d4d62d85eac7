/**
 * Volumes with exec tasks, over real processes (no Docker needed): the task finds its volume in
 * `$CUTTER_VOLUME_<NAME>` and may work inside it with `-w VOLUME:SUBDIR`; it is placed on the node
 * that has the volume, `-v NODE:VOLUME` pins it there (and is refused where the volume is
 * missing); a symbolic link inside a volume that points out of it is refused both ways by `cp -r`.
 */
import { mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startAgent, startServer, tempDir, type Daemon } from '../harness.js';

/** The final state `cutter run --json` prints after the task's events (indented JSON). */
const finalState = (stdout: string) => JSON.parse(stdout.slice(stdout.lastIndexOf('\n{\n') + 1)) as { state: string; node: string };

describe('volumes with exec tasks', () => {
  let server: Daemon;
  let url: string;
  let agents: Daemon[] = [];
  const dirA = tempDir('cutter-volx-a-');
  const dirB = tempDir('cutter-volx-b-');
  const local = tempDir('cutter-volx-local-');
  const run = (args: string[], timeoutMs = 60_000) => cli(args, { broker: url, timeoutMs });

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
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
});
