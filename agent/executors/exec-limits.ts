/**
 * One exec task's cgroup: made with its limits before the task runs, joined by the task's first
 * process before it execs the command, read for OOM kills when it ends, emptied with SIGKILL as a
 * backstop to the process-group kill (it also catches processes that left the group with setsid),
 * and removed afterwards. Where the cgroups go: agent/executors/cgroup-find.ts.
 *
 * Files (kernel Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/memory.rst, cfs quota in
 * scheduler/sched-bwc.rst):
 * - v2: `memory.max` (bytes), `memory.swap.max` 0 (the limit is not stretched by swap), `cpu.max`
 *   `$QUOTA $PERIOD` (µs), `memory.events` `oom_kill N`, `cgroup.kill` (Linux ≥ 5.14).
 * - v1: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (the same, when swap accounting is
 *   on), `cpu.cfs_period_us` / `cpu.cfs_quota_us` (µs), `memory.oom_control` `oom_kill N` (≥ 4.13).
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { formatBytes } from '../../shared/units.js';
import type { LimitSupport } from './cgroup-find.js';

/** Limits an exec task asks for: memory in bytes, CPU in cores (fractions allowed). */
export interface ExecLimits {
  memory?: number;
  cpus?: number;
}

/** The CFS period cutter writes, µs (the kernel's default, 100 ms). */
export const CPU_PERIOD_US = 100_000;
/** The smallest CFS quota the kernel takes, µs (1 ms). */
const MIN_CPU_QUOTA_US = 1_000;
/** The smallest memory limit cutter sets, bytes: docker's (`Minimum memory limit allowed is 6MB`). */
export const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;

/** The CFS quota for `cpus` cores in one CPU_PERIOD_US, µs, at least 1 ms. */
export function cpuQuotaUs(cpus: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round(cpus * CPU_PERIOD_US));
}

/**
 * Why the node cannot enforce what `limits` asks for, as one line with what to do; undefined
 * when it can (or nothing is asked).
 */
export function unenforceable(support: LimitSupport, limits: ExecLimits, node: string): string | undefined {
  const missing = [limits.memory ? (support.memory ? '' : '--memory') : '', limits.cpus ? (support.cpus ? '' : '--cpus') : ''].filter(
    Boolean,
  );
  if (missing.length === 0) return undefined;
  return (
    `node ${node} cannot enforce ${missing.join(' and ')} for exec tasks (${support.why ?? 'no cgroup to put them in'}), so the task was not run: ` +
    `run it without ${missing.join(' and ')}, as a docker task (-m, --cpus), or on a node whose agent runs as root with cgroups mounted`
  );
}

function write(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (err) {
    throw new CutterError('START_FAILED', `cannot set ${file} = ${value} in ${dir}: ${errorMessage(err)}`);
  }
}

/** Writes `value` when the file exists (swap accounting may be off); other errors throw. */
function writeIfPresent(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value, { flag: 'r+' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CutterError('START_FAILED', `cannot set ${file} = ${value} in ${dir}: ${errorMessage(err)}`);
  }
}

