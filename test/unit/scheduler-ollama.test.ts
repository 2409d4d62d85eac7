/**
 * Model-aware placement: the pure scheduler fed NodeStatus values that pass the wire schema.
 * Tiers (loaded > on disk > must pull), the memory and GPU fit of a cold load, balancing by
 * requests in flight, the placement file's rules, and Ollama's `name` = `name:latest`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkBatcher } from '../../agent/chunk-batcher.js';
import { place } from '../../controller/scheduler/place.js';
import type { ClusterSnapshot, NodeSnapshot, PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { loadPlacementFile } from '../../controller/ollama-placement-file.js';
import { canonicalModel, ruleMatches, sameModel } from '../../shared/ollama.js';
import { NodeStatusSchema, type NodeStatus } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const NOW = 1_700_000_000_000;

interface Opts {
  models?: [string, number][];
  loaded?: string[];
  /** offered memory, bytes */
  offer?: number;
  gpuFree?: number;
  ollamaInFlight?: number;
  reservedTasks?: number;
  noOllama?: boolean;
}

function node(id: string, o: Opts = {}): NodeSnapshot {
  const status: NodeStatus = NodeStatusSchema.parse({
    v: 1,
    node: id,
    state: 'online',
    version: '0.1.0',
    seq: 1,
    ts: NOW,
    heartbeatMs: 1_000,
    capacity: {
      cpu: { cores: 8, loadPercent: 10 },
      memory: { total: 64 * GiB, available: 60 * GiB },
      gpus: o.gpuFree === undefined ? [] : [{ vendor: 'NVIDIA', model: 'RTX 4090', memoryTotal: 24 * GiB, memoryFree: o.gpuFree }],
      docker: { available: false },
      ollama: o.noOllama
        ? { available: false, error: 'Ollama at http://127.0.0.1:11434 is not reachable (ECONNREFUSED)' }
        : {
            available: true,
            version: '0.12.6',
            models: (o.models ?? []).map(([name, size]) => ({ name, size })),
            loaded: (o.loaded ?? []).map((name) => ({ name, size: (o.models ?? []).find(([n]) => n === name)?.[1] ?? 0, sizeVram: 0 })),
          },
    },
    offer: { maxMemory: o.offer ?? 16 * GiB, maxTasks: 8, executors: o.noOllama ? [] : ['ollama'], labels: {}, lostAfterMs: 0 },
    running: Array.from({ length: o.ollamaInFlight ?? 0 }, (_, i) => ({ taskId: `t${i}`, attempt: 1, memory: 0, kind: 'ollama' })),
  });
  return { node: id, status, lastSeenMs: NOW, reservedMemory: 0, reservedTasks: o.reservedTasks ?? 0 };
}

const req = (model: string, extra: Partial<NonNullable<PlacementRequest['ollama']>> = {}, pinned?: string): PlacementRequest => ({
  kind: 'ollama',
  requirements: { memory: 0, cpus: 0, ...(pinned ? { node: pinned } : {}) },
  ollama: { op: 'generate', model, pull: false, ...extra },
});
const snap = (nodes: NodeSnapshot[], rules?: ClusterSnapshot['modelRules']): ClusterSnapshot => ({
  now: NOW,
  nodes,
  policy: 'spread',
  modelRules: rules,
});

