/** Platforms in Docker's names, constraint and headroom flags, the machine id and the announced policy (issue 16). */
import { describe, expect, it } from 'vitest';
import { policyOffer } from '../../agent/placement-facts.js';
import { parseConstraint, placementRequirements } from '../../cli/placement-flags.js';
import { parseHeadroom } from '../../shared/headroom.js';
import { machineId } from '../../shared/machine-id.js';
import { formatPlatform, parsePlatform, platformOfEngine, platformOfProcess, platformRuns } from '../../shared/platform.js';
import { AgentConfigSchema } from '../../shared/config.js';

describe('platforms', () => {
  it("maps Node's process.arch to Docker's names, with the ARM version", () => {
    expect(platformOfProcess('linux', 'x64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(platformOfProcess('linux', 'arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(platformOfProcess('linux', 'arm', '6')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(platformOfProcess('linux', 'arm', '7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(platformOfProcess('linux', 'ia32')).toEqual({ os: 'linux', architecture: '386' });
  });

  it("maps docker info's uname-style Architecture", () => {
    expect(platformOfEngine('linux', 'x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(platformOfEngine('linux', 'aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(platformOfEngine('linux', 'armv7l')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(platformOfEngine(undefined, 'x86_64')).toBeNull();
  });

  it('parses --platform as docker run does, and refuses what is not one', () => {
    expect(parsePlatform('linux/arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(formatPlatform(parsePlatform('linux/arm/v7'))).toBe('linux/arm/v7');
    expect(() => parsePlatform('arm64')).toThrow(/os\/architecture/);
  });

  it('an ARM node runs its own and older ARM versions; arm64 is arm64/v8', () => {
    const arm = (variant: string) => ({ os: 'linux', architecture: 'arm', variant });
    expect(platformRuns(arm('v6'), arm('v7'))).toBe(true);
    expect(platformRuns(arm('v7'), arm('v6'))).toBe(false);
    expect(platformRuns({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformRuns({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'amd64' })).toBe(false);
  });
});

describe('run flags', () => {
  it('parses key=value and key!=value constraints and refuses others', () => {
    expect(parseConstraint('gpu=rtx4090')).toEqual({ key: 'gpu', op: '=', value: 'rtx4090' });
    expect(parseConstraint('site!=home')).toEqual({ key: 'site', op: '!=', value: 'home' });
    expect(() => parseConstraint('gpu')).toThrow(/key=value or key!=value/);
  });

  it('parses the headroom as a share of memory or a size', () => {
    expect(parseHeadroom('20%')).toEqual({ percent: 20 });
    expect(parseHeadroom('4g')).toEqual({ bytes: 4 * 1024 ** 3 });
    expect(() => parseHeadroom('120%')).toThrow(/up to 100%/);
  });

  it('always sends the machine id; the rest only when given', () => {
    expect(placementRequirements({}, undefined, 'm1')).toEqual({ machineId: 'm1' });
    expect(placementRequirements({ disk: '1g', preferLocal: true, constraint: ['a=b'] }, 'linux/arm64', 'm1')).toEqual({
      machineId: 'm1',
      disk: 1024 ** 3,
      preferLocal: true,
      constraints: [{ key: 'a', op: '=', value: 'b' }],
      platform: { os: 'linux', architecture: 'arm64' },
    });
  });
});

describe('machine id and policy', () => {
  it('is a keyed hash (the raw /etc/machine-id is not sent), stable, or the configured one', () => {
    expect(machineId()).toMatch(/^[0-9a-f]{32}$/);
    expect(machineId()).toBe(machineId());
    expect(machineId('lab-1')).toBe('lab-1');
  });

  it('refuses labels the offer could not carry, naming the label', () => {
    expect(AgentConfigSchema.parse({ labels: 'gpu=rtx4090,site=home' }).labels).toEqual({ gpu: 'rtx4090', site: 'home' });
    expect(AgentConfigSchema.safeParse({ labels: 'a b=1' }).error?.issues[0]?.message).toBe(
      'label key "a b" must be 1-64 characters without =, ! or spaces',
    );
    expect(AgentConfigSchema.safeParse({ labels: { k: 'v'.repeat(257) } }).success).toBe(false);
  });

  it("announces the agent's policy rules, leaving out a list too long for the wire", () => {
    const cfg = AgentConfigSchema.parse({
      allowedImages: 'python:*',
      execAllowlist: Array.from({ length: 200 }, (_, i) => `c${i}`),
      maxTaskMemory: '1g',
    });
    expect(policyOffer(cfg)).toEqual({ policy: { allowedImages: ['python:*'], maxTaskMemory: 1024 ** 3 }, omitted: ['execAllowlist'] });
  });
});
