/**
 * Lending (issue 17), pure parts: time windows with an injected clock (local time, windows past
 * midnight), the verdict over an owner sample, policy patches and files, and the scheduler's
 * refusal of a node that is not lending, with its reason in "no node fits".
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lendingFromConfig } from '../../agent/lending/config.js';
import { place } from '../../controller/scheduler/place.js';
import {
  describeLending,
  inWindow,
  type LendingPolicy,
  LendingPolicySchema,
  lendingVerdict,
  type OwnerSample,
  parseWindow,
  patchPolicy,
  policyFromFile,
  LendingFileSchema,
} from '../../shared/lending.js';
import { formatRejections } from '../../shared/reasons.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';
import type { AgentConfig } from '../../shared/config.js';
import { tempDir } from '../harness.js';
import { cluster, makeNode, makeStatus, req } from './scheduler-fixtures.js';

/** Local time on a known weekday: 2026-12-07 is a Monday. */
const at = (day: 'mon' | 'tue' | 'fri' | 'sat' | 'sun', hh: number, mm = 0) =>
  new Date(2026, 11, { mon: 7, tue: 8, fri: 11, sat: 12, sun: 13 }[day], hh, mm);

const idle: OwnerSample = { onBattery: false, idleSec: 3_600, idleSource: 'logind', ownerCpuPercent: 5, freeMemory: 8 * 1024 ** 3 };
const policy = (p: Partial<LendingPolicy> = {}): LendingPolicy => LendingPolicySchema.parse(p);

describe('time windows', () => {
  it('reads days, ranges and times; * is the whole day', () => {
    const w = parseWindow('Mon-Fri 22:00-07:00');
    expect([...w.days].sort()).toEqual([1, 2, 3, 4, 5]);
    expect([w.start, w.end]).toEqual([22 * 60, 7 * 60]);
    expect(parseWindow('sat,sun *')).toMatchObject({ start: 0, end: 1440 });
    expect([...parseWindow('fri-mon').days].sort()).toEqual([0, 1, 5, 6]);
    expect([...parseWindow('*').days]).toHaveLength(7);
  });

  it('runs an overnight window into the next morning of each of its days', () => {
    const w = parseWindow('mon-fri 22:00-07:00');
    expect(inWindow(w, at('mon', 21, 59))).toBe(false);
    expect(inWindow(w, at('mon', 22, 0))).toBe(true);
    expect(inWindow(w, at('tue', 6, 59))).toBe(true); // Monday night
    expect(inWindow(w, at('tue', 7, 0))).toBe(false);
    expect(inWindow(w, at('sat', 3, 0))).toBe(true); // Friday night
    expect(inWindow(w, at('mon', 3, 0))).toBe(false); // Sunday night: sun is not in mon-fri
    expect(inWindow(w, at('sat', 22, 30))).toBe(false);
  });

  it('keeps a daytime window inside its day and end-exclusive', () => {
    const w = parseWindow('* 09:00-17:00');
    expect(inWindow(w, at('sun', 9, 0))).toBe(true);
    expect(inWindow(w, at('sun', 16, 59))).toBe(true);
    expect(inWindow(w, at('sun', 17, 0))).toBe(false);
    expect(inWindow(parseWindow('sat 20:00-24:00'), at('sat', 23, 59))).toBe(true);
  });

  it('refuses what is not a window, saying how one looks', () => {
    expect(() => parseWindow('mon-fri 22-07')).toThrow(/HH:MM/);
    expect(() => parseWindow('funday *')).toThrow(/not a day/);
    expect(() => parseWindow('mon 10:00-10:00')).toThrow(/same time/);
    expect(() => parseWindow('mon 25:00-26:00')).toThrow(/not a time/);
    expect(() => parseWindow('mon 10:00-11:00 extra')).toThrow(/more than days and times/);
  });
});

describe('lendingVerdict()', () => {
  it('is closed outside every window, naming them', () => {
    const p = policy({ windows: ['mon-fri 22:00-07:00', 'sat,sun *'] });
    expect(lendingVerdict(p, idle, at('tue', 12))).toEqual({ open: false, why: 'outside mon-fri 22:00-07:00, sat,sun *' });
    expect(lendingVerdict(p, idle, at('tue', 23)).open).toBe(true);
    expect(lendingVerdict(p, idle, at('sun', 12)).open).toBe(true);
  });

  it('reads each condition, the first failing one being the reason', () => {
    const now = at('mon', 12);
    expect(lendingVerdict(policy({ acOnly: true }), { ...idle, onBattery: true }, now)).toEqual({ open: false, why: 'on battery' });
    expect(lendingVerdict(policy({ acOnly: false }), { ...idle, onBattery: true }, now).open).toBe(true);
    expect(lendingVerdict(policy({ idleMinutes: 10 }), { ...idle, idleSec: 120 }, now)).toEqual({
      open: false,
      why: 'owner active (idle 2 of 10 min)',
    });
    expect(lendingVerdict(policy({ maxOwnerCpuPercent: 25 }), { ...idle, ownerCpuPercent: 63.4 }, now)).toEqual({
      open: false,
      why: 'owner CPU 63% > 25%',
    });
    expect(lendingVerdict(policy({ minFreeMemory: 2 * 1024 ** 3 }), { ...idle, freeMemory: 1024 ** 3 }, now)).toEqual({
      open: false,
      why: 'free memory 1.0 GiB < 2.0 GiB',
    });
    expect(lendingVerdict(policy({ enabled: false }), idle, now)).toEqual({ open: false, why: 'lending switched off' });
    expect(lendingVerdict(policy({ mode: 'always', acOnly: true }), { ...idle, onBattery: true }, now).open).toBe(true);
  });

  it('closes when an idle condition is set and the idle time is unknown (WSL2), and not on a first sample without CPU', () => {
    const v = lendingVerdict(
      policy({ idleMinutes: 5 }),
      { ...idle, idleSec: null, idleSource: "WSL2: Windows' idle time is not read" },
      at('mon', 1),
    );
    expect(v).toEqual({ open: false, why: "owner idle time unknown (WSL2: Windows' idle time is not read)" });
    expect(lendingVerdict(policy({ maxOwnerCpuPercent: 10 }), { ...idle, ownerCpuPercent: null }, at('mon', 1)).open).toBe(true);
  });

  it('reads as a person would: lending, suspended: on battery, closed: outside 22:00-07:00', () => {
    expect(describeLending({ state: 'lending' })).toBe('lending');
    expect(describeLending({ state: 'suspended', reason: 'on battery' })).toBe('suspended: on battery');
    expect(describeLending({ state: 'closed', reason: 'outside 22:00-07:00' })).toBe('closed: outside 22:00-07:00');
  });
});

