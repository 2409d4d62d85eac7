/**
 * Exec task containment without a mesh: reading cgroup mounts and a process's cgroups (files as
 * hosts write them), the exec flags of `cutter run … exec`, `-u` lookups, and the refusal of a
 * limit the node cannot enforce (a real ExecExecutor told the node has no cgroups: nothing runs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseExecArgs } from '../../cli/exec-args.js';
import { cgroupDir, findLimitSupport, parseCgroupMounts, parseOwnCgroups } from '../../agent/executors/cgroup-find.js';
import { ExecExecutor } from '../../agent/executors/exec.js';
import {
  cpuQuotaUs,
  oomKillCount,
  removeStaleCgroups,
  TaskCgroup,
  taskCgroupName,
  unenforceable,
} from '../../agent/executors/exec-limits.js';
import { resolveExecUser } from '../../agent/executors/exec-user.js';
import type { ExecutorContext } from '../../agent/executors/executor.js';
import { place } from '../../controller/scheduler/place.js';
import type { NodeSnapshot } from '../../controller/scheduler/snapshot.js';
import type { CutterError } from '../../shared/errors.js';
import { formatRejection } from '../../shared/reasons.js';
import { eventually, tempDir } from '../harness.js';
import { cluster, expectPlaced, makeNode, reasonFor, req } from './scheduler-fixtures.js';

/** A hybrid host (cgroup v1 controllers, cgroup2 with only hugetlb), as /proc/self/mountinfo shows it. */
const HYBRID = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct',
  '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

describe('cgroup mounts and paths', () => {
  it('reads v1 controllers and the v2 mount from mountinfo', () => {
    const mounts = parseCgroupMounts(HYBRID);
    expect(mounts.map((m) => [m.version, m.mountPoint])).toEqual([
      [1, '/sys/fs/cgroup/cpu'],
      [1, '/sys/fs/cgroup/cpuacct'],
      [1, '/sys/fs/cgroup/memory'],
      [1, '/sys/fs/cgroup/systemd'],
      [2, '/sys/fs/cgroup/unified'],
    ]);
    expect(mounts[0].controllers).toContain('cpu');
    expect(mounts[0].controllers).not.toContain('cpuacct');
    // A combined mount, as most distributions have it, and an escaped space in a mount point.
    const [combined] = parseCgroupMounts('25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct');
    expect(combined.controllers).toEqual(expect.arrayContaining(['cpu', 'cpuacct']));
    expect(parseCgroupMounts('1 0 0:1 / /my\\040cg rw - cgroup2 cgroup2 rw')[0].mountPoint).toBe('/my cg');
  });

  it("reads a process's cgroup per controller and finds its directory inside a mount", () => {
    const own = parseOwnCgroups('9:name=systemd:/\n4:memory:/process_api/ad9d\n1:cpu,cpuacct:/a/b\n0::/user.slice\n');
    expect(own.get('memory')).toBe('/process_api/ad9d');
    expect(own.get('cpuacct')).toBe('/a/b');
    expect(own.get('')).toBe('/user.slice');
    const memory = parseCgroupMounts(HYBRID).find((m) => m.controllers.includes('memory'))!;
    expect(cgroupDir(memory, '/process_api/ad9d')).toBe('/sys/fs/cgroup/memory/process_api/ad9d');
    // A container that mounts only its own subtree sees its cgroup at the mount point.
    const inContainer = { version: 1 as const, mountPoint: '/sys/fs/cgroup/memory', root: '/docker/abc', controllers: ['memory'] };
    expect(cgroupDir(inContainer, '/docker/abc/x')).toBe('/sys/fs/cgroup/memory/x');
  });

  it('counts OOM kills in memory.events and memory.oom_control; CPU quotas in µs per 100 ms', () => {
    expect(oomKillCount('oom_kill_disable 0\nunder_oom 0\noom_kill 2\n')).toBe(2);
    expect(oomKillCount('low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n')).toBe(1);
    expect(oomKillCount('oom_kill_disable 0\nunder_oom 0\n')).toBe(0);
    expect(cpuQuotaUs(0.5)).toBe(50_000);
    expect(cpuQuotaUs(2)).toBe(200_000);
    expect(cpuQuotaUs(0.001)).toBe(1_000);
  });
});

