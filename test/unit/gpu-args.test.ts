/**
 * `--gpus` read as the Docker CLI reads it (docker/cli opts/gpus.go: one CSV record; a bare field
 * is a count; keys count, device, driver, capabilities, options) and `--gpu-memory`; what cutter
 * cannot honour is refused with the reason and what to give instead.
 */
import { describe, expect, it } from 'vitest';
import { parseDockerRun } from '../../cli/docker-args.js';
import { csvFields, gpuRequirement, parseGpus } from '../../cli/gpu-args.js';
import { CutterError } from '../../shared/errors.js';
import { RequirementsSchema } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const A = 'GPU-8f6e2c1a-3b4d-4e5f-9a0b-1c2d3e4f5a6b';
const B = 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CutterError);
    expect((err as CutterError).code).toBe('INVALID_ARGUMENT');
    return (err as CutterError).message;
  }
  throw new Error('expected a refusal');
}

describe('parseGpus: the forms docker run --gpus takes', () => {
  it.each([
    ['all', { count: 'all' }],
    ['2', { count: 2 }],
    ['count=3', { count: 3 }],
    ['all,driver=nvidia', { count: 'all' }],
    ['driver=nvidia', { count: 1 }],
    [`"device=${A},${B}"`, { count: 2, devices: [A, B] }],
    [`device=${A}`, { count: 1, devices: [A] }],
  ])('%s', (value, want) => {
    expect(parseGpus(value)).toEqual(want);
  });

  it('splits fields as Go’s CSV reader does (quotes group commas, "" is a quote)', () => {
    expect(csvFields('a,"b,c",d')).toEqual(['a', 'b,c', 'd']);
    expect(csvFields('"x""y"')).toEqual(['x"y']);
    expect(refusal(() => parseGpus('"device=GPU-a'))).toContain('quote is not closed');
  });

  it('refuses unquoted device lists the way the daemon would (device plus a count), showing the quoting', () => {
    const msg = refusal(() => parseGpus(`device=${A},${B}`));
    expect(msg).toContain(`'"device=${A},${B}"'`);
  });

  it('refuses device indices (they differ per node and boot), MIG devices and non-UUIDs, saying what to give', () => {
    expect(refusal(() => parseGpus('"device=0,1"'))).toMatch(/index: indices differ .* give a count \(--gpus 1\) or UUIDs/);
    expect(refusal(() => parseGpus(`"device=MIG-${A}/1/0"`))).toMatch(/MIG devices are not supported/);
    expect(refusal(() => parseGpus('"device=gpu0"'))).toMatch(/not a GPU UUID/);
  });

  it('refuses what cutter cannot honour: other drivers, capabilities, options, zero, too many, repeats', () => {
    expect(refusal(() => parseGpus('all,driver=amd'))).toMatch(/NVIDIA GPUs only/);
    expect(refusal(() => parseGpus('all,"capabilities=compute,utility"'))).toMatch(/NVIDIA_DRIVER_CAPABILITIES/);
    expect(refusal(() => parseGpus('all,options=x=y'))).toMatch(/options are not supported/);
    expect(refusal(() => parseGpus('0'))).toMatch(/at least 1 GPU/);
    expect(refusal(() => parseGpus('65'))).toMatch(/at most 64/);
    expect(refusal(() => parseGpus('two'))).toMatch(/not a count/);
    expect(refusal(() => parseGpus('1,count=2'))).toMatch(/only once/);
    expect(refusal(() => parseGpus('all,colour=red'))).toMatch(/unexpected key "colour"/);
  });
});

describe('docker run --gpus and cutter run --gpu-memory', () => {
  it('docker run --gpus is parsed into the task’s GPU needs (not refused any more)', () => {
    expect(parseDockerRun(['run', '--gpus', 'all', 'img', 'nvidia-smi']).gpus).toEqual({ count: 'all' });
    expect(parseDockerRun(['run', '--gpus=2', 'img']).gpus).toEqual({ count: 2 });
    expect(parseDockerRun(['run', 'img']).gpus).toBeUndefined();
    expect(refusal(() => parseDockerRun(['run', '--gpus', '"device=0"', 'img']))).toMatch(
      /^docker run --gpus "device=0": device 0 is an index/,
    );
  });

  it('cutter’s --gpus wins over docker’s; --gpu-memory alone means one GPU; the result passes the wire schema', () => {
    expect(gpuRequirement({ gpus: '1' }, { count: 'all' })).toEqual({ count: 1 });
    expect(gpuRequirement({}, { count: 2 })).toEqual({ count: 2 });
    expect(gpuRequirement({ gpuMemory: '20g' })).toEqual({ count: 1, memory: 20 * GiB });
    expect(gpuRequirement({ gpus: 'all', gpuMemory: '8g' })).toEqual({ count: 'all', memory: 8 * GiB });
    expect(gpuRequirement({})).toBeUndefined();
    const gpus = gpuRequirement({ gpus: `"device=${A}"`, gpuMemory: '1g' })!;
    expect(RequirementsSchema.parse({ gpus }).gpus).toEqual({ count: 1, devices: [A], memory: GiB });
    expect(refusal(() => gpuRequirement({ gpuMemory: 'lots' }))).toMatch(/^--gpu-memory lots/);
    expect(refusal(() => gpuRequirement({ gpuMemory: '0' }))).toMatch(/free VRAM each GPU needs/);
  });
});
