/**
 * Shared by the Home Assistant tests (home-assistant*.test.ts): HA's documented rules for a device
 * discovery payload, reading retained messages and publishing with Debian's mosquitto clients, and
 * a hand-made status of a node with a GPU and Ollama.
 */
import { spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { HaDeviceConfigSchema } from '../../shared/schemas/ha.js';

export type Creds = { username: string; password: string };
export type Json = Record<string, unknown>;

/** HA's `UnitOfInformation` (home-assistant/core const.py), the units a `data_size` sensor accepts. */
export const DATA_SIZE_UNITS = [
  'bit',
  'kbit',
  'Mbit',
  'Gbit',
  'B',
  'kB',
  'MB',
  'GB',
  'TB',
  'PB',
  'EB',
  'ZB',
  'YB',
  'KiB',
  'MiB',
  'GiB',
  'TiB',
  'PiB',
  'EiB',
  'ZiB',
  'YiB',
];
export const STATE_CLASSES = ['measurement', 'measurement_angle', 'total', 'total_increasing'];
export const HA_ID = /^[a-zA-Z0-9_-]+$/;

/** Checks one device discovery payload against HA's documented rules; returns the components. */
export function checkDeviceConfig(topic: string, payload: Json, haPrefix = 'homeassistant'): Record<string, Json> {
  // Topic: <discovery_prefix>/device/<object_id>/config, object_id of [a-zA-Z0-9_-].
  const m = new RegExp(`^${haPrefix}/device/([^/]+)/config$`).exec(topic);
  expect(m, topic).not.toBeNull();
  expect(m![1]).toMatch(HA_ID);
  // dev and o are mandatory at the root of a device discovery payload.
  const dev = payload.dev as Json;
  const o = payload.o as Json;
  expect(dev, 'dev').toBeTruthy();
  expect(o?.name, 'o.name').toBeTruthy();
  expect(Array.isArray(dev.ids) ? (dev.ids as string[]).length : dev.ids ? 1 : 0, 'dev.ids').toBeGreaterThan(0);
  expect(dev.name).toBeTruthy();
  const cmps = payload.cmps as Record<string, Json>;
  expect(Object.keys(cmps).length).toBeGreaterThan(0);
  for (const [key, c] of Object.entries(cmps)) {
    expect(key).toMatch(HA_ID);
    expect(c.p, `${key}: platform`).toMatch(/^(sensor|binary_sensor|switch|button)$/);
    expect(c.uniq_id ?? c.unique_id, `${key}: unique_id`).toMatch(HA_ID);
    // object_id is gone (HA 2026.4); default_entity_id is the full entity id with the domain.
    expect(c).not.toHaveProperty('object_id');
    expect(c).not.toHaveProperty('obj_id');
    expect(String(c.default_entity_id)).toMatch(new RegExp(`^${String(c.p)}\\.[a-z0-9_]+$`));
    if (c.dev_cla === 'data_size') expect(DATA_SIZE_UNITS, `${key}: unit`).toContain(c.unit_of_meas);
    if (c.stat_cla !== undefined) expect(STATE_CLASSES).toContain(c.stat_cla);
    if (c.p !== 'button') expect(c.stat_t ?? payload.stat_t, `${key}: state_topic`).toBeTruthy();
    if (c.p === 'switch') expect(c.command_topic ?? c.cmd_t, `${key}: command_topic`).toBeTruthy();
    for (const a of (c.avty as Json[] | undefined) ?? []) expect(typeof a.t).toBe('string');
  }
  // cutter's own schema agrees.
  expect(HaDeviceConfigSchema.safeParse(payload).success).toBe(true);
  return cmps;
}

/** Every retained message under the filters, read with Debian's mosquitto_sub (`-W` ends the read). */
export function retained(port: number, creds: Creds, filters: string[], waitSec = 2): Map<string, string> {
  const r = spawnSync(
    'mosquitto_sub',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-u',
      creds.username,
      '-P',
      creds.password,
      '-v',
      '-W',
      String(waitSec),
      ...filters.flatMap((f) => ['-t', f]),
    ],
    {
      encoding: 'utf8',
    },
  );
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const space = line.indexOf(' ');
    out.set(space < 0 ? line : line.slice(0, space), space < 0 ? '' : line.slice(space + 1));
  }
  return out;
}

/** Publishes one QoS 1 message with Debian's mosquitto_pub. @throws with its stderr when it fails. */
export function publish(port: number, creds: Creds, topic: string, message: string, extra: string[] = []): void {
  const r = spawnSync(
    'mosquitto_pub',
    ['-h', '127.0.0.1', '-p', String(port), '-u', creds.username, '-P', creds.password, '-q', '1', '-t', topic, '-m', message, ...extra],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`mosquitto_pub ${topic}: ${r.stderr}`);
}

export const GIB = 1024 ** 3;

/** A node with a GPU and Ollama, announced by hand (the Ollama agent side is built elsewhere). */
export function llmBoxStatus(state: 'online' | 'offline'): string {
  const base = { v: 1, node: 'llm-box', state, version: '0.1.0', seq: state === 'online' ? 1 : 2, ts: Date.now(), heartbeatMs: 3_600_000 };
  if (state === 'offline') return JSON.stringify({ ...base, reason: 'switched off' });
  return JSON.stringify({
    ...base,
    capacity: {
      cpu: { cores: 16, loadPercent: 12.5 },
      memory: { total: 64 * GIB, available: 40 * GIB },
      gpus: [{ vendor: 'NVIDIA', model: 'RTX 4090', memoryTotal: 24 * GIB, memoryFree: 18 * GIB }],
      docker: { available: false },
      ollama: {
        available: true,
        version: '0.12.3',
        models: [
          { name: 'llama3.2:3b', size: 2 * GIB },
          { name: 'qwen3:8b', size: 5 * GIB },
        ],
        loaded: [{ name: 'llama3.2:3b', size: 3 * GIB, sizeVram: 3 * GIB }],
      },
    },
    offer: { maxMemory: null, maxTasks: 2, executors: ['ollama'], labels: {}, lostAfterMs: 0 },
    running: [],
  });
}
