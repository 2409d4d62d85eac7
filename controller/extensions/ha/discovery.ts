/**
 * Home Assistant MQTT discovery for one cutter node, as pure functions of the node's view.
 *
 * Sources (Home Assistant docs, https://www.home-assistant.io/integrations/mqtt/):
 * - Device-based discovery: one retained message on `<discovery_prefix>/device/<object_id>/config`
 *   with `dev` and `o` (mandatory) and the entities under `cmps`; each entity has `p` (platform)
 *   and `unique_id` ("Device discovery payload"). An empty retained payload removes the device.
 * - Ids in the discovery topic must match `[a-zA-Z0-9_-]` ("Discovery topic"), so node ids (which
 *   may contain `.`) are sanitised, with a short hash when that changed them (no collisions).
 * - `default_entity_id` (full entity id with its domain) replaced `object_id` in HA 2025.10
 *   (home-assistant/core PR #151775); `object_id` stopped working in 2026.4.
 * - `data_size` sensors take a `UnitOfInformation` unit (`B` … `GiB`, case-sensitive) and any
 *   state class (home-assistant/core `sensor/const.py`); CPU % has no device class.
 * - Availability: a list of topics with `availability_mode: all` (Zigbee2MQTT's pattern): the
 *   cutter server's own topic (its last will says `offline`) and the node's.
 * - The online `binary_sensor` (`connectivity`) carries only the server's availability, not the
 *   node's, so a dead node shows "disconnected" instead of "unavailable" (Zigbee2MQTT's bridge
 *   connection-state entity has no availability at all; cutter adds the server's so a stopped
 *   server does not leave a stale "connected").
 */
import { createHash } from 'node:crypto';
import type { HaComponent, HaDeviceConfig, HaNodeState, NodeView } from '../../../shared/schemas/index.js';
import type { HaTopics } from '../../../shared/topics.js';
import { describeLending } from '../../../shared/lending.js';

const GIB = 1024 ** 3;

/**
 * The HA id of a node: `<prefix>_<node>` reduced to `[a-zA-Z0-9_-]`; when characters had to be
 * replaced, 6 hex digits of a hash of the original are appended so `a.b` and `a_b` stay apart.
 */
export function haNodeId(prefix: string, node: string): string {
  const raw = `${prefix}_${node}`;
  const clean = raw.replace(/[^a-zA-Z0-9_-]/g, '_');
  return clean === raw ? clean : `${clean}_${createHash('sha256').update(raw).digest('hex').slice(0, 6)}`;
}

