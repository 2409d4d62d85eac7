/**
 * Exec tasks as contained as containers: a real server, a real agent (--allow-exec, running as
 * root here) and the CLI as a process. `--memory` is enforced (a task over it is OOM-killed:
 * exit 137, OOM_KILLED in `tasks show`; the same task without it succeeds), `--cpus` is written
 * into the task's cgroup (read back from outside while it runs, not timed), a cancelled task
 * leaves no process behind (its group, and with a cgroup also what left the group with setsid),
 * and `-e`, `-w`, `-u` reach the process. A second agent running as `nobody` cannot make cgroups:
 * a task asking for a limit is not placed there, with the reason.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupDir, parseCgroupMounts, parseOwnCgroups } from '../../agent/executors/cgroup-find.js';
import { CUTTER, cli, cliBackground, Daemon, eventually, ISOLATED_ENV, startAgent, startServer, tempDir } from '../harness.js';
import { needs } from '../services.js';

const cgroups = needs('cgroupLimits');
const NODE = 'contained';
/** Builds a string of 2^27 bytes (128 MiB) by doubling: ~200 MB resident at its peak (mawk, gawk, busybox awk). */
const ALLOC_200M = ['awk', 'BEGIN { s = "x"; while (length(s) < 100000000) s = s s; print length(s) }'];

let server: Daemon;
let agent: Daemon;
let url: string;
const background: Daemon[] = [];

beforeAll(async () => {
  ({ daemon: server, url } = await startServer());
  agent = await startAgent(url, NODE, ['--allow-exec']);
});
afterAll(async () => {
  for (const d of background) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  await agent?.stop();
  await server?.stop();
});

const run = (...what: string[]) => cli(['run', '--node', NODE, ...what], { broker: url, timeoutMs: 60_000 });

/** The task id `cutter run` names on stderr ("task ID placed on …"). */
function taskIdOf(stderr: string): string {
  const m = /task (\S+) placed on/.exec(stderr);
  if (!m) throw new Error(`no task id in: ${stderr}`);
  return m[1];
}

async function show(id: string): Promise<{ state: string; exitCode: number | null; oomKilled: boolean; error: { code: string } | null }> {
  return JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
}

