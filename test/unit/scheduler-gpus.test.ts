/**
 * GPU placement: only nodes with enough unheld GPUs whose free VRAM covers `--gpu-memory` are
 * feasible (a `gpus` rejection with the numbers otherwise); the chosen devices are held per device
 * in the controller's registry, so two tasks placed back to back get different GPUs; docker tasks
 * skip an engine without a GPU runtime; the agent refuses GPUs it does not have or that are held.
 */
import { describe, expect, it } from 'vitest';
import { gpuConflict } from '../../agent/tasks.js';
import { newAttempt } from '../../agent/task-events.js';
import { NodeRegistry } from '../../controller/registry.js';
import { place } from '../../controller/scheduler/place.js';
import type { NodeSnapshot, PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { formatRejections } from '../../shared/reasons.js';
import type { Gpu, GpuRequirement, NodeStatus } from '../../shared/schemas/index.js';
import { GiB, NOW, cluster, expectPlaced, expectRejected, makeNode, makeStatus } from './scheduler-fixtures.js';

const A = 'GPU-aaaaaaaa-0000-4000-8000-000000000000';
const B = 'GPU-bbbbbbbb-0000-4000-8000-000000000000';
const C = 'GPU-cccccccc-0000-4000-8000-000000000000';

const gpu = (uuid: string, index: number, free: number | null, total = 24 * GiB): Gpu => ({
  vendor: 'NVIDIA',
  model: 'NVIDIA GeForce RTX 4090',
  memoryTotal: total,
  memoryFree: free,
  uuid,
  index,
});

/** A node with these GPUs (and optionally what its capacity says besides). */
function gpuNode(
  node: string,
  gpus: Gpu[],
  extra: Partial<NonNullable<NodeStatus['capacity']>> = {},
  executors: ('docker' | 'exec')[] = ['docker', 'exec'],
): NodeSnapshot {
  const n = makeNode(node, { executors });
  return { ...n, status: { ...n.status, capacity: { ...n.status.capacity!, gpus, ...extra } } };
}

const req = (gpus: GpuRequirement, kind: 'docker' | 'exec' = 'exec'): PlacementRequest => ({
  kind,
  requirements: { memory: 0, cpus: 0, gpus },
});

describe('GPU feasibility and choice', () => {
  it('gives the GPUs with the most free VRAM and names them in the placement reason', () => {
    const p = expectPlaced(place(req({ count: 1 }), cluster([gpuNode('box', [gpu(A, 0, 10 * GiB), gpu(B, 1, 20 * GiB)])])));
    expect(p.gpus).toEqual([B]);
    expect(p.reason).toContain(`GPUs ${B}`);
    expect(expectPlaced(place(req({ count: 'all' }), cluster([gpuNode('box', [gpu(A, 0, 1), gpu(B, 1, 2)])]))).gpus).toEqual([B, A]);
  });

  it('places only where free VRAM per device covers --gpu-memory; the rejection says needed, free and the most free VRAM', () => {
    const small = gpuNode('small', [gpu(A, 0, 6 * GiB), gpu(B, 1, 7 * GiB)]);
    const big = gpuNode('big', [gpu(C, 0, 22 * GiB)]);
    const p = place(req({ count: 1, memory: 20 * GiB }), cluster([small, big]));
    expect(expectPlaced(p)).toMatchObject({ node: 'big', gpus: [C] });
    const r = expectRejected(place(req({ count: 1, memory: 20 * GiB }), cluster([small])));
    expect(r.rejections[0]).toMatchObject({ code: 'gpus', needed: 1, free: 0, gpuTotal: 2, gpuMemory: 20 * GiB, gpuFree: 7 * GiB });
    expect(formatRejections(r.rejections)).toBe('small: needs 1 GPU with 20.0 GiB free VRAM, has 0 of 2 free (most free VRAM 7.0 GiB)');
    // A GPU whose free memory the driver does not report never counts as having enough.
    expectRejected(place(req({ count: 1, memory: 1 }), cluster([gpuNode('wsl', [gpu(A, 0, null)])])));
  });

  it('holds GPUs per device: two tasks placed back to back get different GPUs, a third waits with the reason', () => {
    const registry = new NodeRegistry();
    const status = makeStatus('box', { executors: ['exec'] });
    registry.update({ ...status, capacity: { ...status.capacity!, gpus: [gpu(A, 0, 24 * GiB), gpu(B, 1, 24 * GiB)] } }, NOW);
    const chosen: string[] = [];
    for (const taskId of ['t1', 't2']) {
      const p = expectPlaced(place(req({ count: 1 }), registry.snapshot(NOW, 'spread')));
      registry.reserve(p.node, taskId, 0);
      registry.holdGpus(p.node, taskId, p.gpus!);
      chosen.push(...p.gpus!);
    }
    expect(new Set(chosen)).toEqual(new Set([A, B]));
    const third = expectRejected(place(req({ count: 1 }), registry.snapshot(NOW, 'spread')));
    expect(third.rejections[0]).toMatchObject({ node: 'box', code: 'gpus', needed: 1, free: 0, gpuTotal: 2, gpusHeld: 2 });
    expect(formatRejections(third.rejections)).toBe('box: needs 1 GPU, has 0 of 2 free (2 held by tasks)');
    // The first ends: its GPU is free again.
    registry.release('box', 't1');
    expect(expectPlaced(place(req({ count: 1 }), registry.snapshot(NOW, 'spread'))).gpus).toEqual([chosen[0]]);
  });

  it('counts GPUs the heartbeat lists as held (after a controller restart the registry has no placements of its own)', () => {
    const n = gpuNode('box', [gpu(A, 0, GiB), gpu(B, 1, GiB)]);
    const busy = { ...n, status: { ...n.status, running: [{ taskId: 'old', attempt: 1, memory: 0, gpus: [A] }] } };
    expect(expectPlaced(place(req({ count: 1 }), cluster([busy]))).gpus).toEqual([B]);
    expect(expectRejected(place(req({ count: 'all' }), cluster([busy]))).rejections[0]).toMatchObject({ code: 'gpus', needed: 2, free: 1 });
  });

  it('named devices: placed on the node that has them, refused where it has not', () => {
    const nodes = [gpuNode('a', [gpu(A, 0, GiB)]), gpuNode('b', [gpu(B, 0, GiB)])];
    expect(expectPlaced(place(req({ count: 1, devices: [B] }), cluster(nodes)))).toMatchObject({ node: 'b', gpus: [B] });
    const r = expectRejected(place(req({ count: 1, devices: [C] }), cluster(nodes)));
    expect(formatRejections(r.rejections)).toContain(`a: needs 1 GPU: it has no GPU ${C}`);
  });

  it('a node without GPUs says why (the NVIDIA probe’s words); docker skips an engine without a GPU runtime, exec does not', () => {
    const none = gpuNode('cpu', [], { nvidia: { state: 'no-driver', error: 'the NVIDIA driver is not loaded' } });
    expect(formatRejections(expectRejected(place(req({ count: 1 }), cluster([none]))).rejections)).toBe(
      'cpu: needs 1 GPU, has no GPU cutter can assign (the NVIDIA driver is not loaded)',
    );
    const noRuntime = gpuNode('box', [gpu(A, 0, GiB)], { docker: { available: true, gpuError: "this node's Docker has no GPU runtime" } });
    const r = expectRejected(place(req({ count: 1 }, 'docker'), cluster([noRuntime])));
    expect(formatRejections(r.rejections)).toBe("box: needs 1 GPU: this node's Docker has no GPU runtime");
    expect(expectPlaced(place(req({ count: 1 }, 'exec'), cluster([noRuntime]))).gpus).toEqual([A]);
  });

  it('tasks without GPUs are placed as before (no gpus field)', () => {
    const p = expectPlaced(place({ kind: 'exec', requirements: { memory: 0, cpus: 0 } }, cluster([gpuNode('box', [gpu(A, 0, GiB)])])));
    expect(p.gpus).toBeUndefined();
  });
});

describe('the agent checks the GPUs an assignment names', () => {
  it('refuses a GPU it does not have or one a running task holds', () => {
    const holder = newAttempt('t1', 1, 0, false);
    holder.gpus = [A];
    expect(gpuConflict([B], [A, B], [holder])).toBeNull();
    expect(gpuConflict([C], [A, B], [holder])).toBe(`it has no GPU ${C}`);
    expect(gpuConflict([A], [A, B], [holder])).toBe(`GPU ${A} is held by task t1`);
    holder.fenced = true;
    expect(gpuConflict([A], [A, B], [holder])).toBeNull();
  });
});

describe('Ollama placement and GPUs reserved for tasks', () => {
  it('a cold model load does not count on the free VRAM of a GPU a task holds', () => {
    const n = makeNode('gpu', { executors: ['docker'] });
    const base = {
      ...n,
      status: {
        ...n.status,
        offer: { ...n.status.offer!, executors: ['ollama' as const], maxMemory: 8 * GiB },
        capacity: {
          ...n.status.capacity!,
          gpus: [gpu(A, 0, 22 * GiB)],
          ollama: { available: true, models: [{ name: 'qwen:32b', size: 20 * GiB }], loaded: [] },
        },
      },
    };
    const ask: PlacementRequest = {
      kind: 'ollama',
      requirements: { memory: 0, cpus: 0 },
      ollama: { op: 'generate', model: 'qwen:32b', pull: false },
    };
    expect(expectPlaced(place(ask, cluster([base]))).node).toBe('gpu');
    const held = { ...base, gpusHeld: [A] };
    expect(expectRejected(place(ask, cluster([held]))).rejections[0]).toMatchObject({ code: 'model-too-big', gpuFree: 0 });
  });
});
