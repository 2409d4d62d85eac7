/** The CPU load the heartbeat announces (agent/probe.ts cpuLoadPercent), from os.cpus() time deltas. */
import type { CpuInfo } from 'node:os';
import si from 'systeminformation';
import { describe, expect, it } from 'vitest';
import { cpuLoadPercent, linuxMemory, parseMeminfo, probeHost } from '../../agent/probe.js';

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
