/**
 * Shared by the lending tests (issue 17): CPU burners outside cutter (the owner's own work), a
 * process's state letter from /proc, the latest lending state a node announced, and a power
 * supply double shaped like /sys/class/power_supply.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { tempDir } from '../harness.js';
import type { Msg } from './recovery-helpers.js';

/** One busy-looping `node -e 'for(;;){}'` per core: the owner's CPU at 100 %. */
export function burners(n = cpus().length): { stop: () => void } {
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) children.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  return {
    stop: () => {
      for (const c of children) c.kill('SIGKILL');
    },
  };
}

/** The state letter of a process (`S`, `R`, `T` stopped), or undefined when it is gone. */
/**
 * The states of a process that is not stopped (proc(5) /proc/PID/stat): R running, S sleeping (the
 * task's `sleep`), D waiting on the disk (its loop stats a file; seen under CI's disk load).
 */
export const NOT_STOPPED = /^[RSD]$/;

export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** The `lending` field of the last status `node` published among `statuses`. */
export function lendingOf(statuses: Msg[], node: string): { state: string; reason?: string; suspended?: string[] } | undefined {
  const last = statuses.filter((s) => s.node === node && s.lending).at(-1);
  return last?.lending as { state: string; reason?: string; suspended?: string[] } | undefined;
}

/**
 * A directory shaped like /sys/class/power_supply (the agent's `--power-supply-dir`): an `AC`
 * supply (type Mains) and a system battery `BAT0`; `set(online)` plugs or unplugs the AC
 * (`online` 1/0, the battery `Charging`/`Discharging`).
 */
export function powerDouble(): { dir: string; set: (online: boolean) => void } {
  const dir = tempDir('cutter-power-');
  mkdirSync(join(dir, 'AC'));
  mkdirSync(join(dir, 'BAT0'));
  writeFileSync(join(dir, 'AC', 'type'), 'Mains\n');
  writeFileSync(join(dir, 'BAT0', 'type'), 'Battery\n');
  writeFileSync(join(dir, 'BAT0', 'scope'), 'System\n');
  const set = (online: boolean) => {
    writeFileSync(join(dir, 'AC', 'online'), online ? '1\n' : '0\n');
    writeFileSync(join(dir, 'BAT0', 'status'), online ? 'Charging\n' : 'Discharging\n');
  };
  set(true);
  return { dir, set };
}

/** The host's busy CPU over `ms` (`/proc/stat`, all cores), %: how loaded the machine is before a burner test. */
export async function hostBusyPercent(ms = 3_000): Promise<number> {
  const read = () => {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - v[3] - v[4], total };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100;
}

/**
 * The owner-CPU threshold of the burner tests, %: a burner per core drives the host to ~100 %, so
 * it must be above what the machine does without it. Shared CI machines are often busy already;
 * there a burner cannot be told from the rest and the burner checks are skipped (the power double
 * tests the same suspend, resume and preempt paths deterministically).
 */
export const BURNER_THRESHOLD = 90;
/** Above this baseline load (%) the burner checks are skipped. */
export const BUSY_BASELINE = 65;
