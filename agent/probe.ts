/**
 * The capacity probe: memory as MemAvailable (systeminformation's `mem().available`, not `free`,
 * which leaves out reclaimable cache — protocol-facts §4.2; read from /proc/meminfo itself on
 * Linux, where systeminformation is then only loaded for the GPU probe) and GPUs (`graphics()`, probed
 * once: it spawns lspci and nvidia-smi — §4.3). CPU cores and current load come from Node's
 * `os.cpus()` times, sampled between calls — what systeminformation's `currentLoad()` computes
 * (§4.1), without the `cat /proc/stat | grep cpu` shell pipeline it runs with execSync on Linux
 * on every call: three processes per heartbeat, and the agent's event loop blocked until they
 * end, which on a loaded machine delayed the heartbeat it was probing for.
 */
import { readFileSync } from 'node:fs';
import { type CpuInfo, cpus } from 'node:os';
import type { Gpu } from '../shared/schemas/index.js';
import { resolveCommand } from './executors/resolve-command.js';

/** systeminformation, imported on first use (on Linux, the first GPU probe). */
const systeminformation = async () => (await import('systeminformation')).default;

export interface HostCapacity {
  cores: number;
  /** 0-100 (%). */
  loadPercent: number;
  /** bytes */
  memoryTotal: number;
  /** bytes */
  memoryAvailable: number;
}

/**
 * Reads memory and CPU now. ~1 ms once warm; spawns nothing. On Linux memory comes from
 * /proc/meminfo directly (`linuxMemory`), elsewhere from systeminformation, imported on first use.
 */
export async function probeHost(): Promise<HostCapacity> {
  const mem = (process.platform === 'linux' && linuxMemory()) || (await (await systeminformation()).mem());
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

/**
 * MemTotal and MemAvailable of /proc/meminfo (kB there), in bytes — what systeminformation's
 * `mem()` reads on Linux (lib/memory.js: `available` is MemAvailable, or MemFree + Buffers + Cached
 * on kernels before 3.14 that lack it). Undefined when the file cannot be read or parsed. Read
 * synchronously: a procfs file is generated in memory, and one read costs less than the four
 * thread-pool round trips of `fs.promises.readFile` (open, fstat, read, close) at every heartbeat.
 */
export function linuxMemory(): { total: number; available: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/meminfo', 'latin1');
  } catch {
    return undefined;
  }
  return parseMeminfo(text);
}

/** The `{ total, available }` bytes of a /proc/meminfo text (see `linuxMemory`); undefined without MemTotal. */
export function parseMeminfo(text: string): { total: number; available: number } | undefined {
  const kB = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kB('MemTotal');
  if (!total) return undefined;
  const available = kB('MemAvailable') ?? (kB('MemFree') ?? 0) + (kB('Buffers') ?? 0) + (kB('Cached') ?? 0);
  return { total, available };
}

/**
 * Whether systeminformation's `graphics()` can find a GPU controller on this Linux machine. It
 * lists controllers only from `lspci -vvv` or, on a Raspberry Pi, from `vcgencmd get_mem gpu`
 * (systeminformation 5.33 lib/graphics.js, the `_linux` branch: clinfo and nvidia-smi only add to
 * what lspci listed). With neither command on PATH its answer is no controller, so the agent
 * need not load the library (~2 MiB of an idle agent's RSS, bench/profile.md) to hear it.
 */
export function linuxGpuListable(path = process.env.PATH): boolean {
  return resolveCommand('lspci', path).ok || resolveCommand('vcgencmd', path).ok;
}

/**
 * Lists GPUs with memory in bytes where the driver reports it (systeminformation gives MiB). On
 * Linux without lspci or vcgencmd, none, without loading systeminformation (`linuxGpuListable`).
 */
export async function probeGpus(): Promise<Gpu[]> {
  if (process.platform === 'linux' && !linuxGpuListable()) return [];
  try {
    const g = await (await systeminformation()).graphics();
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
