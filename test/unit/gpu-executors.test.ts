/**
 * How executors hand a task its GPUs: docker through the Engine API's `HostConfig.DeviceRequests`
 * with explicit UUIDs (what `docker run --gpus '"device=…"'` sends; never a Count, which the daemon
 * maps to the first N indices), exec through CUDA_VISIBLE_DEVICES; and how an engine's "could not
 * select device driver" start error becomes the node's `docker.gpuError` and the task's message.
 */
import { describe, expect, it } from 'vitest';
import { createOptions } from '../../agent/executors/docker-container.js';
import { GpuRuntime, gpusFromLabel, isNoGpuRuntime } from '../../agent/executors/docker-gpus.js';
import { cudaEnv } from '../../agent/executors/exec.js';
import type { ExecutorContext, Fingerprint } from '../../agent/executors/executor.js';
import { CutterError } from '../../shared/errors.js';
import { DockerSpecSchema } from '../../shared/schemas/index.js';

const A = 'GPU-aaaaaaaa-0000-4000-8000-000000000000';
const B = 'GPU-bbbbbbbb-0000-4000-8000-000000000000';
const ctx = (gpus?: string[]): ExecutorContext => ({
  taskId: 't1',
  attempt: 1,
  node: 'box',
  memory: 0,
  output: () => true,
  progress: () => undefined,
  started: () => undefined,
  ...(gpus ? { gpus } : {}),
});
const spec = DockerSpecSchema.parse({ kind: 'docker', image: 'img' });

describe('GPUs in the container create body', () => {
  it('names the reserved GPUs by UUID, Count 0, capability gpu', () => {
    expect(createOptions(spec, ctx([A, B])).HostConfig?.DeviceRequests).toEqual([
      { Driver: '', Count: 0, DeviceIDs: [A, B], Capabilities: [['gpu']], Options: {} },
    ]);
  });

  it('asks for no device without GPUs (the body is as before)', () => {
    expect(createOptions(spec, ctx()).HostConfig).not.toHaveProperty('DeviceRequests');
  });

  it('labels the container with its GPUs, so a restarted agent lists them again for the re-adopted task', () => {
    const labels = createOptions(spec, ctx([A, B])).Labels ?? {};
    expect(labels['io.cutter.gpus']).toBe(`${A},${B}`);
    expect(gpusFromLabel(labels)).toEqual({ gpus: [A, B] });
    expect(gpusFromLabel(createOptions(spec, ctx()).Labels ?? {})).toEqual({});
    expect(gpusFromLabel({ 'io.cutter.gpus': `0,${A},;rm -rf` })).toEqual({ gpus: [A] });
  });
});

describe('GPUs in an exec task’s environment', () => {
  it('CUDA_VISIBLE_DEVICES lists the UUIDs, in PCI bus order; nothing without GPUs', () => {
    expect(cudaEnv([A, B])).toEqual({ CUDA_VISIBLE_DEVICES: `${A},${B}`, CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
    expect(cudaEnv(undefined)).toEqual({});
    expect(cudaEnv([])).toEqual({});
  });
});

describe('an engine without a GPU runtime', () => {
  it('is recognised by the engine’s words (20.10: HTTP 500; newer: 400), whatever the driver in quotes', () => {
    expect(isNoGpuRuntime('could not select device driver "" with capabilities: [[gpu]]')).toBe(true);
    expect(isNoGpuRuntime('(HTTP code 400) bad parameter - could not select device driver "nvidia" with capabilities: [[gpu]]')).toBe(true);
    expect(isNoGpuRuntime('OCI runtime create failed: exec: "nope": executable file not found')).toBe(false);
  });

  it('fails the task with the fix, announces docker.gpuError at once, and forgets it when the engine restarts', async () => {
    const told: Fingerprint[] = [];
    const rt = new GpuRuntime(async () => ({ available: true, capacity: { docker: { available: true, ...rt.field() } } }));
    rt.notify = (fp) => told.push(fp);
    rt.check('box', 'some other start error');
    expect(rt.field()).toEqual({});
    let err: unknown;
    try {
      rt.check('box', 'could not select device driver "" with capabilities: [[gpu]]');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CutterError);
    expect((err as CutterError).code).toBe('START_FAILED');
    expect((err as CutterError).message).toBe(
      `this node's Docker has no GPU runtime: install nvidia-container-toolkit on node box and restart Docker (the engine said: could not select device driver "" with capabilities: [[gpu]])`,
    );
    await new Promise((r) => setImmediate(r));
    expect(told[0]?.capacity?.docker?.gpuError).toMatch(/install nvidia-container-toolkit/);
    rt.clear();
    expect(rt.field()).toEqual({});
  });
});
