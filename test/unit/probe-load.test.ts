/**
 * The host probe (agent/probe.ts): the CPU load the heartbeat announces (cpuLoadPercent, from
 * os.cpus() time deltas), memory from /proc/meminfo, and when the GPU probe loads systeminformation.
 */
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import type { CpuInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import si from 'systeminformation';
import { describe, expect, it } from 'vitest';
import { cpuLoadPercent, linuxGpuListable, linuxMemory, parseMeminfo, probeHost } from '../../agent/probe.js';
import { ROOT, tempDir } from '../harness.js';

const cpu = (user: number, sys: number, idle: number): CpuInfo => ({ model: 'x', speed: 1, times: { user, nice: 0, sys, idle, irq: 0 } });

describe('cpuLoadPercent', () => {
  it('is the busy share of the time between two samples, over all cores', () => {
    // core 0: 300 busy of 400; core 1: 100 busy of 400 → 400 busy of 800 = 50 %
    expect(cpuLoadPercent([cpu(0, 0, 0), cpu(0, 0, 0)], [cpu(200, 100, 100), cpu(50, 50, 300)])).toBe(50);
    expect(cpuLoadPercent([cpu(10, 0, 0)], [cpu(10, 0, 1000)])).toBe(0);
    expect(cpuLoadPercent([cpu(0, 0, 0)], [cpu(2, 0, 1)])).toBe(66.7);
  });

  it('is 0 when the samples cannot be compared', () => {
    expect(cpuLoadPercent([cpu(0, 0, 0)], [cpu(1, 0, 1), cpu(1, 0, 1)])).toBe(0);
    expect(cpuLoadPercent([cpu(5, 0, 5)], [cpu(5, 0, 5)])).toBe(0);
  });
});

describe('probeHost', () => {
  it('reports this machine: cores, a load in 0-100, memory with available ≤ total', async () => {
    const h = await probeHost();
    expect(h.cores).toBeGreaterThan(0);
    expect(h.loadPercent).toBeGreaterThanOrEqual(0);
    expect(h.loadPercent).toBeLessThanOrEqual(100);
    expect(h.memoryAvailable).toBeGreaterThan(0);
    expect(h.memoryAvailable).toBeLessThanOrEqual(h.memoryTotal);
  });
});

describe('parseMeminfo (/proc/meminfo, kB there, bytes here)', () => {
  it('takes MemTotal and MemAvailable', () => {
    const text = 'MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers:          100 kB\n';
    expect(parseMeminfo(text)).toEqual({ total: 24_576_000 * 1024, available: 20_000_000 * 1024 });
  });

  it('counts free, buffers and page cache as available on a kernel without MemAvailable (before 3.14)', () => {
    const text = 'MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\nSwapCached: 7 kB\n';
    expect(parseMeminfo(text)).toEqual({ total: 1000 * 1024, available: 420 * 1024 });
  });

  it('gives nothing for a text without MemTotal', () => {
    expect(parseMeminfo('')).toBeUndefined();
    expect(parseMeminfo('MemFree: 5 kB\n')).toBeUndefined();
  });

  it.runIf(process.platform === 'linux')('agrees with systeminformation on this machine', async () => {
    const [mine, theirs] = [linuxMemory()!, await si.mem()];
    expect(mine.total).toBe(theirs.total);
    // Both read the live figure, a moment apart: within 64 MiB of each other.
    expect(Math.abs(mine.available - theirs.available)).toBeLessThan(64 * 1024 ** 2);
  });
});

describe('probeGpus on Linux', () => {
  /** A PATH of one fresh directory holding an executable `lspci` that lists no device (or none when `withLspci` is false). */
  const pathWith = (withLspci: boolean) => {
    const dir = tempDir();
    if (withLspci) {
      writeFileSync(join(dir, 'lspci'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(dir, 'lspci'), 0o755);
    }
    return dir;
  };

  it('can list controllers only where lspci or vcgencmd is on PATH, as systeminformation reads them', () => {
    expect(linuxGpuListable(pathWith(false))).toBe(false);
    expect(linuxGpuListable(pathWith(true))).toBe(true);
  });

  it.runIf(process.platform === 'linux')(
    'does not load systeminformation where it could list nothing, and asks it where it could',
    async () => {
      // Fresh processes: this one has systeminformation loaded already (imported above).
      const run = async (path: string) => {
        const script = `
        const { probeGpus } = await import(${JSON.stringify(`${ROOT}dist/agent/probe.js`)});
        const gpus = await probeGpus();
        const { createRequire } = await import('node:module');
        const loaded = Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/systeminformation/'));
        console.log(JSON.stringify({ gpus, loaded }));`;
        const r = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
          encoding: 'utf8',
          env: { ...process.env, PATH: path },
          timeout: 30_000,
        });
        return JSON.parse(r.stdout) as { gpus: unknown[]; loaded: boolean };
      };
      expect(await run(pathWith(false))).toEqual({ gpus: [], loaded: false });
      // The stand-in lspci lists nothing: systeminformation is asked, and finds no controller either.
      expect(await run(`${pathWith(true)}:/usr/bin:/bin`)).toEqual({ gpus: [], loaded: true });
    },
  );
});