describe('model-aware placement', () => {
  it('prefers where the model is loaded, then where it is on disk, then a node that can pull it', () => {
    const nodes = [
      node('a', { models: [['llama3:8b', 5 * GiB]] }),
      node('b', { models: [['llama3:8b', 5 * GiB]], loaded: ['llama3:8b'] }),
      node('c'),
    ];
    const loaded = place(req('llama3:8b'), snap(nodes));
    expect(loaded).toMatchObject({ ok: true, node: 'b' });
    expect(loaded.ok && loaded.reason).toMatch(/model loaded/);
    expect(place(req('llama3:8b'), snap([nodes[0], nodes[2]]))).toMatchObject({ ok: true, node: 'a' });
    // c has no copy; it is a candidate only when the request may pull, sized by the copy another node has …
    const pull = place(req('llama3:8b', { pull: true }), snap([nodes[2], node('d', { models: [['llama3:8b', 5 * GiB]], offer: 1 * GiB })]));
    expect(pull).toMatchObject({ ok: true, node: 'c' });
    expect(pull.ok && pull.reason).toMatch(/model must pull/);
    // … or when the request allows a pull of a model the mesh does not know.
    expect(place(req('mistral:7b'), snap([nodes[2]]))).toMatchObject({
      ok: false,
      rejections: [{ node: 'c', code: 'model-missing', model: 'mistral:7b' }],
    });
    expect(place(req('mistral:7b', { pull: true }), snap([nodes[2]]))).toMatchObject({ ok: true, node: 'c' });
  });

  it('loads a cold model only where it fits free memory or one GPU’s free memory (measured, so other programs count)', () => {
    const big = 20 * GiB;
    const small = node('small', { models: [['qwen:32b', big]], offer: 8 * GiB });
    const r = place(req('qwen:32b'), snap([small]));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.rejections[0]).toEqual({
      node: 'small',
      code: 'model-too-big',
      model: 'qwen:32b',
      needed: big,
      free: 8 * GiB,
      gpuFree: 0,
      onDisk: true,
    });
    expect(place(req('qwen:32b'), snap([node('gpu', { models: [['qwen:32b', big]], offer: 8 * GiB, gpuFree: 22 * GiB })]))).toMatchObject({
      ok: true,
      node: 'gpu',
    });
    const busyGpu = place(req('qwen:32b'), snap([node('gpu', { models: [['qwen:32b', big]], offer: 8 * GiB, gpuFree: 6 * GiB })]));
    expect(!busyGpu.ok && busyGpu.rejections[0]).toMatchObject({ code: 'model-too-big', needed: big, free: 8 * GiB, gpuFree: 6 * GiB });
    // Loaded already: nothing more to fit.
    expect(place(req('qwen:32b'), snap([node('x', { models: [['qwen:32b', big]], loaded: ['qwen:32b'], offer: 1 * GiB })]))).toMatchObject({
      ok: true,
    });
  });

  it('balances nodes holding the model the same way by requests in flight (heartbeat plus placed since)', () => {
    const mk = (id: string, inFlight: number, reserved = 0) =>
      node(id, { models: [['phi3:latest', GiB]], loaded: ['phi3:latest'], ollamaInFlight: inFlight, reservedTasks: reserved });
    expect(place(req('phi3'), snap([mk('a', 2), mk('b', 1), mk('c', 3)]))).toMatchObject({ node: 'b' });
    expect(place(req('phi3'), snap([mk('a', 0, 2), mk('b', 1)]))).toMatchObject({ node: 'b' });
    const r = place(req('phi3'), snap([mk('a', 0), mk('b', 0)]));
    expect(r.ok && r.reason).toMatch(/1 of 2 such nodes, 0 requests in flight/);
  });

  it('applies the first matching placement rule unless a node is named', () => {
    const nodes = [
      node('server', { models: [['gemma2:2b', 1.6e9]] }),
      node('notebook', {
        models: [
          ['gemma2:2b', 1.6e9],
          ['llama3:70b', 10 * GiB],
        ],
        loaded: ['gemma2:2b'],
        offer: 48 * GiB,
      }),
    ];
    const rules = [
      { model: 'gemma2:*', nodes: ['server'] },
      { minSize: 12 * GiB, nodes: ['notebook'] },
    ];
    const g = place(req('gemma2:2b'), snap(nodes, rules));
    expect(g).toMatchObject({ ok: true, node: 'server' });
    expect(g.ok && g.reason).toMatch(/placement rule 1 \(model gemma2:\* → server\)/);
    expect(g.ok && g.reason).toMatch(/rejected notebook: placement rule 1 .* sends gemma2:2b elsewhere/);
    expect(place(req('gemma2:2b', {}, 'notebook'), snap(nodes, rules))).toMatchObject({ ok: true, node: 'notebook' });
    // 10 GiB is under the 12 GiB threshold: no rule applies, the node with the model takes it.
    expect(place(req('llama3:70b'), snap(nodes, rules))).toMatchObject({ ok: true, node: 'notebook' });
    const bigger = [node('server', { models: [['llama3:70b', 40 * GiB]], offer: 60 * GiB }), node('notebook', { offer: 60 * GiB })];
    // 40 GiB: the rule sends it to notebook, which must pull it (allowed by the request).
    expect(place(req('llama3:70b', { pull: true }), snap(bigger, rules))).toMatchObject({ ok: true, node: 'notebook' });
  });

  it('rejects nodes without Ollama with the probe’s reason', () => {
    const r = place(req('phi3'), snap([node('a', { noOllama: true })]));
    expect(!r.ok && r.rejections[0]).toEqual({
      node: 'a',
      code: 'no-ollama',
      detail: 'Ollama at http://127.0.0.1:11434 is not reachable (ECONNREFUSED)',
    });
    expect(!r.ok && r.message).toBe('no node can take this ollama generate of phi3 now');
  });

  it('treats a name without a tag as :latest, as Ollama does', () => {
    expect(canonicalModel('llama3')).toBe('llama3:latest');
    expect(canonicalModel('hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M')).toBe('hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M');
    expect(canonicalModel('registry:5000/team/model')).toBe('registry:5000/team/model:latest');
    expect(sameModel('phi3', 'phi3:latest')).toBe(true);
    expect(sameModel('phi3:mini', 'phi3:latest')).toBe(false);
    expect(ruleMatches({ model: 'gemma2', nodes: ['x'] }, 'gemma2:latest', null)).toBe(true);
    expect(ruleMatches({ model: 'gemma2', nodes: ['x'] }, 'gemma2:2b', null)).toBe(false);
    expect(ruleMatches({ minSize: GiB, nodes: ['x'] }, 'anything', null)).toBe(false);
  });
});

