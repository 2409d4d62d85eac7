/**
 * Where the agent reads its owner's side of the machine (issue 17), each through a path or program
 * a test can point elsewhere, the real source by default:
 * - power: `/sys/class/power_supply/<name>/{type,online,status,scope}` (kernel ABI
 *   `Documentation/ABI/testing/sysfs-class-power`); `--power-supply-dir` / CUTTER_POWER_SUPPLY_DIR
 *   points it at a directory of the same shape (the test double: `AC/type` = `Mains`, `AC/online` = `0`);
 * - idle: logind's sessions through `loginctl` (`list-sessions`, `show-session -p IdleHint -p
 *   IdleSinceHint …`; https://systemd.io/WRITING_DESKTOP_ENVIRONMENTS), the program named by
 *   CUTTER_LOGINCTL; under WSL2 unknown (Windows' idle time is not read);
 * - CPU: `/proc/stat`'s `cpu` line (USER_HZ ticks; busy = total − idle − iowait), deltas between samples;
 * - memory: `/proc/meminfo` MemAvailable.
 * Facts and their sources: /work/shared/reference/nodes-gpus-lending-facts.md §4.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { freemem, uptime } from 'node:os';
import { join } from 'node:path';

/** The kernel's default place of power supplies. */
export const POWER_SUPPLY_DIR = '/sys/class/power_supply';

const readText = (path: string) =>
  readFile(path, 'utf8').then(
    (s) => s.trim(),
    () => undefined,
  );

/**
 * Whether the machine runs on battery: some system battery (type `Battery`, scope not `Device`:
 * not a wireless mouse) is `Discharging`, or there are AC/USB supplies (`Mains`, `USB*`) and none is
 * `online`. No supplies at all (a desktop, a VM: the directory is empty or missing) = mains.
 * Never throws.
 */
export async function readOnBattery(dir = POWER_SUPPLY_DIR): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return false;
  }
  let supplies = 0;
  let online = 0;
  for (const name of names) {
    const type = await readText(join(dir, name, 'type'));
    if (type === 'Battery') {
      if ((await readText(join(dir, name, 'scope'))) === 'Device') continue;
      if ((await readText(join(dir, name, 'status'))) === 'Discharging') return true;
    } else if (type === 'Mains' || type?.startsWith('USB')) {
      supplies++;
      if ((await readText(join(dir, name, 'online'))) === '1') online++;
    }
  }
  return supplies > 0 && online === 0;
}

/** Runs a program with a 3 s timeout; its stdout, or undefined when it failed. */
function run(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 3_000, maxBuffer: 256 * 1024 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** One logind session's properties (`show-session` KEY=VALUE blocks, blank-line separated). */
export type SessionProps = Record<string, string>;

/** Splits `loginctl show-session A B -p …` output into one record per session. */
export function parseShowSession(text: string): SessionProps[] {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const props: SessionProps = {};
      for (const line of block.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1).trim();
      }
      return props;
    })
    .filter((p) => Object.keys(p).length > 0);
}

/**
 * The owner's idle seconds from logind's user sessions (Class `user`): a graphical session whose
 * IdleHint is `no` is active now (0 s); one with IdleHint `yes`, and a TTY/SSH session (whose
 * IdleSinceHint carries its tty's atime), counts from IdleSinceHint (µs since the epoch). The
 * most recently active session wins. No user session: nobody is logged in, idle since boot.
 * @returns idleSec null when unknown, with why in `source`.
 */
export function idleFromSessions(sessions: SessionProps[], nowMs: number, uptimeSec: number): { idleSec: number | null; source: string } {
  const users = sessions.filter((s) => (s.Class ?? 'user') === 'user');
  if (users.length === 0) return { idleSec: Math.round(uptimeSec), source: 'logind: no one logged in' };
  let least: number | null = null;
  for (const s of users) {
    const graphical = s.Type === 'x11' || s.Type === 'wayland' || s.Type === 'mir';
    let idle: number | null;
    if (graphical && s.IdleHint === 'no') idle = 0;
    else {
      const since = Number(s.IdleSinceHint);
      idle = Number.isFinite(since) && since > 0 ? Math.max(0, (nowMs - since / 1000) / 1000) : s.IdleHint === 'no' ? 0 : null;
    }
    if (idle !== null) least = least === null ? idle : Math.min(least, idle);
  }
  return least === null
    ? { idleSec: null, source: 'logind: sessions without an idle hint' }
    : { idleSec: Math.round(least), source: 'logind' };
}

/** True under WSL (the kernel says "microsoft", or WSL's own variables are set). */
export async function isWsl(): Promise<boolean> {
  if (process.env.WSL_DISTRO_NAME || process.env.WSL_INTEROP) return true;
  return /microsoft/i.test((await readText('/proc/sys/kernel/osrelease')) ?? '');
}

/**
 * The owner's idle time through logind (`loginctl`, or the program CUTTER_LOGINCTL names). Under
 * WSL2 unknown: Windows' idle time (GetLastInputInfo) needs powershell.exe, which is not run.
 * Never throws.
 */
export async function readIdle(nowMs = Date.now()): Promise<{ idleSec: number | null; source: string }> {
  if (await isWsl()) return { idleSec: null, source: "WSL2: Windows' idle time is not read" };
  const loginctl = process.env.CUTTER_LOGINCTL || 'loginctl';
  const list = await run(loginctl, ['list-sessions', '--no-legend']);
  if (list === undefined) return { idleSec: null, source: 'no logind (loginctl failed)' };
  const ids = list
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((id) => id && /^[A-Za-z0-9_-]{1,64}$/.test(id))
    .slice(0, 64);
  if (ids.length === 0) return idleFromSessions([], nowMs, uptime());
  const props = await run(loginctl, ['show-session', ...ids, '-p', 'IdleHint', '-p', 'IdleSinceHint', '-p', 'Class', '-p', 'Type']);
  if (props === undefined) return { idleSec: null, source: 'logind: show-session failed' };
  return idleFromSessions(parseShowSession(props), nowMs, uptime());
}

/** `/proc/stat`'s first line as busy and total ticks (busy = total − idle − iowait); null when unreadable. */
export async function readCpuTicks(): Promise<{ busy: number; total: number } | null> {
  const text = await readText('/proc/stat');
  const line = text?.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return null;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 5 || v.some((n) => !Number.isFinite(n))) return null;
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - v[4], total };
}

/** MemAvailable in bytes (`/proc/meminfo`), else Node's `os.freemem()`. */
export async function readFreeMemory(): Promise<number> {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec((await readText('/proc/meminfo')) ?? '');
  return m ? Number(m[1]) * 1024 : freemem();
}

/**
 * CPU time of every process in process group `pgid` (an exec task: its group is its first
 * process's pid), ms: the sum of `utime` + `stime` (fields 14 and 15 of `/proc/PID/stat`, USER_HZ
 * = 100 ticks/s). 0 when none is found.
 */
export async function processGroupCpuMs(pgid: number): Promise<number> {
  let sum = 0;
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    const stat = await readText(`/proc/${pid}/stat`);
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
    if (Number(f[2]) === pgid) sum += (Number(f[11]) + Number(f[12])) * 10;
  }
  return sum;
}

/** The state letter of a process (`R`, `S`, `T` stopped …) from `/proc/PID/stat`, or undefined when it is gone. */
export async function processState(pid: number): Promise<string | undefined> {
  const stat = await readText(`/proc/${pid}/stat`);
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] : undefined;
}
