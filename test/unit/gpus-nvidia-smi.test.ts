/**
 * GPU discovery (agent/gpus.ts) against the format NVIDIA documents for
 * `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`: one row per GPU, cells separated by
 * ", ", memory in MiB, unsupported values as `[N/A]` / `[Not Supported]`; and the documented exit
 * codes (9 no driver, 12 no NVML, 18 version mismatch) and a missing binary. The process-level
 * cases run the repo's nvidia-smi double (test/fixtures/gpu/bin/nvidia-smi) and small scripts.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  GpuInventory,
  NVIDIA_SMI_ARGS,
  type NvidiaProbe,
  numericCell,
  parseNvidiaSmiCsv,
  probeNvidia,
  stateForExit,
} from '../../agent/gpus.js';
import { GpuSchema } from '../../shared/schemas/index.js';
import { ROOT, tempDir } from '../harness.js';

const MiB = 1024 ** 2;
const DOUBLE = join(ROOT, 'test/fixtures/gpu/bin/nvidia-smi');
const A = 'GPU-8f6e2c1a-3b4d-4e5f-9a0b-1c2d3e4f5a6b';
const B = 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

/** A script that prints `out`, writes `err` to stderr and exits with `code`. */
function script(body: string): string {
  const path = join(tempDir('cutter-nvsmi-'), 'nvidia-smi');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('parseNvidiaSmiCsv: the documented CSV, noheader, nounits', () => {
  it('reads one GPU per row, memory MiB as bytes, keyed by UUID', () => {
    const csv =
      `0, ${A}, NVIDIA GeForce RTX 4090, 00000000:01:00.0, 550.54.14, 24564, 1024, 23540, 3, 41\n` +
      `1, ${B}, NVIDIA GeForce RTX 4090, 00000000:02:00.0, 550.54.14, 24564, 0, 24564, 0, 38\n`;
    const { gpus, skipped } = parseNvidiaSmiCsv(csv);
    expect(skipped).toBe(0);
    expect(gpus).toEqual([
      {
        vendor: 'NVIDIA',
        model: 'NVIDIA GeForce RTX 4090',
        uuid: A,
        index: 0,
        pciBusId: '00000000:01:00.0',
        driverVersion: '550.54.14',
        memoryTotal: 24564 * MiB,
        memoryUsed: 1024 * MiB,
        memoryFree: 23540 * MiB,
        utilizationPercent: 3,
        temperatureC: 41,
      },
      expect.objectContaining({ uuid: B, index: 1, memoryUsed: 0, utilizationPercent: 0, memoryFree: 24564 * MiB }),
    ]);
    for (const g of gpus) expect(GpuSchema.parse(g)).toEqual(g);
  });

  it('reads [N/A], [Not Supported] and other bracketed markers as absent, never 0', () => {
    const csv = `0, ${A}, NVIDIA GeForce RTX 3060 Laptop GPU, 00000000:01:00.0, 546.01, 6144, [N/A], [Not Supported], [N/A], [Unknown Error]\n`;
    const [g] = parseNvidiaSmiCsv(csv).gpus;
    expect(g).toMatchObject({ memoryTotal: 6144 * MiB, memoryUsed: null, memoryFree: null, utilizationPercent: null, temperatureC: null });
    expect(numericCell('[Insufficient Permissions]')).toBeNull();
    expect(numericCell('')).toBeNull();
    expect(numericCell('0')).toBe(0);
    expect(numericCell('12.5')).toBe(12.5);
  });

  it('keeps a name with commas whole, takes CRLF line ends and skips blank lines', () => {
    const csv = `\r\n0, ${A}, Tesla, Rev A, 00000000:3B:00.0, 535.1, 16384, 10, 16374, 7, 50\r\n\r\n`;
    const { gpus } = parseNvidiaSmiCsv(csv);
    expect(gpus).toHaveLength(1);
    expect(gpus[0]).toMatchObject({ model: 'Tesla, Rev A', pciBusId: '00000000:3B:00.0', memoryFree: 16374 * MiB, temperatureC: 50 });
  });

  it('drops rows without a GPU UUID or with too few cells, and counts them', () => {
    const csv = `0, [N/A], Ghost, 0, 1, 2, 3, 4, 5, 6\n1, ${B}, short row\nNo devices were found\n`;
    expect(parseNvidiaSmiCsv(csv)).toEqual({ gpus: [], skipped: 3 });
  });

  it('asks for exactly the documented query with the mandatory format', () => {
    expect(NVIDIA_SMI_ARGS).toEqual([
      '--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu',
      '--format=csv,noheader,nounits',
    ]);
  });
});

describe('exit codes and a missing binary become distinct states', () => {
  it.each([
    [9, 'no-driver', /driver is not loaded/],
    [12, 'no-nvml', /NVML library was not found/],
    [18, 'reboot-needed', /reboot the node/],
    [15, 'failed', /exit code 15/],
  ] as const)('exit %i is %s', (code, state, words) => {
    const r = stateForExit(code, 'Failed to initialize NVML: Driver/library version mismatch\n');
    expect(r.state).toBe(state);
    expect(r.error).toMatch(words);
    expect(r.error).toContain('(nvidia-smi: Failed to initialize NVML: Driver/library version mismatch)');
  });

  it('an nvidia-smi that exits 9 (the double, fed NVIDIA’s no-driver answer) is no-driver, not "no GPU"', async () => {
    vi.stubEnv('CUTTER_TEST_NVIDIA_SMI', join(ROOT, 'test/fixtures/gpu/no-driver.json'));
    const p = await probeNvidia([DOUBLE]);
    expect(p).toMatchObject({ state: 'no-driver', gpus: [] });
    expect(p.error).toMatch(/exit 9/);
  });

  it('exits 12 and 18 from a real process are no-nvml and reboot-needed', async () => {
    expect((await probeNvidia([script('echo "NVML: not found" >&2; exit 12')])).state).toBe('no-nvml');
    const mismatch = await probeNvidia([script('echo "Failed to initialize NVML: Driver/library version mismatch"; exit 18')]);
    expect(mismatch.state).toBe('reboot-needed');
  });

  it('no binary anywhere is not-installed; a missing first path falls back to the next (the WSL path)', async () => {
    const missing = join(tempDir('cutter-nvsmi-'), 'nvidia-smi');
    expect(await probeNvidia([missing, `${missing}-too`])).toMatchObject({ state: 'not-installed', gpus: [] });
    const found = await probeNvidia([missing, DOUBLE]);
    expect(found.state).toBe('ok');
    expect(found.gpus.map((g) => g.uuid)).toEqual([A, B]);
    // The double's second GPU says [N/A] for utilization: absent, not 0.
    expect(found.gpus[1].utilizationPercent).toBeNull();
  });

  it('an nvidia-smi that hangs is killed at the timeout and reported failed', async () => {
    const p = await probeNvidia([script('sleep 5')], 300);
    expect(p.state).toBe('failed');
    expect(p.error).toMatch(/no answer within 300 ms/);
  });

  it('output that is not the documented CSV is failed, not an empty GPU list', async () => {
    const p = await probeNvidia([script('echo "garbage without commas"')]);
    expect(p).toMatchObject({ state: 'failed', skipped: 1 });
  });
});

describe('the nvidia-smi double follows the query interface', () => {
  it('prints the requested fields in the requested order, with header and units unless told not to', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(DOUBLE, ['--query-gpu=memory.free,uuid', '--format=csv'], { encoding: 'utf8' });
    expect(out).toBe(`memory.free [MiB], uuid\n23540 MiB, ${A}\n24564 MiB, ${B}\n`);
    let refused: { status?: number; stdout?: string } = {};
    try {
      execFileSync(DOUBLE, ['--query-gpu=uuid,bogus', '--format=csv'], { encoding: 'utf8' });
    } catch (err) {
      refused = err as typeof refused;
    }
    expect(refused.status).toBe(2);
    expect(refused.stdout).toContain('Field "bogus" is not a valid field to query.');
  });
});

describe('GpuInventory', () => {
  it('probes at most once per period and serves the last answer meanwhile', async () => {
    let calls = 0;
    const answer: NvidiaProbe = { state: 'ok', gpus: [], skipped: 0 };
    const inv = new GpuInventory(60_000, async () => {
      calls++;
      return answer;
    });
    await inv.refresh();
    inv.refreshIfDue();
    inv.refreshIfDue();
    expect(calls).toBe(1);
    expect(inv.current).toBe(answer);
  });

  it('a probe that throws is a failed state, not an exception', async () => {
    const inv = new GpuInventory(0, async () => {
      throw new Error('boom');
    });
    expect((await inv.refresh()).state).toBe('failed');
    expect(inv.uuids()).toEqual([]);
  });
});