/** Whether process `pid` is gone (a zombie no parent reaped yet counts as gone: it runs nothing). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

describe('exec task flags', () => {
  it('-e, -w and -u reach the process', async () => {
    const r = await run('exec', '-e', 'GREETING=hello there', '-w', '/tmp', '--', 'sh', '-c', 'echo "$GREETING"; pwd; id -u');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`hello there\n/tmp\n${process.getuid?.() ?? 0}\n`);
  });

  it.skipIf(process.getuid?.() !== 0)('-u runs it as that user, with its HOME', async () => {
    // -w /tmp and commands by their paths: neither the agent's directory (this checkout) nor every directory on its
    // PATH need be open to nobody (a fresh clone under a private directory is neither).
    const r = await run('exec', '-u', 'nobody', '-w', '/tmp', '--', '/bin/sh', '-c', '/usr/bin/id -u; /usr/bin/id -g; echo "$HOME"');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('65534\n65534\n/nonexistent\n');
  });

  it('-u with a user the node does not have is refused, saying so', async () => {
    const r = await run('exec', '-u', 'no-such-user-here', '--', 'true');
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('no user "no-such-user-here" on this node');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe(`exec task limits${cgroups.tag}`, () => {
  it.skipIf(cgroups.skip)('a task over --memory is OOM-killed: exit 137, OOM_KILLED in tasks show', async () => {
    const r = await run('--memory', '64m', 'exec', '--', ...ALLOC_200M);
    expect(r.code).toBe(137);
    expect(r.stdout).toBe('');
    const s = await show(taskIdOf(r.stderr));
    expect(s).toMatchObject({ state: 'failed', exitCode: 137, oomKilled: true, error: { code: 'OOM_KILLED' } });
    const details = await cli(['tasks', 'show', taskIdOf(r.stderr)], { broker: url });
    expect(details.stdout).toMatch(/OOM killed:\s+yes/);
  });

  it.skipIf(cgroups.skip)('the same task without a limit succeeds', async () => {
    const r = await run('exec', '--', ...ALLOC_200M);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('134217728\n');
  });

  it.skipIf(cgroups.skip)('--cpus is written into the task cgroup', async () => {
    const d = cliBackground(
      ['run', '--node', NODE, '--cpus', '0.5', 'exec', '--', 'sh', '-c', 'cat /proc/self/cgroup; echo up; sleep 60'],
      url,
    );
    background.push(d);
    await eventually(() => d.stdout.includes('up\n'), 20_000);
    const own = parseOwnCgroups(d.stdout);
    const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    const v1 = mounts.find((m) => m.version === 1 && m.controllers.includes('cpu'));
    let limit: string;
    if (v1) {
      const dir = cgroupDir(v1, own.get('cpu') ?? '/');
      expect(dir).toMatch(/\/cutter\/[^/]+$/);
      limit = `${readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim()} ${readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8').trim()}`;
    } else {
      const v2 = mounts.find((m) => m.version === 2)!;
      limit = readFileSync(join(cgroupDir(v2, own.get('') ?? '/'), 'cpu.max'), 'utf8').trim();
    }
    expect(limit).toBe('50000 100000');
    d.child.kill('SIGINT');
    await eventually(() => d.child.exitCode !== null, 20_000);
  });
});

describe('cancel', () => {
  it('kills the whole process group: no sleep is left behind', async () => {
    const dir = tempDir();
    const pids = join(dir, 'pids');
    // Two background sleeps in the task's group; with cgroups also one that left it (setsid).
    const escapee = cgroups.skip ? '' : 'setsid sleep 1000 & echo $! >> PIDS; ';
    const script = `sleep 1000 & echo $! >> PIDS; sleep 1000 & echo $! >> PIDS; ${escapee}echo up; sleep 1000`.replaceAll('PIDS', pids);
    const d = cliBackground(['run', '--node', NODE, 'exec', '--', 'sh', '-c', script], url);
    background.push(d);
    await eventually(() => d.stdout.includes('up\n'), 20_000);
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started.length).toBe(cgroups.skip ? 2 : 3);
    for (const pid of started) expect(gone(pid)).toBe(false);

    const id = taskIdOf(d.stderr);
    expect((await cli(['cancel', id], { broker: url })).code).toBe(0);
    await eventually(async () => (await show(id)).state === 'cancelled', 20_000);
    await eventually(() => started.every(gone), 10_000);
    expect(existsSync(pids)).toBe(true);
  });
});

/**
 * Whether user nobody can run this checkout's CLI (a clone under a private directory, such as a
 * mkdtemp one, cannot be read by others): the second agent runs as nobody.
 */
const nobodyRunsCutter =
  process.getuid?.() === 0 && spawnSync(process.execPath, [CUTTER, '--version'], { uid: 65534, gid: 65534, stdio: 'ignore' }).status === 0;

describe.skipIf(!nobodyRunsCutter)(
  `a node that cannot enforce limits${nobodyRunsCutter ? '' : ' [skipped: needs root, and this checkout readable by user nobody (chmod o+rx its directories)]'}`,
  () => {
    let plain: Daemon | undefined;
    beforeAll(async () => {
      const dirs = { XDG_CONFIG_HOME: tempDir(), XDG_DATA_HOME: tempDir(), HOME: tempDir() };
      for (const d of Object.values(dirs)) chownSync(d, 65534, 65534);
      const args = ['agent', '--broker', url, '--node-id', 'plain', '--heartbeat', '500', '--allow-exec'];
      const child = spawn(process.execPath, [CUTTER, ...args], {
        env: { ...ISOLATED_ENV, ...dirs },
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      plain = new Daemon(child, 'agent plain (nobody)');
      await plain.waitForMsg('agent started');
    });
    afterAll(async () => {
      await plain?.stop();
    });

    it('is not chosen for a task with --memory, and says why', async () => {
      const r = await run('--node', 'plain', '--no-queue', '--memory', '64m', 'exec', '--', 'true');
      expect(r.code).toBe(125);
      expect(r.stderr).toContain('plain: cannot enforce the limits of exec tasks (memory limit: ');
      expect(r.stderr).not.toMatch(/^\s+at /m);
      // It still runs exec tasks that ask for none.
      expect((await cli(['run', '--node', 'plain', 'exec', '--', 'id', '-u'], { broker: url })).stdout).toBe('65534\n');
      // Left to the scheduler, a limited task goes to the node that can hold it to its limit.
      const auto = await cli(['run', '--memory', '64m', 'exec', '--', 'true'], { broker: url });
      expect(auto.code).toBe(0);
      expect(auto.stderr).toMatch(new RegExp(`placed on ${NODE}\\b`));
    });
  },
);