describe('placement file', () => {
  const write = (text: string, ext = 'yaml') => {
    const p = join(mkdtempSync(join(tmpdir(), 'cutter-rules-')), `rules.${ext}`);
    writeFileSync(p, text);
    return p;
  };
  it('reads YAML and JSON, sizes as text', () => {
    expect(
      loadPlacementFile(write('rules:\n  - model: "gemma2:2b"\n    nodes: [server]\n  - minSize: 12g\n    nodes: [notebook]\n')).rules,
    ).toEqual([
      { model: 'gemma2:2b', nodes: ['server'] },
      { minSize: 12 * GiB, nodes: ['notebook'] },
    ]);
    expect(loadPlacementFile(write('{"rules":[{"maxSize":1024,"nodes":["pi"]}]}', 'json')).rules).toEqual([
      { maxSize: 1024, nodes: ['pi'] },
    ]);
  });
  it('names the file and the rule of a mistake', () => {
    expect(() => loadPlacementFile(write('rules:\n  - nodes: [server]\n'))).toThrow(
      /placement file .*rules\.yaml: rules\.0: a rule needs model, minSize or maxSize/,
    );
    expect(() => loadPlacementFile(write('rules:\n  - model: x\n    nodes: [server]\n    nodse: [typo]\n'))).toThrow(
      /rules\.0: Unrecognized key: "nodse"/,
    );
    expect(() => loadPlacementFile(write('rules:\n  - minSize: lots\n    nodes: [a]\n'))).toThrow(
      /rules\.0\.minSize: "lots" is not a size/,
    );
    expect(() => loadPlacementFile(write('rules: [\n'))).toThrow(/cannot read placement file/);
  });
});

describe('chunk batching', () => {
  it('sends a chunk at once when nothing is unacknowledged, and gathers what comes meanwhile into the next batch', async () => {
    const batches: number[][] = [];
    let ack!: () => void;
    const b = new ChunkBatcher((c) => {
      batches.push(c.map((x) => x.i as number));
      return new Promise<void>((r) => (ack = r));
    }, 1_000);
    b.push({ i: 1 });
    expect(batches).toEqual([[1]]);
    b.push({ i: 2 });
    b.push({ i: 3 });
    expect(batches).toEqual([[1]]);
    ack();
    await Promise.resolve();
    await Promise.resolve();
    expect(batches).toEqual([[1], [2, 3]]);
    ack();
    await new Promise((r) => setTimeout(r, 0));
    b.push({ i: 4 });
    expect(batches).toEqual([[1], [2, 3], [4]]);
    b.push({ i: 5 });
    b.end();
    expect(batches).toEqual([[1], [2, 3], [4], [5]]);
  });
  it('does not wait for an ack longer than maxWaitMs, nor past maxBytes', async () => {
    const batches: number[] = [];
    const never = new Promise<void>(() => undefined);
    const b = new ChunkBatcher(
      (c) => {
        batches.push(c.length);
        return never;
      },
      10,
      100,
    );
    b.push({ x: 'a' });
    b.push({ x: 'b' });
    expect(batches).toEqual([1]);
    await new Promise((r) => setTimeout(r, 30));
    expect(batches).toEqual([1, 1]);
    for (let i = 0; i < 4; i++) b.push({ x: 'y'.repeat(30) });
    expect(batches).toEqual([1, 1, 3]);
    b.end();
    expect(batches.reduce((a, n) => a + n, 0)).toBe(6);
  });
});
