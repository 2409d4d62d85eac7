import { describe, expect, it } from 'vitest';
import { haDeviceConfig, haNodeId, haNodeState } from '../../controller/extensions/ha/discovery.js';
import { HaDeviceConfigSchema, HaNodeStateSchema, type NodeView } from '../../shared/schemas/index.js';
import { haTopics } from '../../shared/topics.js';

const GIB = 1024 ** 3;
const view = (node: string, extra: Partial<NodeView['status']> = {}): NodeView => ({
  node,
  state: 'online',
  drained: false,
  offlineReason: null,
  lastSeenAgoMs: 250,
  reservedMemory: 0,
  status: {
    v: 1,
    node,
    state: 'online',
    version: '1.2.3',
    seq: 1,
    ts: 0,
    heartbeatMs: 1000,
    running: [{ taskId: 't1', attempt: 1, memory: GIB }],
    capacity: {
      cpu: { cores: 8, loadPercent: 37.25 },
      memory: { total: 32 * GIB, available: 12 * GIB },
      gpus: [],
      docker: { available: true },
    },
    offer: { maxMemory: null, maxTasks: 4, executors: ['docker'], labels: {}, lostAfterMs: 0 },
    ...extra,
  },
});
const ctx = { prefix: 'cutter', topics: haTopics('cutter', 'homeassistant'), version: '9.9.9' };

describe('Home Assistant discovery payloads', () => {
  it('keeps ids to [a-zA-Z0-9_-], without collisions between ids that sanitise alike', () => {
    expect(haNodeId('cutter', 'gpu-box')).toBe('cutter_gpu-box');
    expect(haNodeId('cutter', 'a.b')).toMatch(/^cutter_a_b_[0-9a-f]{6}$/);
    expect(haNodeId('cutter', 'a.b')).not.toBe(haNodeId('cutter', 'a_b'));
    expect(haNodeId('my/mesh', 'x')).toMatch(/^[a-zA-Z0-9_-]+$/);
  });

  it('builds a device config with its entities, and no GPU or Ollama entity for a node without them', () => {
    const { topic, payload } = haDeviceConfig(view('box'), ctx);
    expect(topic).toBe('homeassistant/device/cutter_box/config');
    expect(HaDeviceConfigSchema.parse(payload)).toEqual(payload);
    expect(Object.keys(payload.cmps).sort()).toEqual(['cpu_load', 'drain', 'memory_available', 'memory_total', 'online', 'running_tasks']);
    expect(payload.cmps.drain).toMatchObject({
      p: 'switch',
      command_topic: 'cutter/v1/ha/nodes/box/drain/set',
      default_entity_id: 'switch.cutter_box_drain',
    });
    expect(payload.o).toEqual({ name: 'cutter', sw: '9.9.9' });
    expect(JSON.stringify(payload)).not.toContain('object_id');
  });

  it('adds one entity per GPU that reports free memory, and Ollama when the node has it', () => {
    const gpus = [
      { vendor: 'NVIDIA', model: 'A', memoryTotal: 8 * GIB, memoryFree: 2 * GIB },
      { vendor: 'Intel', model: 'iGPU', memoryTotal: null, memoryFree: null },
    ];
    const v = view('llm', {
      capacity: {
        ...view('x').status.capacity!,
        gpus,
        ollama: { available: true, models: [], loaded: [{ name: 'm', size: GIB, sizeVram: 0 }] },
      },
    });
    const { payload } = haDeviceConfig(v, ctx);
    expect(Object.keys(payload.cmps)).toContain('gpu0_memory_free');
    expect(Object.keys(payload.cmps)).not.toContain('gpu1_memory_free');
    expect(Object.keys(payload.cmps)).toContain('ollama_models_loaded');
    const state = HaNodeStateSchema.parse(haNodeState(v, 10_000));
    expect(state).toMatchObject({
      gpu_memory_free_gib: [2, null],
      ollama_models_loaded: 1,
      ollama_loaded: ['m'],
      running_tasks: 1,
      cpu_load_percent: 37.3,
      memory_available_gib: 12,
    });
    expect(state.last_heartbeat).toBe(new Date(9_750).toISOString());
  });
});
