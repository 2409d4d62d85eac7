/**
 * The processes of an exec task's terminal session (agent/executors/exec-pty.ts), found through
 * /proc (proc(5): /proc/[pid]/stat is `pid (comm) state ppid pgrp session …`; the comm may hold
 * spaces and parentheses, so fields are counted after its last ") ").
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether `pid` still runs (a zombie does not). */
export function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)?.startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * Sends `signal` to every process of session `sid` (proc(5) /proc/[pid]/stat field 6), its leader's
 * group first. Never throws.
 */
export function signalSession(sid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-sid, signal);
  } catch {
    // the group is gone
  }
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return;
  }
  for (const d of pids) {
    try {
      const fields = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ').at(-1)!.split(' ');
      // After the comm: state, ppid, pgrp, session.
      if (Number(fields[3]) === sid) process.kill(Number(d), signal);
    } catch {
      // gone, or not ours to see
    }
  }
}
