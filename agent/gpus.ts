/**
 * NVIDIA GPU discovery through `nvidia-smi`'s query interface (NVIDIA, "nvidia-smi" documentation,
 * https://docs.nvidia.com/deploy/nvidia-smi/index.html, and `nvidia-smi --help-query-gpu`):
 *   nvidia-smi --query-gpu=index,uuid,name,… --format=csv,noheader,nounits
 * prints one row per GPU, cells separated by `, `, no header and no units: memory.* in MiB,
 * utilization.gpu in %, temperature.gpu in °C. A value the driver does not give is printed as
 * `[N/A]`, `[Not Supported]` (or `[Unknown Error]`, `[Insufficient Permissions]`): any non-numeric
 * cell is "absent" here, never 0. GPUs are keyed by UUID (`GPU-…`): NVIDIA documents that the
 * index "can change at each boot".
 *
 * Exit codes (nvidia-smi docs, RETURN VALUE): 9 the NVIDIA driver is not loaded, 12 the NVML
 * library is not found; 18 "Driver/library version mismatch" after a driver upgrade without a
 * reboot (seen in the wild: anderskm/gputil #55); no binary at all is spawn ENOENT. Each becomes a
 * distinct state with a line for the node's owner, instead of "no GPU".
 *
 * The binary is looked up on PATH, then at WSL2's `/usr/lib/wsl/lib/nvidia-smi` (injected from the
 * Windows driver; often not on PATH for services, root or SSH logins: microsoft/WSL #8794).
 */
import { execFile } from 'node:child_process';
import type { Gpu } from '../shared/schemas/index.js';

/** The fields cutter queries, in this order (the parser reads cells by position). */
export const NVIDIA_SMI_FIELDS = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'driver_version',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'temperature.gpu',
] as const;