describe('policy files and patches', () => {
  it('takes people units in a file and flags, and refuses unknown fields', () => {
    const f = LendingFileSchema.parse({ acOnly: true, minFreeMemory: '2g', preemptAfter: '90s', sample: '2s', windows: 'sat,sun *' });
    expect(policyFromFile(f)).toEqual({
      policy: { enabled: true, mode: 'auto', acOnly: true, minFreeMemory: 2 * 1024 ** 3, windows: ['sat,sun *'], preemptAfterMs: 90_000 },
      sampleMs: 2_000,
    });
    expect(LendingFileSchema.safeParse({ acOnly: true, idle: 3 }).success).toBe(false);
    expect(LendingFileSchema.safeParse({ windows: ['mon-fri 22-07'] }).success).toBe(false);
  });

  it('reads a policy file in YAML or JSON, with flags over it, and names the file and field of a wrong one', () => {
    const dir = tempDir();
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const yaml = file('lend.yaml', 'acOnly: true\nminFreeMemory: 2g\nwindows:\n  - "mon-fri 22:00-07:00"\nsample: 1s\n');
    expect(lendingFromConfig({ lendPolicy: yaml, lendIdleMinutes: 10 } as AgentConfig)).toEqual({
      policy: {
        enabled: true,
        mode: 'auto',
        acOnly: true,
        idleMinutes: 10,
        minFreeMemory: 2 * 1024 ** 3,
        windows: ['mon-fri 22:00-07:00'],
        preemptAfterMs: 600_000,
      },
      sampleMs: 1_000,
    });
    expect(lendingFromConfig({ lendPolicy: file('lend.json', '{"mode":"always"}') } as AgentConfig).policy).toMatchObject({
      mode: 'always',
    });
    expect(() => lendingFromConfig({ lendPolicy: file('typo.yaml', 'acOnyl: true\n') } as AgentConfig)).toThrow(
      /lending policy .*typo\.yaml: .*acOnyl/,
    );
    expect(() => lendingFromConfig({ lendPolicy: file('list.yaml', '- a\n') } as AgentConfig)).toThrow(
      /cannot read lending policy .*list\.yaml: it is not a mapping of policy fields/,
    );
    expect(() => lendingFromConfig({ lendPolicy: file('broken.yaml', 'a: [\n') } as AgentConfig)).toThrow(
      /cannot read lending policy .*broken\.yaml/,
    );
    expect(lendingFromConfig({} as AgentConfig)).toEqual({ sampleMs: 5_000 });
  });

  it('patches only what is given; null removes a condition', () => {
    const p = policy({ acOnly: true, idleMinutes: 10, windows: ['sat *'] });
    expect(patchPolicy(p, { idleMinutes: null, mode: 'always' })).toEqual({ ...p, idleMinutes: undefined, mode: 'always' });
    expect(patchPolicy(p, { windows: null }).windows).toBeUndefined();
  });
});

describe('the scheduler and a node that is not lending', () => {
  const withLending = (node: string, state: 'lending' | 'suspended' | 'closed', reason?: string) => ({
    ...makeNode(node),
    status: NodeStatusSchema.parse({
      ...makeStatus(node),
      lending: { state, ...(reason ? { reason } : {}), since: 0, policy: policy({ acOnly: true }), sampleMs: 5_000 },
    }),
  });

  it('does not place on a closed or suspended node, and says why in "no node fits"', () => {
    const p = place(req(), cluster([withLending('nb', 'closed', 'outside 22:00-07:00'), withLending('lap', 'suspended', 'on battery')]));
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.rejections).toEqual([
      { node: 'lap', code: 'lending', detail: 'suspended: on battery' },
      { node: 'nb', code: 'lending', detail: 'closed: outside 22:00-07:00' },
    ]);
    expect(formatRejections(p.rejections)).toContain('nb: not lending now: closed: outside 22:00-07:00');
  });

  it('places on a lending node, and on one without a policy (older agents) as before', () => {
    const p = place(req(), cluster([withLending('nb', 'lending'), withLending('lap', 'closed', 'on battery')]));
    expect(p.ok && p.node).toBe('nb');
    const q = place(req(), cluster([makeNode('old')]));
    expect(q.ok && q.node).toBe('old');
  });
});
