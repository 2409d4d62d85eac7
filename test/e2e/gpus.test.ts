/**
 * GPUs end to end with real processes (server, agent, CLI) and exec tasks. These machines have no
 * GPU, so the agent finds its GPUs through the repo's double of NVIDIA's documented nvidia-smi
 * query interface (test/fixtures/gpu/bin/nvidia-smi, first on the agent's PATH; two RTX 4090s of
 * 24564 MiB). What a user sees: the node announces both GPUs by UUID; `--gpus 1` hands a task one
 * of them as CUDA_VISIBLE_DEVICES; two concurrent 1-GPU tasks get different GPUs and a third waits
 * with the `gpus` reason naming the node (and runs on the freed GPU once one ends); `--gpu-memory`
 * beyond any GPU's free VRAM is refused with the reason before anything is assigned.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { GPU_A as A, GPU_AGENT_ENV, GPU_B as B } from './gpu-helpers.js';

const NODE = 'gpubox';

interface TaskJson {
  taskId: string;
  state: string;
  node: string | null;
  attempt: number;
  reason: string | null;
  placement: string | null;
}

describe('GPUs (exec tasks, nvidia-smi double)', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  const started: string[] = [];

  const task = async (id: string): Promise<TaskJson> => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
  const logs = async (id: string) => (await cli(['logs', id], { broker: url })).stdout;
  const accepted = () => agent.lines.filter((l) => l.msg === 'task accepted').length;
  /** A detached 1-GPU task that prints its CUDA_VISIBLE_DEVICES and sleeps; resolves with its id once running. */
  const holder = async (): Promise<string> => {
    const r = await cli(['run', '-d', '--gpus', '1', 'exec', '--', 'sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"; sleep 120'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    started.push(id);
    return id;
  };

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--allow-exec', '--max-tasks', '8'], GPU_AGENT_ENV);
  });
  afterAll(async () => {
    await Promise.all(started.map((id) => cli(['cancel', id], { broker: url }).catch(() => undefined)));
    await agent?.stop();
    await server?.stop();
  });

  it('the node announces its 2 GPUs with UUID, model and VRAM; nodes show and nodes list show them', async () => {
    const rows = JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url })).stdout);
    const gpus = rows.find((r: { node: string }) => r.node === NODE).status.capacity.gpus;
    expect(gpus).toEqual([
      expect.objectContaining({
        uuid: A,
        index: 0,
        model: 'NVIDIA GeForce RTX 4090',
        memoryTotal: 24564 * 1024 ** 2,
        memoryFree: 23540 * 1024 ** 2,
      }),
      expect.objectContaining({ uuid: B, index: 1, utilizationPercent: null, memoryFree: 24564 * 1024 ** 2 }),
    ]);
    const show = await cli(['nodes', 'show', NODE], { broker: url });
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/gpus:\s+2 \(driver 550\.54\.14\)/);
    expect(show.stdout).toMatch(new RegExp(`^0\\s+${A}\\s+NVIDIA GeForce RTX 4090\\s+23\\.0 GiB / 24\\.0 GiB\\s+3%\\s+41°C`, 'm'));
    expect(show.stdout).toMatch(new RegExp(`^1\\s+${B}\\s+NVIDIA GeForce RTX 4090\\s+24\\.0 GiB / 24\\.0 GiB\\s+-\\s+38°C`, 'm'));
    const list = await cli(['nodes', 'list'], { broker: url });
    expect(list.stdout).toMatch(/GPUs: 2 × NVIDIA GeForce RTX 4090/);
  });

  it('--gpus 1 gives an exec task one GPU as CUDA_VISIBLE_DEVICES (by UUID, PCI bus order)', async () => {
    const r = await cli(['run', '--gpus', '1', 'exec', '--', 'sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER"'], {
      broker: url,
    });
    expect(r.code, r.stderr).toBe(0);
    const [uuid, order] = r.stdout.trim().split(' ');
    expect([A, B]).toContain(uuid);
    expect(order).toBe('PCI_BUS_ID');
    // Without --gpus nothing is set (behaviour as before).
    const plain = await cli(['run', 'exec', '--', 'sh', '-c', 'echo "[$CUDA_VISIBLE_DEVICES]"'], { broker: url });
    expect(plain.stdout).toBe('[]\n');
  });

  it('two concurrent 1-GPU tasks get different GPUs; a third is refused (--no-queue) or waits with the reason, and runs once a GPU is free', async () => {
    const first = await holder();
    const second = await holder();
    const seen = await eventually(async () => {
      const [a, b] = [(await logs(first)).trim(), (await logs(second)).trim()];
      return a && b ? [a, b] : null;
    }, 20_000);
    expect(new Set(seen)).toEqual(new Set([A, B]));
    const placed = await task(second);
    expect(placed.placement).toContain(`GPUs ${seen[1]}`);

    const refused = await cli(['run', '--no-queue', '--gpus', '1', 'exec', '--', 'true'], { broker: url });
    expect(refused.code).toBe(125);
    expect(refused.stderr).toMatch(/no node can take this exec task/);
    expect(refused.stderr).toMatch(new RegExp(`^\\s+${NODE}: needs 1 GPU, has 0 of 2 free \\(2 held by tasks\\)`, 'm'));

    const third = await holder();
    const waiting = await eventually(async () => {
      const t = await task(third);
      return t.reason?.includes('GPU') ? t : null;
    });
    expect(waiting).toMatchObject({ state: 'queued', node: null, attempt: 0 });
    expect(waiting.reason).toContain(`${NODE}: needs 1 GPU, has 0 of 2 free (2 held by tasks)`);

    expect((await cli(['cancel', first], { broker: url })).code).toBe(0);
    const got = await eventually(async () => (await logs(third)).trim(), 20_000);
    expect(got).toBe(seen[0]);
  }, 90_000);

  it('--gpu-memory beyond every GPU’s free VRAM is refused with the reason, and nothing is assigned', async () => {
    const before = accepted();
    const r = await cli(['run', '--no-queue', '--gpu-memory', '30g', 'exec', '--', 'true'], { broker: url });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(new RegExp(`${NODE}: needs 1 GPU with 30\\.0 GiB free VRAM, has 0 of 2 free`));
    const j = await cli(['run', '--no-queue', '--gpu-memory', '30g', '--json', 'exec', '--', 'true'], { broker: url });
    expect(JSON.parse(j.stdout).error).toMatchObject({
      code: 'NO_FIT',
      rejections: [{ node: NODE, code: 'gpus', needed: 1, free: 0, gpuTotal: 2, gpuMemory: 30 * 1024 ** 3 }],
    });
    // Queued instead: it waits with the reason, never assigned.
    const q = await cli(['run', '-d', '--gpu-memory', '30g', 'exec', '--', 'true'], { broker: url });
    const id = q.stdout.trim();
    started.push(id);
    const t = await eventually(async () => {
      const s = await task(id);
      return s.reason ? s : null;
    });
    expect(t).toMatchObject({ state: 'queued', node: null, attempt: 0 });
    expect(t.reason).toContain('needs 1 GPU with 30.0 GiB free VRAM');
    expect(accepted()).toBe(before);
  });
});