/** `sensor.cutter_box_cpu_load`: entity ids are lower case `[a-z0-9_]`. */
function entityId(domain: HaComponent['p'], haId: string, key: string): string {
  return `${domain}.${`${haId}_${key}`.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The retained state JSON of a node (what the value templates read). */
export function haNodeState(view: NodeView, now: number): HaNodeState {
  const cap = view.status.capacity;
  const loaded = cap?.ollama?.loaded ?? [];
  return {
    state: view.state,
    drained: view.drained,
    memory_available_bytes: cap ? cap.memory.available : null,
    memory_total_bytes: cap ? cap.memory.total : null,
    memory_available_gib: cap ? round(cap.memory.available / GIB) : null,
    memory_total_gib: cap ? round(cap.memory.total / GIB) : null,
    cpu_load_percent: cap ? round(cap.cpu.loadPercent, 1) : null,
    cpu_cores: cap ? cap.cpu.cores : null,
    running_tasks: view.status.running.length,
    gpu_memory_free_gib: (cap?.gpus ?? []).map((g) => (g.memoryFree === null ? null : round(g.memoryFree / GIB))),
    ollama_models_loaded: loaded.length,
    ollama_loaded: loaded.map((m) => m.name),
    agent_version: view.status.version,
    last_heartbeat: new Date(now - view.lastSeenAgoMs).toISOString(),
    ...(view.status.lending
      ? {
          lending: describeLending(view.status.lending),
          lending_enabled: view.status.lending.policy.enabled,
          lending_mode: view.status.lending.policy.mode,
        }
      : {}),
  };
}

export interface DiscoveryContext {
  /** cutter's topic prefix (part of the HA ids, so two meshes in one HA stay apart). */
  prefix: string;
  topics: HaTopics;
  /** cutter's version, for the `origin` block. */
  version: string;
}

/**
 * The device discovery config of a node. Entities: online (binary_sensor, connectivity), memory
 * available and total (GiB), CPU load (%), running tasks, free memory of each GPU that reports it,
 * Ollama models loaded (when the node has Ollama), and a drain switch.
 * @returns the topic (`<haPrefix>/device/<haId>/config`) and the payload to publish retained.
 */
export function haDeviceConfig(view: NodeView, ctx: DiscoveryContext): { topic: string; payload: HaDeviceConfig } {
  const haId = haNodeId(ctx.prefix, view.node);
  const t = ctx.topics;
  const cap = view.status.capacity;
  const availability = [{ t: t.bridgeAvailability() }, { t: t.availability(view.node) }];
  const state = t.state(view.node);
  const cmps: Record<string, HaComponent> = {};
  const add = (key: string, c: Omit<HaComponent, 'uniq_id' | 'default_entity_id'>, withAvailability = true) => {
    cmps[key] = {
      ...c,
      uniq_id: `${haId}_${key}`,
      default_entity_id: entityId(c.p, haId, key),
      ...(withAvailability ? { avty: availability, avty_mode: 'all' as const } : {}),
    };
  };
  add(
    'online',
    {
      p: 'binary_sensor',
      name: 'Online',
      dev_cla: 'connectivity',
      stat_t: t.availability(view.node),
      pl_on: 'online',
      pl_off: 'offline',
      ent_cat: 'diagnostic',
      avty: [{ t: t.bridgeAvailability() }],
    },
    false,
  );
  const dataSize = {
    p: 'sensor' as const,
    stat_t: state,
    dev_cla: 'data_size',
    unit_of_meas: 'GiB',
    stat_cla: 'measurement' as const,
    sug_dsp_prc: 1,
  };
  add('memory_available', { ...dataSize, name: 'Memory available', val_tpl: '{{ value_json.memory_available_gib }}' });
  add('memory_total', { ...dataSize, name: 'Memory total', val_tpl: '{{ value_json.memory_total_gib }}', ent_cat: 'diagnostic' });
  add('cpu_load', {
    p: 'sensor',
    name: 'CPU load',
    stat_t: state,
    unit_of_meas: '%',
    stat_cla: 'measurement',
    sug_dsp_prc: 0,
    ic: 'mdi:cpu-64-bit',
    val_tpl: '{{ value_json.cpu_load_percent }}',
  });
  add('running_tasks', {
    p: 'sensor',
    name: 'Running tasks',
    stat_t: state,
    unit_of_meas: 'tasks',
    stat_cla: 'measurement',
    ic: 'mdi:format-list-checks',
    val_tpl: '{{ value_json.running_tasks }}',
  });
  (cap?.gpus ?? []).forEach((g, i) => {
    if (g.memoryFree === null) return;
    add(`gpu${i}_memory_free`, {
      ...dataSize,
      name: `GPU ${i} memory free`,
      ic: 'mdi:expansion-card',
      val_tpl: `{{ value_json.gpu_memory_free_gib[${i}] }}`,
    });
  });
  if (cap?.ollama || view.status.offer?.executors.includes('ollama')) {
    add('ollama_models_loaded', {
      p: 'sensor',
      name: 'Ollama models loaded',
      stat_t: state,
      unit_of_meas: 'models',
      stat_cla: 'measurement',
      ic: 'mdi:brain',
      val_tpl: '{{ value_json.ollama_models_loaded }}',
      json_attr_t: state,
      json_attr_tpl: '{{ {"models": value_json.ollama_loaded} | tojson }}',
    });
  }
  add('drain', {
    p: 'switch',
    name: 'Drain',
    stat_t: state,
    command_topic: t.drainCommand(view.node),
    val_tpl: "{{ 'ON' if value_json.drained else 'OFF' }}",
    pl_on: 'ON',
    pl_off: 'OFF',
    ent_cat: 'config',
    ic: 'mdi:pause-circle-outline',
  });
  if (view.status.lending) {
    // Issue 17: the lending state, a switch (lending on/off) and a select (mode), after HA's MQTT
    // sensor, switch and select docs (select: `command_topic`, `options`, `value_template`).
    add('lending', { p: 'sensor', name: 'Lending', stat_t: state, ic: 'mdi:hand-heart', val_tpl: '{{ value_json.lending }}' });
    add('lending_enabled', {
      p: 'switch',
      name: 'Lending enabled',
      stat_t: state,
      command_topic: t.lendingCommand(view.node, 'lending'),
      val_tpl: "{{ 'ON' if value_json.lending_enabled else 'OFF' }}",
      pl_on: 'ON',
      pl_off: 'OFF',
      ent_cat: 'config',
      ic: 'mdi:hand-heart-outline',
    });
    add('lending_mode', {
      p: 'select',
      name: 'Lending mode',
      stat_t: state,
      command_topic: t.lendingCommand(view.node, 'mode'),
      val_tpl: '{{ value_json.lending_mode }}',
      options: ['auto', 'always'],
      ent_cat: 'config',
      ic: 'mdi:tune',
    });
  }
  const payload: HaDeviceConfig = {
    dev: {
      ids: [haId],
      name: view.node,
      mf: 'cutter',
      mdl: 'cutter agent',
      sw: view.status.version,
    },
    o: { name: 'cutter', sw: ctx.version },
    qos: 1,
    cmps,
  };
  return { topic: t.deviceConfig(haId), payload };
}