/** The `oom_kill N` count in a memory.events / memory.oom_control text; 0 when absent. */
export function oomKillCount(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The name of a task's cgroup: `<task>.<attempt>.<agent pid>` (the pid tells whose it is). */
export function taskCgroupName(taskId: string, attempt: number, agentPid = process.pid): string {
  return `${taskId}.${attempt}.${agentPid}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the empty task cgroups agents that are gone left behind (killed before they removed
 * them). One still holding processes (a task that outlived its SIGKILLed agent) stays, as do those
 * of agents still running. Never throws. @returns how many were removed.
 */
export function removeStaleCgroups(support: LimitSupport): number {
  const base = support.base;
  if (!base) return 0;
  const dirs = base.version === 2 ? [base.dir] : [base.memory, base.cpu].filter((d): d is string => d !== undefined);
  let removed = 0;
  for (const dir of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      continue;
    }
    for (const name of names) {
      const pid = Number(/\.\d+\.(\d+)$/.exec(name)?.[1]);
      if (!pid || alive(pid)) continue;
      try {
        rmdirSync(join(dir, name));
        removed++;
      } catch {
        // not empty: its task still runs
      }
    }
  }
  return removed;
}

/** An exec task's cgroup (one directory on v2, one per hierarchy on v1). */
export class TaskCgroup {
  private constructor(
    /** The directories whose `cgroup.procs` the task joins. */
    readonly dirs: string[],
    private readonly version: 1 | 2,
    /** The directory with the memory files (v1: when the task is in the memory hierarchy). */
    private readonly memoryDir: string | undefined,
  ) {}

  /**
   * Makes the cgroup `name` and writes `limits` into it.
   * @param support where cgroups go (findLimitSupport()); must be able to enforce `limits` (unenforceable() first).
   * @throws CutterError START_FAILED when a directory cannot be made or a limit not written (it is
   *   removed again), or the memory limit is below MIN_MEMORY_LIMIT.
   */
  static create(support: LimitSupport, name: string, limits: ExecLimits): TaskCgroup {
    const base = support.base;
    if (!base) throw new CutterError('START_FAILED', 'this node has no cgroup for exec tasks');
    if (limits.memory !== undefined && limits.memory < MIN_MEMORY_LIMIT)
      throw new CutterError(
        'START_FAILED',
        `memory limit ${formatBytes(limits.memory)} is below the minimum of ${formatBytes(MIN_MEMORY_LIMIT)}`,
      );
    const mk = (dir: string) => {
      try {
        mkdirSync(dir);
      } catch (err) {
        throw new CutterError('START_FAILED', `cannot create cgroup ${dir}: ${errorMessage(err)}`);
      }
      return dir;
    };
    let cg: TaskCgroup;
    if (base.version === 2) {
      const dir = mk(join(base.dir, name));
      cg = new TaskCgroup([dir], 2, dir);
    } else {
      // Without limits, one hierarchy still tracks the task's processes (kill-all, OOM report).
      const memoryDir = base.memory && (limits.memory || !limits.cpus) ? mk(join(base.memory, name)) : undefined;
      let cpuDir: string | undefined;
      try {
        cpuDir = base.cpu && (limits.cpus || !memoryDir) ? mk(join(base.cpu, name)) : undefined;
      } catch (err) {
        if (memoryDir) rmdirSync(memoryDir);
        throw err;
      }
      cg = new TaskCgroup(
        [memoryDir, cpuDir].filter((d): d is string => d !== undefined),
        1,
        memoryDir,
      );
    }
    try {
      cg.apply(limits);
    } catch (err) {
      for (const d of cg.dirs) rmdirSync(d);
      throw err;
    }
    return cg;
  }

  private apply(limits: ExecLimits): void {
    const quota = limits.cpus ? cpuQuotaUs(limits.cpus) : undefined;
    if (this.version === 2) {
      const dir = this.dirs[0];
      if (limits.memory) {
        write(dir, 'memory.max', String(limits.memory));
        writeIfPresent(dir, 'memory.swap.max', '0');
      }
      if (quota) write(dir, 'cpu.max', `${quota} ${CPU_PERIOD_US}`);
      return;
    }
    if (limits.memory && this.memoryDir) {
      write(this.memoryDir, 'memory.limit_in_bytes', String(limits.memory));
      writeIfPresent(this.memoryDir, 'memory.memsw.limit_in_bytes', String(limits.memory));
    }
    const cpuDir = this.dirs.find((d) => d !== this.memoryDir);
    if (quota && cpuDir) {
      write(cpuDir, 'cpu.cfs_period_us', String(CPU_PERIOD_US));
      write(cpuDir, 'cpu.cfs_quota_us', String(quota));
    }
  }

  /**
   * Moves process `pid` (with the threads it has; children it starts later follow) into the cgroup.
   * @throws CutterError START_FAILED naming the file the kernel refused.
   */
  join(pid: number): void {
    for (const dir of this.dirs) write(dir, 'cgroup.procs', String(pid));
  }

  /** How many times the kernel's OOM killer killed a process of the task (0 when it is in no memory cgroup). */
  oomKills(): number {
    if (!this.memoryDir) return 0;
    try {
      return oomKillCount(readFileSync(join(this.memoryDir, this.version === 2 ? 'memory.events' : 'memory.oom_control'), 'utf8'));
    } catch {
      return 0;
    }
  }

  /** The pids in the cgroup now (each hierarchy's, merged). */
  pids(): number[] {
    const all = new Set<number>();
    for (const dir of this.dirs) {
      try {
        for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p) all.add(Number(p));
      } catch {
        // removed already
      }
    }
    return [...all];
  }

  /** SIGKILLs every process in the cgroup (v2 `cgroup.kill` where the kernel has it). Never throws. */
  killAll(): void {
    if (this.version === 2) {
      try {
        writeFileSync(join(this.dirs[0], 'cgroup.kill'), '1', { flag: 'r+' });
        return;
      } catch {
        // older kernel: one by one below
      }
    }
    // A process may fork between the read and the kill: a few rounds catch its children.
    for (let round = 0; round < 3; round++) {
      const pids = this.pids();
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }

  /**
   * Removes the cgroup once it is empty: SIGKILLs what is left, then retries the rmdir while the
   * kernel still counts exiting processes (up to ~2 s). Never throws; @returns false when a
   * directory is still there.
   */
  async remove(): Promise<boolean> {
    this.killAll();
    let left = [...this.dirs];
    for (let i = 0; i < 100 && left.length > 0; i++) {
      left = left.filter((dir) => {
        try {
          rmdirSync(dir);
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code !== 'ENOENT';
        }
      });
      if (left.length > 0) await sleep(20);
    }
    return left.length === 0;
  }
}
