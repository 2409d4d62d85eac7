/**
 * Placement honours the node (issue 16): constraints on labels, the platform, free disk and the
 * node's announced policy are feasibility checks; each rejects before assignment with its code and
 * the words shared/reasons.ts makes of it.
 */
import { describe, expect, it } from 'vitest';
import { place } from '../../controller/scheduler/place.js';
import type { PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { formatRejection, formatRejections } from '../../shared/reasons.js';
import { cluster, expectPlaced, expectRejected, GiB, makeNode, MiB, reasonFor, req } from './scheduler-fixtures.js';
import { AMD64, ARM64, withFacts } from './scheduler-node-fit-fixtures.js';

/** A request with extra requirements (constraints, platform, disk) and what the policy judges. */
function want(extra: Partial<PlacementRequest['requirements']>, more: Partial<PlacementRequest> = {}): PlacementRequest {
  const r = req(0, { kind: more.kind });
  return { ...r, ...more, requirements: { ...r.requirements, ...extra } };
}

describe('constraints on node labels', () => {
  const gpu = withFacts(makeNode('gpu'), { labels: { gpu: 'rtx4090', site: 'home' } });
  const plain = withFacts(makeNode('plain'), { labels: { site: 'office' } });

  it('places a task with key=value only on the node with that label', () => {
    const r = want({ constraints: [{ key: 'gpu', op: '=', value: 'rtx4090' }] });
    expect(expectPlaced(place(r, cluster([plain, gpu]))).node).toBe('gpu');
  });

  it('rejects a node without the label, and one with another value, naming what was wanted and what the node has', () => {
    const r = want({
      constraints: [
        { key: 'site', op: '=', value: 'home' },
        { key: 'gpu', op: '=', value: 'a100' },
      ],
    });
    expect(reasonFor(plain, r)).toEqual({ code: 'constraint', wanted: 'site=home', has: 'office' });
    expect(reasonFor(gpu, r)).toEqual({ code: 'constraint', wanted: 'gpu=a100', has: 'rtx4090' });
    expect(formatRejection({ node: 'plain', ...reasonFor(plain, want({ constraints: [{ key: 'gpu', op: '=', value: 'a100' }] })) })).toBe(
      'constraint gpu=a100 not met: the node has no such label (cutter agent --label key=value)',
    );
  });

  it('key!=value excludes the node with that value and keeps nodes without the label (as Nomad does)', () => {
    const r = want({ constraints: [{ key: 'site', op: '!=', value: 'home' }] });
    expect(reasonFor(gpu, r)).toEqual({ code: 'constraint', wanted: 'site!=home', has: 'home' });
    expect(expectPlaced(place(r, cluster([gpu, makeNode('unlabelled')]))).node).toBe('unlabelled');
  });

  it('a label named like an Object.prototype member is not taken for one', () => {
    expect(reasonFor(plain, want({ constraints: [{ key: 'constructor', op: '=', value: '' }] }))).toEqual({
      code: 'constraint',
      wanted: 'constructor=',
    });
  });
});

describe('platform', () => {
  const pi = withFacts(makeNode('pi'), { platform: ARM64, dockerPlatform: ARM64 });
  const pc = withFacts(makeNode('pc'), { platform: AMD64, dockerPlatform: AMD64 });

  it('places linux/arm64 on the arm64 node and rejects the amd64 one with both platforms', () => {
    const r = want({ platform: ARM64 });
    expect(expectPlaced(place(r, cluster([pc, pi]))).node).toBe('pi');
    expect(reasonFor(pc, r)).toEqual({ code: 'platform', wanted: 'linux/arm64', has: 'linux/amd64' });
  });

  it("judges a container by the engine's platform and an exec task by the agent's own", () => {
    // A 64-bit kernel with a 32-bit userland: the engine says arm64, the agent's Node is arm/v7.
    const mixed = withFacts(makeNode('mixed', { executors: ['docker', 'exec'] }), {
      platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
      dockerPlatform: ARM64,
    });
    expectPlaced(place(want({ platform: ARM64 }), cluster([mixed])));
    expect(reasonFor(mixed, want({ platform: ARM64 }, { kind: 'exec' }))).toEqual({
      code: 'platform',
      wanted: 'linux/arm64',
      has: 'linux/arm/v7',
    });
    expectPlaced(place(want({ platform: { os: 'linux', architecture: 'arm', variant: 'v6' } }, { kind: 'exec' }), cluster([mixed])));
  });

  it('falls back to the agent platform when the engine does not say, and rejects a node that says nothing', () => {
    expectPlaced(place(want({ platform: AMD64 }), cluster([withFacts(makeNode('a'), { platform: AMD64 })])));
    expect(reasonFor(makeNode('old'), want({ platform: AMD64 }))).toEqual({
      code: 'platform',
      wanted: 'linux/amd64',
      detail: 'its agent does not announce its platform (an older agent)',
    });
  });

  it('a task without a platform goes anywhere', () => {
    expectPlaced(place(want({}), cluster([makeNode('old')])));
  });
});

describe('free disk', () => {
  it('rejects a node with less free disk than --disk, with both figures', () => {
    const n = withFacts(makeNode('n'), { disk: 5 * GiB });
    expect(reasonFor(n, want({ disk: 10 * GiB }))).toEqual({ code: 'disk', needed: 10 * GiB, free: 5 * GiB });
    expect(formatRejection({ node: 'n', code: 'disk', needed: 10 * GiB, free: 5 * GiB })).toBe('needs 10.0 GiB free disk, has 5.0 GiB');
    expectPlaced(place(want({ disk: 5 * GiB }), cluster([n])));
  });

  it("counts Docker's root dir for containers and the data dir for exec tasks", () => {
    const n = withFacts(makeNode('n', { executors: ['docker', 'exec'] }), { disk: 50 * GiB, dockerDisk: 1 * GiB });
    expect(reasonFor(n, want({ disk: 2 * GiB }))).toEqual({ code: 'disk', needed: 2 * GiB, free: 1 * GiB });
    expectPlaced(place(want({ disk: 2 * GiB }, { kind: 'exec' }), cluster([n])));
  });

  it('rejects a node that does not announce its free disk when the task asks for some', () => {
    expect(reasonFor(makeNode('old'), want({ disk: 1 }))).toMatchObject({
      code: 'disk',
      needed: 1,
      detail: expect.stringContaining('older agent'),
    });
  });
});

describe("the node's announced policy", () => {
  const strict = withFacts(makeNode('strict', { executors: ['docker', 'exec'] }), {
    policy: { allowedImages: ['cutter-test/*'], maxTaskMemory: 64 * MiB, execAllowlist: ['echo', '/bin/true'] },
  });
  const open = makeNode('open', { executors: ['docker', 'exec'] });

  it("places an image outside a node's allowedImages on the other node, and says which rule", () => {
    const r = want({}, { admit: { image: 'evil/miner', memoryLimit: 32 * MiB } });
    expect(expectPlaced(place(r, cluster([strict, open]))).node).toBe('open');
    expect(reasonFor(strict, r)).toEqual({ code: 'policy', detail: 'image evil/miner is not allowed here (allowedImages: cutter-test/*)' });
  });

  it('applies maxTaskMemory after defaultTaskMemory, as the agent does', () => {
    expect(reasonFor(strict, want({}, { admit: { image: 'cutter-test/busybox' } }))).toEqual({
      code: 'policy',
      detail: 'containers here must set a memory limit of at most 64.0 MiB (maxTaskMemory)',
    });
    const withDefault = withFacts(strict, {
      policy: { allowedImages: ['cutter-test/*'], maxTaskMemory: 64 * MiB, defaultTaskMemory: 32 * MiB },
    });
    expectPlaced(place(want({}, { admit: { image: 'cutter-test/busybox' } }), cluster([withDefault])));
  });

  it("rejects an exec command outside the node's execAllowlist; a node without exec says no-exec", () => {
    const r = want({}, { kind: 'exec', admit: { command: 'sh' } });
    expect(reasonFor(strict, r)).toEqual({ code: 'policy', detail: 'command sh is not allowed here (execAllowlist: echo, /bin/true)' });
    expectPlaced(place(want({}, { kind: 'exec', admit: { command: 'echo' } }), cluster([strict])));
    expect(reasonFor(makeNode('noexec'), r).code).toBe('no-exec');
  });

  it('no node admits it: every node is named with its reason', () => {
    const p = expectRejected(place(want({}, { kind: 'exec', admit: { command: 'sh' } }), cluster([strict, makeNode('noexec')])));
    expect(formatRejections(p.rejections)).toBe(
      'noexec: does not run exec tasks (start its agent with --allow-exec); strict: its policy refuses the task: command sh is not allowed here (execAllowlist: echo, /bin/true)',
    );
  });
});
