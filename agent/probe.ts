/**
 * The capacity probe, with systeminformation: memory as MemAvailable (`mem().available`, not
 * `free`, which leaves out reclaimable cache — protocol-facts §4.2), CPU cores and current load
 * (`currentLoad()`, sampled between calls — §4.1), GPUs (`graphics()`, probed once: it spawns
 * lspci and nvidia-smi — §4.3).
 */
import { cpus } from 'node:os';
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

/** Reads memory and CPU now. ~1-30 ms once warm. */
export async function probeHost(): Promise<HostCapacity> {
  const [mem, load] = await Promise.all([si.mem(), si.currentLoad().catch(() => null)]);
  const loadPercent = Math.min(100, Math.max(0, load?.currentLoad ?? 0));
  return {
    cores: cpus().length || 1,
    loadPercent: Number.isFinite(loadPercent) ? Math.round(loadPercent * 10) / 10 : 0,
    memoryTotal: mem.total,
    memoryAvailable: mem.available,
  };
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