/** The command line: `--query-gpu=…` plus the mandatory `--format` (no header line, no units). */
export const NVIDIA_SMI_ARGS = [`--query-gpu=${NVIDIA_SMI_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];

/** Where WSL2 puts the Linux nvidia-smi of the Windows driver. */
export const WSL_NVIDIA_SMI = '/usr/lib/wsl/lib/nvidia-smi';

/** Longest wait for nvidia-smi, ms (a wedged driver can hang it). */
export const NVIDIA_SMI_TIMEOUT_MS = 10_000;
/** Most output read from nvidia-smi, bytes (64 GPUs take about 10 KiB). */
export const NVIDIA_SMI_MAX_OUTPUT = 256 * 1024;
/** Most GPUs announced (the wire's bound, shared/schemas/node.ts). */
export const MAX_GPUS = 64;

const MIB = 1024 * 1024;

/**
 * What the probe found:
 * - `ok`: nvidia-smi answered (its GPU list may be empty);
 * - `not-installed`: no nvidia-smi on PATH nor at the WSL path (ENOENT);
 * - `no-driver`: exit 9, the NVIDIA kernel driver is not loaded;
 * - `no-nvml`: exit 12, the NVML library is missing;
 * - `reboot-needed`: exit 18, driver and library versions differ (upgraded without a reboot);
 * - `failed`: any other exit code, a timeout, or output that is not the documented CSV.
 */
export type NvidiaState = 'ok' | 'not-installed' | 'no-driver' | 'no-nvml' | 'reboot-needed' | 'failed';

/** The result of one probe: the GPUs (wire shape, memory in bytes) and, when not `ok`, a line for the node's owner. */
export interface NvidiaProbe {
  state: NvidiaState;
  gpus: Gpu[];
  /** One line saying what is wrong and what to do (absent when `ok`). */
  error?: string;
  /** Rows that were not the documented CSV (wrong cell count, no UUID): dropped. */
  skipped: number;
}

/** A cell as a number, or null when it is not one (`[N/A]`, `[Not Supported]`, empty, garbage). */
export function numericCell(cell: string | undefined): number | null {
  const v = cell?.trim() ?? '';
  if (!/^-?\d+(\.\d+)?$/.test(v)) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** A text cell, or undefined when absent (`[N/A]` and the other bracketed markers, empty). */
function textCell(cell: string | undefined, max: number): string | undefined {
  const v = cell?.trim() ?? '';
  if (v === '' || /^\[.*\]$/.test(v) || v === 'N/A') return undefined;
  return v.slice(0, max);
}

const UUID = /^GPU-[0-9A-Za-z-]{1,120}$/;

/**
 * Parses `--query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits` output into GPUs.
 * Rows are split on `,` and trimmed; a name containing commas (the one free-text field) is joined
 * back. A row without a `GPU-…` UUID, or with too few cells, is dropped and counted in `skipped`.
 * Memory (MiB) becomes bytes; every non-numeric cell is null (absent), never 0.
 */
export function parseNvidiaSmiCsv(text: string): { gpus: Gpu[]; skipped: number } {
  const gpus: Gpu[] = [];
  let skipped = 0;
  const n = NVIDIA_SMI_FIELDS.length;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') continue;
    let cells = line.split(',');
    if (cells.length < n) {
      skipped++;
      continue;
    }
    // index, uuid, name…, then the 7 fields after the name.
    if (cells.length > n) cells = [cells[0], cells[1], cells.slice(2, cells.length - 7).join(','), ...cells.slice(-7)];
    const [index, uuid, name, bus, driver, total, used, free, util, temp] = cells.map((c) => c.trim());
    if (!UUID.test(uuid) || gpus.length >= MAX_GPUS) {
      skipped++;
      continue;
    }
    const bytes = (c: string) => {
      const mib = numericCell(c);
      return mib === null || mib < 0 ? null : Math.round(mib * MIB);
    };
    const idx = numericCell(index);
    const utilization = numericCell(util);
    const temperature = numericCell(temp);
    const pciBusId = textCell(bus, 64);
    const driverVersion = textCell(driver, 64);
    gpus.push({
      vendor: 'NVIDIA',
      model: textCell(name, 200) ?? 'unknown',
      memoryTotal: bytes(total),
      memoryFree: bytes(free),
      uuid,
      ...(idx !== null && Number.isInteger(idx) && idx >= 0 ? { index: idx } : {}),
      ...(pciBusId ? { pciBusId } : {}),
      ...(driverVersion ? { driverVersion } : {}),
      memoryUsed: bytes(used),
      utilizationPercent: utilization !== null && utilization >= 0 && utilization <= 100 ? utilization : null,
      temperatureC: temperature,
    });
  }
  return { gpus, skipped };
}

/** The state and owner's line for an nvidia-smi that exited with `code` (stderr's first line appended when it says something). */
export function stateForExit(code: number, stderr = ''): { state: NvidiaState; error: string } {
  const said = stderr.trim().split('\n')[0]?.slice(0, 200);
  const tail = said ? ` (nvidia-smi: ${said})` : '';
  switch (code) {
    case 9:
      return { state: 'no-driver', error: `the NVIDIA driver is not loaded: install or load it (nvidia-smi exit 9)${tail}` };
    case 12:
      return { state: 'no-nvml', error: `the NVML library was not found: reinstall the NVIDIA driver (nvidia-smi exit 12)${tail}` };
    case 18:
      return {
        state: 'reboot-needed',
        error: `the NVIDIA driver and its library differ in version (upgraded without a reboot): reboot the node (nvidia-smi exit 18)${tail}`,
      };
    default:
      return { state: 'failed', error: `nvidia-smi failed with exit code ${code}${tail}` };
  }
}

/** What running one binary gave. */
type RunResult =
  | { ok: true; stdout: string }
  | { ok: false; missing: true }
  | { ok: false; missing: false; state: NvidiaState; error: string };

/** Runs `bin NVIDIA_SMI_ARGS` with a timeout and bounded output. Never rejects. */
function runOnce(bin: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      bin,
      NVIDIA_SMI_ARGS,
      { timeout: timeoutMs, maxBuffer: NVIDIA_SMI_MAX_OUTPUT, killSignal: 'SIGKILL', encoding: 'utf8', windowsHide: true },
      (err, stdout, stderr) => {
        if (!err) return resolve({ ok: true, stdout });
        const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
        if (e.code === 'ENOENT') return resolve({ ok: false, missing: true });
        if (typeof e.code === 'number') return resolve({ ok: false, missing: false, ...stateForExit(e.code, stderr) });
        if (e.killed)
          return resolve({ ok: false, missing: false, state: 'failed', error: `nvidia-smi gave no answer within ${timeoutMs} ms` });
        if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
          return resolve({
            ok: false,
            missing: false,
            state: 'failed',
            error: `nvidia-smi printed more than ${NVIDIA_SMI_MAX_OUTPUT} bytes`,
          });
        resolve({ ok: false, missing: false, state: 'failed', error: `cannot run ${bin}: ${e.message.slice(0, 200)}` });
      },
    );
  });
}

/**
 * Asks nvidia-smi for the node's NVIDIA GPUs: `nvidia-smi` on PATH, else WSL2's path. Never throws.
 * @param bins where to look, in order (tests pass their own).
 */
export async function probeNvidia(
  bins: readonly string[] = ['nvidia-smi', WSL_NVIDIA_SMI],
  timeoutMs = NVIDIA_SMI_TIMEOUT_MS,
): Promise<NvidiaProbe> {
  for (const bin of bins) {
    const r = await runOnce(bin, timeoutMs);
    if (!r.ok && r.missing) continue;
    if (!r.ok) return { state: r.state, gpus: [], error: r.error, skipped: 0 };
    const parsed = parseNvidiaSmiCsv(r.stdout);
    if (parsed.gpus.length === 0 && parsed.skipped > 0)
      return { state: 'failed', gpus: [], error: 'nvidia-smi printed rows that are not its documented CSV', skipped: parsed.skipped };
    return { state: 'ok', ...parsed };
  }
  return {
    state: 'not-installed',
    gpus: [],
    error: 'nvidia-smi not found (on PATH or at /usr/lib/wsl/lib): no NVIDIA driver here',
    skipped: 0,
  };
}

/**
 * The node's GPU inventory, refreshed in the background at most every `periodMs` (nvidia-smi takes
 * tens to hundreds of ms, and free memory moves with every program using the GPUs): readers get
 * the last probe at once and never wait for a new one.
 */
export class GpuInventory {
  private last: NvidiaProbe = { state: 'not-installed', gpus: [], skipped: 0 };
  private probedAt = 0;
  private running?: Promise<NvidiaProbe>;

  /**
   * @param periodMs shortest time between two probes, ms.
   * @param probe the probe (tests pass a double).
   */
  constructor(
    private readonly periodMs = 30_000,
    private readonly probe: () => Promise<NvidiaProbe> = () => probeNvidia(),
  ) {}

  /** The last probe's result. */
  get current(): NvidiaProbe {
    return this.last;
  }

  /** UUIDs of the GPUs the last probe found. */
  uuids(): string[] {
    return this.last.gpus.flatMap((g) => (g.uuid ? [g.uuid] : []));
  }

  /** Probes now (waits for a probe already running instead of starting a second). Never throws. */
  refresh(): Promise<NvidiaProbe> {
    this.running ??= this.probe()
      .catch((err): NvidiaProbe => ({ state: 'failed', gpus: [], error: `GPU probe failed: ${String(err)}`.slice(0, 300), skipped: 0 }))
      .then((p) => {
        this.last = p;
        this.probedAt = Date.now();
        return p;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * Starts a probe in the background when the last is older than the period and the node has an
   * NVIDIA stack worth asking again (a node without nvidia-smi is not probed every period).
   */
  refreshIfDue(): void {
    if (this.running || Date.now() - this.probedAt < this.periodMs) return;
    if (this.last.state === 'not-installed' && this.probedAt > 0) return;
    void this.refresh();
  }
}
