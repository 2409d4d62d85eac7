/**
 * Figures for the benchmarks: quantiles, and a process's CPU time and memory from Linux's /proc
 * (proc(5): `/proc/PID/stat` fields 14-15 utime and stime in clock ticks, `/proc/PID/status`
 * VmRSS in kB). Linux only; elsewhere the samplers return null.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { formatBytes } from '../shared/units.js';

/** The q-quantile (0-1) of `xs` (nearest rank); NaN for an empty list. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export const median = (xs: number[]) => quantile(xs, 0.5);

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep 100, the value on every mainstream Linux
}

/** CPU seconds (user + system) the process has used so far, or null when it cannot be read. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** Resident set size, bytes, or null when it cannot be read. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Starts a new peak-RSS window for a process: writing 5 to `/proc/PID/clear_refs` resets its
 * VmHWM to the current RSS (proc(5), Linux 4.0+). @returns false when it cannot (not Linux, not ours).
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * The highest RSS of a process since it started or since `resetPeakRss` (VmHWM in
 * `/proc/PID/status`), bytes: a true peak, unlike sampling, which misses short spikes. Null when unreadable.
 */
export function peakRssBytes(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU share (1.0 = one core busy) and RSS (mean and peak, bytes) of processes over a window. */
export interface Usage {
  wallMs: number;
  /** CPU seconds per wall second, summed over the processes. */
  cores: number;
  rssMeanBytes: number;
  rssPeakBytes: number;
}

/**
 * Samples the RSS of `pids` every `everyMs` until `stop()`, and their CPU time at start and stop.
 * @returns `stop`, which resolves with the usage over the window (RSS summed over the processes).
 */
export function sampleUsage(pids: number[], everyMs = 250): { stop(): Usage } {
  const t0 = performance.now();
  const cpu0 = pids.map((p) => cpuSeconds(p) ?? 0);
  const rss: number[] = [];
  const take = () => rss.push(pids.reduce((sum, p) => sum + (rssBytes(p) ?? 0), 0));
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      const wallMs = performance.now() - t0;
      const cpu = pids.reduce((sum, p, i) => sum + ((cpuSeconds(p) ?? 0) - cpu0[i]), 0);
      return {
        wallMs,
        cores: cpu / (wallMs / 1000),
        rssMeanBytes: rss.reduce((a, b) => a + b, 0) / rss.length,
        rssPeakBytes: Math.max(...rss),
      };
    },
  };
}

/** One line about the machine: cores, CPU model, memory, Node version, load average now. */
export function machineDescription(): string {
  let load = '';
  try {
    load = `, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} at the start`;
  } catch {
    // not Linux
  }
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${formatBytes(totalmem())}, Node ${process.version}, ${process.platform} ${process.arch}${load}`;
}

export const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
export const fmtPct = (cores: number) => `${(cores * 100).toFixed(1)}%`;
export const fmtMiB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
