/**
 * GPU flags: `--gpus` (on `cutter run` and inside `docker run …`) and `cutter run --gpu-memory`.
 *
 * `--gpus` is read as the Docker CLI reads it (docker/cli `opts/gpus.go`): the value is one CSV
 * record (commas separate fields, double quotes group them); a field without `=` is a count
 * (`all` or a number); keys `count`, `device` (comma-separated ids, so it must be quoted:
 * `'"device=GPU-a,GPU-b"'`), `driver`, `capabilities`, `options`; each key once; no count and no
 * device means 1. Unquoted `device=0,1` reads as device 0 plus a count of 1, which the daemon
 * refuses ("cannot set both Count and DeviceIDs"): refused here with the quoting that works.
 *
 * What cutter cannot honour is refused with the reason: device indices (they differ from node to
 * node and between boots: NVIDIA's nvidia-smi docs), MIG devices, drivers other than NVIDIA's,
 * capabilities and options (cutter asks for the `gpu` capability only).
 */
import { CutterError } from '../shared/errors.js';
import type { GpuRequirement } from '../shared/schemas/index.js';
import { parseBytes } from '../shared/units.js';

/** The most GPUs one task may ask for (the wire's bound). */
export const MAX_GPU_COUNT = 64;

const UUID = /^GPU-[0-9A-Za-z-]{1,120}$/;

/** One CSV record's fields (RFC 4180 quoting, as Go's encoding/csv reads it). @throws on an unterminated quote. */
export function csvFields(value: string): string[] {
  const fields: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '"' && value[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw new Error('a quote is not closed');
  fields.push(cur);
  return fields;
}

/**
 * Parses a `--gpus` value into GPU requirements (without `memory`).
 * @param flag how the flag was spelt, for messages (`--gpus`, `docker run --gpus`).
 * @throws CutterError INVALID_ARGUMENT saying why and what to give instead.
 */
export function parseGpus(value: string, flag = '--gpus'): Omit<GpuRequirement, 'memory'> {
  const bad = (why: string) => new CutterError('INVALID_ARGUMENT', `${flag} ${value}: ${why}`);
  let fields: string[];
  try {
    fields = csvFields(value.trim());
  } catch (err) {
    throw bad((err as Error).message);
  }
  const seen = new Set<string>();
  let count: number | 'all' | undefined;
  let devices: string[] | undefined;
  const parseCount = (v: string) => {
    if (v === 'all') return 'all' as const;
    if (!/^\d+$/.test(v)) throw bad(`"${v}" is not a count: give a number of GPUs or all`);
    const n = Number(v);
    if (n < 1) throw bad('a task asks for at least 1 GPU (leave --gpus out for none)');
    if (n > MAX_GPU_COUNT) throw bad(`at most ${MAX_GPU_COUNT} GPUs`);
    return n;
  };
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = eq < 0 ? 'count' : field.slice(0, eq);
    const val = eq < 0 ? field : field.slice(eq + 1);
    if (eq < 0 && devices)
      throw bad(`device ids are comma-separated inside one quoted field: ${flag} '"device=${[...devices, val].join(',')}"'`);
    if (seen.has(key)) throw bad(`${key} can be given only once`);
    seen.add(key);
    switch (key) {
      case 'count':
        count = parseCount(val);
        break;
      case 'device':
        devices = val.split(',').map((d) => d.trim());
        break;
      case 'driver':
        if (val !== '' && val !== 'nvidia') throw bad(`cutter hands out NVIDIA GPUs only (driver=nvidia), not driver=${val}`);
        break;
      case 'capabilities':
        throw bad(
          'cutter asks for the gpu capability only; to choose the NVIDIA driver capabilities set -e NVIDIA_DRIVER_CAPABILITIES=compute,utility',
        );
      case 'options':
        throw bad('device request options are not supported');
      default:
        throw bad(`unexpected key "${key}" (give all, a count, or '"device=GPU-…,GPU-…"')`);
    }
  }
  if (devices) {
    if (count !== undefined)
      throw bad(`give either a count or devices, not both (quote the list: ${flag} '"device=${devices.join(',')}"')`);
    if (devices.length === 0 || devices.some((d) => d === '')) throw bad('device= needs GPU UUIDs');
    for (const d of devices) {
      if (/^\d+$/.test(d))
        throw bad(
          `device ${d} is an index: indices differ from node to node and between boots; give a count (--gpus 1) or UUIDs (cutter nodes show NODE lists them)`,
        );
      if (d.startsWith('MIG-')) throw bad(`${d}: MIG devices are not supported; give whole GPUs by UUID`);
      if (!UUID.test(d)) throw bad(`${d} is not a GPU UUID (GPU-…; cutter nodes show NODE lists them)`);
    }
    if (new Set(devices).size !== devices.length) throw bad('a device is named twice');
    if (devices.length > MAX_GPU_COUNT) throw bad(`at most ${MAX_GPU_COUNT} GPUs`);
    return { count: devices.length, devices };
  }
  return { count: count ?? 1 };
}

/**
 * The task's GPU requirements from `cutter run --gpus`, `--gpu-memory` and the `docker run --gpus`
 * already parsed (cutter's own `--gpus` wins). `--gpu-memory` alone means one GPU.
 * @returns undefined when no GPU is asked for.
 * @throws CutterError INVALID_ARGUMENT naming the flag.
 */
export function gpuRequirement(
  flags: { gpus?: string; gpuMemory?: string },
  fromDocker?: Omit<GpuRequirement, 'memory'>,
): GpuRequirement | undefined {
  const base = flags.gpus !== undefined ? parseGpus(flags.gpus) : fromDocker;
  if (flags.gpuMemory === undefined) return base;
  let memory: number;
  try {
    memory = parseBytes(flags.gpuMemory);
  } catch (err) {
    throw new CutterError('INVALID_ARGUMENT', `--gpu-memory ${flags.gpuMemory}: ${(err as Error).message}`);
  }
  if (memory <= 0)
    throw new CutterError('INVALID_ARGUMENT', `--gpu-memory ${flags.gpuMemory}: give the free VRAM each GPU needs, e.g. 20g`);
  return { ...(base ?? { count: 1 }), memory };
}