describe('the files written, on a directory laid out like a cgroup2 mount', () => {
  // This machine's memory and cpu controllers are in v1, so the v2 path is shown on plain files:
  // which files get which values (the kernel's own checks are not exercised here).
  it('enables memory and cpu for cutter/ and writes memory.max, cpu.max and the pid', () => {
    const root = tempDir();
    writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    writeFileSync(join(root, 'cgroup.subtree_control'), '');
    const support = findLimitSupport(`40 30 0:37 / ${root} rw,relatime - cgroup2 cgroup2 rw`, '0::/\n');
    expect(support).toMatchObject({ memory: true, cpus: true, via: 'cgroup v2', base: { version: 2, dir: join(root, 'cutter') } });
    expect(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+memory +cpu');
    expect(readFileSync(join(root, 'cutter', 'cgroup.subtree_control'), 'utf8')).toBe('+memory +cpu');

    const cg = TaskCgroup.create(support, 't.1.99', { memory: 64 << 20, cpus: 0.5 });
    const dir = join(root, 'cutter', 't.1.99');
    expect(cg.dirs).toEqual([dir]);
    expect(readFileSync(join(dir, 'memory.max'), 'utf8')).toBe(String(64 << 20));
    expect(readFileSync(join(dir, 'cpu.max'), 'utf8')).toBe('50000 100000');
    expect(existsSync(join(dir, 'memory.swap.max'))).toBe(false); // written only where the kernel has it
    cg.join(4242);
    expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8')).toBe('4242');
    writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    expect(cg.oomKills()).toBe(1);
  });

  it('says why when the hierarchy lacks a controller', () => {
    const root = tempDir();
    writeFileSync(join(root, 'cgroup.controllers'), 'hugetlb\n');
    const support = findLimitSupport(`40 30 0:37 / ${root} rw - cgroup2 cgroup2 rw`, '0::/\n');
    expect(support).toMatchObject({ memory: false, cpus: false, via: null });
    expect(support.why).toContain(`cgroup v2 at ${root} has no memory or cpu controller`);
    expect(support.why).toContain('no cgroup v1 memory hierarchy is mounted');
  });

  it('v1: a memory limit goes to the memory hierarchy, a CPU quota to the cpu one', () => {
    const root = tempDir();
    for (const c of ['memory', 'cpu']) mkdirSync(join(root, c, 'me', 'cutter'), { recursive: true });
    writeFileSync(join(root, 'memory', 'me', 'cutter', 'memory.limit_in_bytes'), '9223372036854771712\n');
    writeFileSync(join(root, 'cpu', 'me', 'cutter', 'cpu.cfs_quota_us'), '-1\n');
    const mountinfo = [
      `31 30 0:28 / ${root}/cpu rw - cgroup cgroup rw,cpu`,
      `34 30 0:31 / ${root}/memory rw - cgroup cgroup rw,memory`,
    ].join('\n');
    const support = findLimitSupport(mountinfo, '4:memory:/me\n1:cpu:/me\n');
    expect(support).toMatchObject({ memory: true, cpus: true, via: 'cgroup v1' });
    const cg = TaskCgroup.create(support, 't.1.99', { memory: 64 << 20, cpus: 1.5 });
    const [mem, cpu] = [join(root, 'memory', 'me', 'cutter', 't.1.99'), join(root, 'cpu', 'me', 'cutter', 't.1.99')];
    expect(cg.dirs).toEqual([mem, cpu]);
    expect(readFileSync(join(mem, 'memory.limit_in_bytes'), 'utf8')).toBe(String(64 << 20));
    expect(readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8')).toBe('150000');
    expect(readFileSync(join(cpu, 'cpu.cfs_period_us'), 'utf8')).toBe('100000');
    writeFileSync(join(mem, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    expect(cg.oomKills()).toBe(2);
  });
});

describe('cgroups left behind', () => {
  it('are removed when their agent is gone and they are empty; others stay', () => {
    const base = tempDir();
    const gonePid = spawnSync('true').pid!; // exited: no process has this pid now
    const mk = (name: string) => (mkdirSync(join(base, name)), join(base, name));
    const stale = mk(taskCgroupName('a', 1, gonePid));
    const busy = mk(taskCgroupName('b', 1, gonePid));
    writeFileSync(join(busy, 'cgroup.procs'), '4242\n'); // rmdir fails on it, as on a cgroup with processes
    const mine = mk(taskCgroupName('c', 2));
    const removed = removeStaleCgroups({ memory: true, cpus: false, via: 'cgroup v1', base: { version: 1, memory: base } });
    expect(removed).toBe(1);
    expect([existsSync(stale), existsSync(busy), existsSync(mine)]).toEqual([false, true, true]);
  });
});

describe('a limit the node cannot enforce', () => {
  const none = { memory: false, cpus: false, via: null, why: 'no cgroup v1 memory hierarchy is mounted' };

  it('is named with what to do', () => {
    expect(unenforceable(none, {}, 'n')).toBeUndefined();
    expect(unenforceable({ ...none, memory: true }, { memory: 1 << 30 }, 'n')).toBeUndefined();
    const why = unenforceable({ ...none, memory: true }, { memory: 1 << 30, cpus: 1 }, 'n1');
    expect(why).toContain('node n1 cannot enforce --cpus for exec tasks (no cgroup v1 memory hierarchy is mounted)');
    expect(why).toContain('run it without --cpus');
  });

  it('refuses the task and runs nothing', async () => {
    const marker = join(tempDir(), 'ran');
    const ctx: ExecutorContext = {
      taskId: 't',
      attempt: 1,
      node: 'n1',
      memory: 0,
      output: () => undefined,
      progress: () => undefined,
      started: () => undefined,
    };
    const exec = new ExecExecutor({ enabled: true, allowlist: [], limitSupport: none });
    const err: CutterError = await exec.start({ kind: 'exec', argv: ['touch', marker], env: {}, memoryLimit: 64 << 20 }, ctx).done.then(
      () => {
        throw new Error('it ran');
      },
      (e) => e,
    );
    expect(err.code).toBe('EXECUTOR_UNAVAILABLE');
    expect(err.message).toContain('node n1 cannot enforce --memory for exec tasks');
    expect(existsSync(marker)).toBe(false);
    // Without a limit the same node runs it.
    await exec.start({ kind: 'exec', argv: ['touch', marker], env: {} }, ctx).done;
    expect(existsSync(marker)).toBe(true);
  });
});

describe('start()', () => {
  it('never throws: an argument spawn() cannot pass (a NUL byte) fails the task START_FAILED', async () => {
    const ctx: ExecutorContext = {
      taskId: 'nul',
      attempt: 1,
      node: 'n',
      memory: 0,
      output: () => undefined,
      progress: () => undefined,
      started: () => undefined,
    };
    const handle = new ExecExecutor().start({ kind: 'exec', argv: ['echo', 'a\0b'], env: {} }, ctx);
    await expect(handle.done).rejects.toMatchObject({ code: 'START_FAILED' });
  });
});

describe('output while the mesh is behind', () => {
  /** A context whose output window is closed until `open()`: output() says false, drained() waits. */
  function behind() {
    const got: Buffer[] = [];
    let open!: () => void;
    const drained = new Promise<void>((r) => (open = r));
    let isOpen = false;
    drained.then(() => (isOpen = true));
    const ctx: ExecutorContext = {
      taskId: 'bp',
      attempt: 1,
      node: 'n',
      memory: 0,
      output: (_s, c) => (got.push(c), isOpen),
      drained: () => drained,
      progress: () => undefined,
      started: () => undefined,
    };
    return { ctx, got, open };
  }
  const noCgroups = { memory: false, cpus: false, via: null };

  it.each([
    ['in a cgroup', undefined],
    ['without a cgroup', noCgroups],
  ])('%s: the pipes are not read until the mesh catches up, then every byte arrives', async (_name, limitSupport) => {
    const { ctx, got, open } = behind();
    const exec = new ExecExecutor({ enabled: true, allowlist: [], ...(limitSupport ? { limitSupport } : {}) });
    // 1 MB: far more than a pipe holds, so the task blocks on its own writes while nothing is read.
    const handle = exec.start({ kind: 'exec', argv: ['sh', '-c', 'head -c 1000000 /dev/zero; echo done'], env: {} }, ctx);
    let ended = false;
    void handle.done.finally(() => (ended = true));
    await eventually(() => got.length > 0);
    await new Promise((r) => setTimeout(r, 300)); // room for more output to arrive, were the pipes read
    expect(got.length).toBe(1);
    expect(ended).toBe(false);
    open();
    expect((await handle.done).exitCode).toBe(0);
    const all = Buffer.concat(got);
    expect(all.length).toBe(1_000_005);
    expect(all.subarray(-5).toString()).toBe('done\n');
  });
});

describe('cutter run … exec flags', () => {
  it('reads -e, -w, -u, -m and --cpus up to -- or the command', () => {
    expect(
      parseExecArgs([
        '-e',
        'A=1',
        '-eB=2',
        '--env=C=x=y',
        '-w',
        '/tmp',
        '-u',
        'nobody:nogroup',
        '-m',
        '64m',
        '--cpus',
        '0.5',
        '--',
        'sh',
        '-c',
        'x',
      ]),
    ).toEqual({
      kind: 'exec',
      argv: ['sh', '-c', 'x'],
      env: { A: '1', B: '2', C: 'x=y' },
      cwd: '/tmp',
      user: 'nobody:nogroup',
      memoryLimit: 64 << 20,
      cpus: 0.5,
    });
    // Flags end at the command: its own flags are its own.
    expect(parseExecArgs(['ls', '-l', '--', '-e'])).toEqual({ kind: 'exec', argv: ['ls', '-l', '--', '-e'], env: {} });
    expect(parseExecArgs(['--', '-weird'])).toMatchObject({ argv: ['-weird'] });
  });

  it('refuses what it does not know, and a missing command or value', () => {
    expect(() => parseExecArgs(['-x', 'ls'])).toThrow(/exec -x: not an exec flag .*put the command after --/);
    expect(() => parseExecArgs(['-e', 'A=1'])).toThrow(/exec needs a command/);
    expect(() => parseExecArgs(['-w'])).toThrow(/exec -w needs a value/);
    expect(() => parseExecArgs(['--cpus', '0', 'x'])).toThrow(/positive number of CPUs/);
    expect(() => parseExecArgs(['-m', 'lots', 'x'])).toThrow(/exec -m lots/);
  });
});

describe('-u lookups', () => {
  const dir = tempDir();
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
  writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001:Alice:/home/alice:/bin/sh\n');
  writeFileSync(files.group, 'root:x:0:\nstaff:x:50:alice\n');
  const asRoot = process.getuid?.() === 0;

  it.skipIf(!asRoot)('takes a name, a uid, a group by name or number, like docker run -u', () => {
    expect(resolveExecUser('alice', files)).toEqual({ uid: 1000, gid: 1001, name: 'alice', home: '/home/alice' });
    expect(resolveExecUser('1000', files)).toMatchObject({ uid: 1000, gid: 1001, name: 'alice' });
    expect(resolveExecUser('alice:staff', files)).toMatchObject({ uid: 1000, gid: 50 });
    expect(resolveExecUser('4242:7', files)).toEqual({ uid: 4242, gid: 7 });
  });

  it('says which user or group this node does not have', () => {
    expect(() => resolveExecUser('bob', files)).toThrow('-u bob: no user "bob" on this node (/etc/passwd)');
    expect(() => resolveExecUser('alice:wheel', files)).toThrow('no group "wheel" on this node');
  });
});

describe('placing an exec task that asks for limits', () => {
  /** An exec node that announces these limits (undefined: an older agent that announces none). */
  const node = (name: string, limits?: { memory: boolean; cpus: boolean }, why?: string): NodeSnapshot => {
    const n = makeNode(name, { executors: ['exec'] });
    if (limits) n.status.capacity!.exec = { limits, ...(why ? { why } : {}) };
    return n;
  };
  const limited = (memory: boolean, cpus: boolean) => ({
    ...req(64 << 20, { kind: 'exec', cpus: cpus ? 1 : 0 }),
    execLimits: { memory, cpus },
  });

  it('skips nodes that cannot enforce them, saying which limit and why', () => {
    const why = reasonFor(node('v1-no-cpu', { memory: true, cpus: false }, 'no cgroup v1 cpu hierarchy is mounted'), limited(true, true));
    expect(why).toEqual({ code: 'exec-limits', detail: 'CPU limit: no cgroup v1 cpu hierarchy is mounted' });
    expect(formatRejection({ node: 'x', ...why })).toBe(
      'cannot enforce the limits of exec tasks (CPU limit: no cgroup v1 cpu hierarchy is mounted): run its agent as root with cgroups mounted, or drop --memory/--cpus',
    );
    // An agent that does not announce limits enforced none: never trusted with one.
    expect(reasonFor(node('old'), limited(true, false))).toMatchObject({
      code: 'exec-limits',
      detail: expect.stringContaining('older agent'),
    });
    const p = expectPlaced(place(limited(true, true), cluster([node('old'), node('contained', { memory: true, cpus: true })])));
    expect(p.node).toBe('contained');
  });

  it('places a task without limits anywhere exec runs', () => {
    expectPlaced(place(req(0, { kind: 'exec' }), cluster([node('old')])));
    expectPlaced(place(limited(true, false), cluster([node('mem-only', { memory: true, cpus: false })])));
  });
});
