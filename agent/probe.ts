/**
 * The capacity probe, with systeminformation: memory as MemAvailable (`mem().available`, not
 * `free`, which leaves out reclaimable cache — protocol-facts §4.2) and GPUs (`graphics()`, probed
 * once: it spawns lspci and nvidia-smi — §4.3). CPU cores and current load come from Node's
 * `os.cpus()` times, sampled between calls — what systeminformation's `currentLoad()` computes
 * (§4.1), without the `cat /proc/stat | grep cpu` shell pipeline it runs with execSync on Linux
 * on every call: three processes per heartbeat, and the agent's event loop blocked until they
 * end, which on a loaded machine delayed the heartbeat it was probing for.
 */
import { type CpuInfo, cpus } from 'node:os';
import si from 'systeminformation';
import type { Gpu } from '../shared/schemas/index.js';

export interface HostCapacity {
  cores: number;
  /** 0-100 (%). */
  loadPercent: number;
  /** bytes */
  memoryTotal: number;
  /** bytes */
  memoryAvailable: number;
}

/** Reads memory and CPU now. ~1 ms once warm; spawns nothing. */
export async function probeHost(): Promise<HostCapacity> {
  const mem = await si.mem();
  const now = cpus();
  const loadPercent = cpuLoadPercent(lastCpus, now);
  lastCpus = now;
  return {
    cores: now.length || 1,
    loadPercent,
    memoryTotal: mem.total,
    memoryAvailable: mem.available,
  };
}

/** The CPU times of the previous probe (the load is the busy share of the time between two probes). */
let lastCpus: CpuInfo[] = cpus();

/**
 * Busy share of all cores between two `os.cpus()` samples, 0-100 (%), one decimal: 100 × (1 −
 * idle / total) of the summed per-core time deltas (user, nice, sys, idle, irq; ms). 0 when the
 * samples are not comparable (core count changed, no time passed).
 */
export function cpuLoadPercent(before: readonly CpuInfo[], after: readonly CpuInfo[]): number {
  if (before.length !== after.length || after.length === 0) return 0;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < after.length; i++) {
    const a = after[i].times;
    const b = before[i].times;
    total += a.user - b.user + (a.nice - b.nice) + (a.sys - b.sys) + (a.idle - b.idle) + (a.irq - b.irq);
    idle += a.idle - b.idle;
  }
  if (!(total > 0)) return 0;
  const pct = 100 * (1 - idle / total);
  return Math.round(Math.min(100, Math.max(0, pct)) * 10) / 10;
}

/** Lists GPUs with memory in bytes where the driver reports it (systeminformation gives MiB). */
export async function probeGpus(): Promise<Gpu[]> {
  try {
    const g = await si.graphics();
    const mib = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 1024 * 1024) : null);
    return g.controllers
      .filter((c) => c.vendor || c.model)
      .slice(0, 64)
      .map((c) => ({
        vendor: c.vendor || 'unknown',
        model: c.model || 'unknown',
        memoryTotal: mib(c.memoryTotal ?? c.vram),
        memoryFree: mib(c.memoryFree),
      }));
  } catch {
    return [];
  }
}
