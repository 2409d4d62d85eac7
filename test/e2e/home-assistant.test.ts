/**
 * Home Assistant MQTT discovery, read the way Home Assistant reads it: retained messages from a
 * real broker, with a real MQTT client — Debian's `mosquitto_sub` on the embedded broker (with an
 * observer token, as HA would connect), and an MQTT 5 client (MQTT.js, protocolVersion 5) on a
 * real Mosquitto that `cutter server --ha-broker` publishes to.
 *
 * The configs are checked against the rules Home Assistant documents
 * (https://www.home-assistant.io/integrations/mqtt/ "Device discovery payload", "Discovery
 * topic", "Using Availability topics"; units from home-assistant/core sensor/const.py), written
 * out here independently of cutter's own zod schema.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HaDeviceConfigSchema } from '../../shared/schemas/ha.js';
import { ON_MOSQUITTO, cli, eventually, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const mosquitto = needs('mosquitto');

type Creds = { username: string; password: string };
type Json = Record<string, unknown>;

/** HA's `UnitOfInformation` (home-assistant/core const.py), the units a `data_size` sensor accepts. */
const DATA_SIZE_UNITS = [
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
const STATE_CLASSES = ['measurement', 'measurement_angle', 'total', 'total_increasing'];
const HA_ID = /^[a-zA-Z0-9_-]+$/;

/** Checks one device discovery payload against HA's documented rules; returns the components. */
function checkDeviceConfig(topic: string, payload: Json, haPrefix = 'homeassistant'): Record<string, Json> {
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
function retained(port: number, creds: Creds, filters: string[], waitSec = 2): Map<string, string> {
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

function publish(port: number, creds: Creds, topic: string, message: string, extra: string[] = []): void {
  const r = spawnSync(
    'mosquitto_pub',
    ['-h', '127.0.0.1', '-p', String(port), '-u', creds.username, '-P', creds.password, '-q', '1', '-t', topic, '-m', message, ...extra],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`mosquitto_pub ${topic}: ${r.stderr}`);
}

const GIB = 1024 ** 3;

/** A node with a GPU and Ollama, announced by hand (the Ollama agent side is built elsewhere). */
function llmBoxStatus(state: 'online' | 'offline'): string {
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

// On the embedded broker by definition (observer tokens, its ACL): the Mosquitto case is --ha-broker below.
describe.skipIf(mosquitto.skip || ON_MOSQUITTO)(`Home Assistant discovery on the embedded broker${mosquitto.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let port: number;
  let url: string;
  let dataDir: string;
  let observer: Creds;
  let llmAgent: Creds;
  const admin = () => ({ CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') });
  const token = async (args: string[]) => {
    const r = await cli(['token', 'create', ...args, '--json'], { broker: url, env: admin() });
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Creds;
  };

  beforeAll(async () => {
    ({ daemon: server, url, port, dataDir } = await startServer(['--ha-remove-after', '2s'], { secure: true }));
    const agentCreds = await token(['--role', 'agent', '--node', 'ha.node']);
    observer = await token(['--role', 'observer', '--name', 'ha']);
    llmAgent = await token(['--role', 'agent', '--node', 'llm-box']);
    agent = await startAgent(url, 'ha.node', [], { CUTTER_USERNAME: agentCreds.username, CUTTER_PASSWORD: agentCreds.password });
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it("publishes one retained device config per node that follows HA's schema, with state and availability", async () => {
    const all = await eventually(() => {
      const m = retained(port, observer, ['homeassistant/#', 'cutter/v1/ha/#']);
      return [...m.keys()].some((k) => k.startsWith('homeassistant/device/')) && m.get('cutter/v1/ha/nodes/ha.node/state') ? m : null;
    });
    const configTopics = [...all.keys()].filter((k) => k.startsWith('homeassistant/device/'));
    expect(configTopics).toHaveLength(1);
    // The node id has a dot, which HA's topic regex does not allow: sanitised, with a hash.
    expect(configTopics[0]).toMatch(/^homeassistant\/device\/cutter_ha_node_[0-9a-f]{6}\/config$/);
    const payload = JSON.parse(all.get(configTopics[0])!) as Json;
    const cmps = checkDeviceConfig(configTopics[0], payload);
    expect(Object.keys(cmps).sort()).toEqual(['cpu_load', 'drain', 'memory_available', 'memory_total', 'online', 'running_tasks']);
    const ids = Object.values(cmps).map((c) => c.uniq_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect((payload.dev as Json).name).toBe('ha.node');

    // Availability: the server's and the node's topics, both required.
    const bridge = 'cutter/v1/ha/bridge/availability';
    const nodeAvail = 'cutter/v1/ha/nodes/ha.node/availability';
    expect(cmps.memory_available).toMatchObject({
      avty: [{ t: bridge }, { t: nodeAvail }],
      avty_mode: 'all',
      dev_cla: 'data_size',
      unit_of_meas: 'GiB',
      stat_cla: 'measurement',
    });
    expect(cmps.memory_total).toMatchObject({ dev_cla: 'data_size', unit_of_meas: 'GiB' });
    expect(cmps.cpu_load).toMatchObject({ unit_of_meas: '%', stat_cla: 'measurement' });
    expect(cmps.cpu_load).not.toHaveProperty('dev_cla');
    // The online sensor reads the node's availability and is not made unavailable by it.
    expect(cmps.online).toMatchObject({
      p: 'binary_sensor',
      dev_cla: 'connectivity',
      stat_t: nodeAvail,
      pl_on: 'online',
      pl_off: 'offline',
      avty: [{ t: bridge }],
    });
    expect(all.get(bridge)).toBe('online');
    expect(all.get(nodeAvail)).toBe('online');

    // The state matches the node's own heartbeat.
    const state = JSON.parse(all.get('cutter/v1/ha/nodes/ha.node/state')!) as Json;
    const status = JSON.parse(retained(port, observer, ['cutter/v1/nodes/ha.node/status'], 1).get('cutter/v1/nodes/ha.node/status')!) as {
      capacity: { memory: { total: number }; cpu: { cores: number } };
    };
    expect(state.memory_total_bytes).toBe(status.capacity.memory.total);
    expect(state.memory_total_gib).toBeCloseTo(status.capacity.memory.total / GIB, 2);
    expect(state.cpu_cores).toBe(status.capacity.cpu.cores);
    expect(state).toMatchObject({ state: 'online', drained: false, running_tasks: 0 });
  });

  it('adds GPU and Ollama entities for a node that has them', async () => {
    publish(port, llmAgent, 'cutter/v1/nodes/llm-box/status', llmBoxStatus('online'), ['-r', '-i', 'cutter-agent-llm-box']);
    const topic = 'homeassistant/device/cutter_llm-box/config';
    const cfg = await eventually(() => retained(port, observer, [topic], 1).get(topic));
    const cmps = checkDeviceConfig(topic, JSON.parse(cfg) as Json);
    expect(cmps.gpu0_memory_free).toMatchObject({
      dev_cla: 'data_size',
      unit_of_meas: 'GiB',
      val_tpl: '{{ value_json.gpu_memory_free_gib[0] }}',
    });
    expect(cmps.ollama_models_loaded).toMatchObject({ p: 'sensor', val_tpl: '{{ value_json.ollama_models_loaded }}' });
    const state = JSON.parse(
      await eventually(() => retained(port, observer, ['cutter/v1/ha/nodes/llm-box/state'], 1).get('cutter/v1/ha/nodes/llm-box/state')),
    ) as Json;
    expect(state).toMatchObject({
      gpu_memory_free_gib: [18],
      ollama_models_loaded: 1,
      ollama_loaded: ['llama3.2:3b'],
      memory_available_gib: 40,
    });
  });

  it('drains and resumes a node from the drain switch (an observer token, as HA has)', async () => {
    publish(port, observer, 'cutter/v1/ha/nodes/ha.node/drain/set', 'ON');
    await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url, env: admin() });
      return (JSON.parse(r.stdout) as { node: string; drained: boolean }[]).find((n) => n.node === 'ha.node')?.drained === true;
    });
    const state = await eventually(() => {
      const s = retained(port, observer, ['cutter/v1/ha/nodes/ha.node/state'], 1).get('cutter/v1/ha/nodes/ha.node/state');
      return s && (JSON.parse(s) as Json).drained === true ? (JSON.parse(s) as Json) : null;
    });
    expect(state.state).toBe('draining');
    publish(port, observer, 'cutter/v1/ha/nodes/ha.node/drain/set', 'OFF');
    await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url, env: admin() });
      return (JSON.parse(r.stdout) as { node: string; drained: boolean }[]).find((n) => n.node === 'ha.node')?.drained === false;
    });
    // Garbage on the command topic is logged and dropped, never fatal.
    publish(port, observer, 'cutter/v1/ha/nodes/ha.node/drain/set', 'maybe');
    await server.waitForMsg('dropped invalid drain command: payload must be ON or OFF');
    const audit = await eventually(() => {
      const r = spawnSync('cat', [join(dataDir, 'audit.jsonl')], { encoding: 'utf8' });
      return r.stdout.includes('"who":"homeassistant","action":"drain"') ? r.stdout : null;
    });
    expect(audit).toContain('"who":"homeassistant","action":"resume"');
  });

  it('publishes discovery again when Home Assistant announces itself online', async () => {
    const topic = [...retained(port, observer, ['homeassistant/device/+/config'], 1).keys()].find((k) => k.includes('cutter_ha_node'))!;
    // A live subscriber: the retained copy first, then the re-publication after HA's birth.
    const sub = spawn(
      'mosquitto_sub',
      ['-h', '127.0.0.1', '-p', String(port), '-u', observer.username, '-P', observer.password, '-t', topic, '-C', '2', '-W', '10'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    sub.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await eventually(() => out.split('\n').filter(Boolean).length >= 1);
    publish(port, observer, 'homeassistant/status', 'online');
    const code = await new Promise<number | null>((resolve) => sub.once('exit', resolve));
    expect(code).toBe(0);
    const lines = out.split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1])).toEqual(JSON.parse(lines[0]));
    await server.waitForLog((l) => l.msg === 'home assistant discovery published' && l.why === 'home assistant online');
  });

  it("clears a node's retained config (and its state) once it has been offline for --ha-remove-after", async () => {
    const topic = 'homeassistant/device/cutter_llm-box/config';
    expect(retained(port, observer, [topic], 1).get(topic)).toBeTruthy();
    publish(port, llmAgent, 'cutter/v1/nodes/llm-box/status', llmBoxStatus('offline'), ['-r', '-i', 'cutter-agent-llm-box']);
    await server.waitForLog((l) => l.msg === 'node removed from home assistant' && l.node === 'llm-box');
    const left = retained(port, observer, ['homeassistant/#', 'cutter/v1/ha/#'], 1);
    expect(left.has(topic)).toBe(false);
    expect(left.has('cutter/v1/ha/nodes/llm-box/state')).toBe(false);
    expect(left.has('cutter/v1/ha/nodes/llm-box/availability')).toBe(false);
    // The other node is untouched.
    expect([...left.keys()].some((k) => k.includes('cutter_ha_node'))).toBe(true);
  });

  it('marks a killed node unavailable through its last will', async () => {
    const creds = await token(['--role', 'agent', '--node', 'doomed']);
    const doomed = await startAgent(url, 'doomed', [], { CUTTER_USERNAME: creds.username, CUTTER_PASSWORD: creds.password });
    await eventually(
      () =>
        retained(port, observer, ['cutter/v1/ha/nodes/doomed/availability'], 1).get('cutter/v1/ha/nodes/doomed/availability') === 'online',
    );
    await doomed.stop('SIGKILL');
    await eventually(
      () =>
        retained(port, observer, ['cutter/v1/ha/nodes/doomed/availability'], 1).get('cutter/v1/ha/nodes/doomed/availability') === 'offline',
    );
  });
});

describe.skipIf(mosquitto.skip)(`Home Assistant discovery through --ha-broker (a real Mosquitto, MQTT 5)${mosquitto.tag}`, () => {
  let mosquitto: ChildProcess;
  let mosquittoLog = '';
  let server: Daemon;
  let agent: Daemon;
  let haPort: number;
  let url: string;
  let confFile: string;
  const ha: Creds = { username: 'cutter', password: 'ha-secret' };

  const startMosquitto = async () => {
    mosquitto = spawn('mosquitto', ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    mosquitto.stdout!.on('data', (c: Buffer) => (mosquittoLog += c.toString()));
    mosquitto.stderr!.on('data', (c: Buffer) => (mosquittoLog += c.toString()));
    await eventually(
      () =>
        spawnSync('mosquitto_pub', ['-p', String(haPort), '-u', ha.username, '-P', ha.password, '-t', 'probe', '-m', 'x'], {
          stdio: 'ignore',
        }).status === 0,
    );
  };
  /** An MQTT 5 client on Mosquitto, collecting retained messages under a filter for a moment. */
  const read5 = async (filter: string, ms = 800): Promise<Map<string, { payload: string; retain: boolean }>> => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${haPort}`, {
      protocolVersion: 5,
      username: ha.username,
      password: ha.password,
      reconnectPeriod: 0,
    });
    const got = new Map<string, { payload: string; retain: boolean }>();
    c.on('message', (topic, payload, packet) => got.set(topic, { payload: payload.toString(), retain: packet.retain }));
    await c.subscribeAsync(filter, { qos: 1 });
    await new Promise((r) => setTimeout(r, ms));
    await c.endAsync();
    return got;
  };

  beforeAll(async () => {
    haPort = await freePort();
    const dir = tempDir('cutter-test-mosquitto-');
    const passwords = join(dir, 'passwd');
    writeFileSync(passwords, '');
    expect(spawnSync('mosquitto_passwd', ['-b', passwords, ha.username, ha.password]).status).toBe(0);
    // Started as root, Mosquitto drops to its own user, which must be able to read the file.
    chmodSync(dir, 0o755);
    chmodSync(passwords, 0o644);
    confFile = join(dir, 'mosquitto.conf');
    writeFileSync(
      confFile,
      [
        `listener ${haPort} 127.0.0.1`,
        'allow_anonymous false',
        `password_file ${passwords}`,
        'log_dest stderr',
        'log_type all',
        'connection_messages true',
        '',
      ].join('\n'),
    );
    await startMosquitto();
    ({ daemon: server, url } = await startServer([
      '--ha-broker',
      `mqtt://127.0.0.1:${haPort}`,
      '--ha-username',
      ha.username,
      '--ha-password',
      ha.password,
    ]));
    agent = await startAgent(url, 'via-mosquitto');
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    mosquitto?.kill('SIGTERM');
  });

  it('publishes retained discovery, state and availability to Mosquitto as an MQTT 5 client', async () => {
    const topic = 'homeassistant/device/cutter_via-mosquitto/config';
    const got = await eventually(async () => {
      const m = await read5('#');
      // Retained copies (a subscriber that came first sees the live publish, retain flag off).
      return m.get(topic)?.retain && m.get('cutter/v1/ha/nodes/via-mosquitto/state')?.retain ? m : null;
    });
    expect(got.get(topic)!.retain).toBe(true);
    const cmps = checkDeviceConfig(topic, JSON.parse(got.get(topic)!.payload) as Json);
    expect(cmps.memory_available.uniq_id).toBe('cutter_via-mosquitto_memory_available');
    expect(got.get('cutter/v1/ha/bridge/availability')?.payload).toBe('online');
    expect(got.get('cutter/v1/ha/nodes/via-mosquitto/availability')?.payload).toBe('online');
    // Mosquitto logs the protocol of each connection: p5 is MQTT 5.
    expect(mosquittoLog).toMatch(/as cutter-ha-cutter \(p5,/);
    // Nothing of the mesh itself reaches HA's broker: only the HA topics.
    expect([...got.keys()].filter((k) => !k.startsWith('homeassistant/') && !k.startsWith('cutter/v1/ha/') && k !== 'probe')).toEqual([]);
  });

  it('takes drain commands from Mosquitto', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${haPort}`, {
      protocolVersion: 5,
      username: ha.username,
      password: ha.password,
      reconnectPeriod: 0,
    });
    await c.publishAsync('cutter/v1/ha/nodes/via-mosquitto/drain/set', 'ON', { qos: 1 });
    await c.endAsync();
    await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url });
      return (JSON.parse(r.stdout) as { node: string; drained: boolean }[]).find((n) => n.node === 'via-mosquitto')?.drained === true;
    });
    const state = await eventually(async () => {
      const s = (await read5('cutter/v1/ha/nodes/via-mosquitto/state')).get('cutter/v1/ha/nodes/via-mosquitto/state');
      return s && (JSON.parse(s.payload) as Json).drained === true;
    });
    expect(state).toBe(true);
  });

  it('cutter nodes forget removes an offline node from Home Assistant at once, and refuses a live one', async () => {
    const gone = await startAgent(url, 'short-lived');
    const topic = 'homeassistant/device/cutter_short-lived/config';
    await eventually(async () => (await read5(topic)).get(topic));
    const live = await cli(['nodes', 'forget', 'short-lived'], { broker: url });
    expect(live.code).toBe(1);
    expect(live.stderr).toContain('node short-lived is online: stop its agent first');
    await gone.stop('SIGKILL');
    await eventually(
      async () =>
        (await read5('cutter/v1/ha/nodes/short-lived/availability')).get('cutter/v1/ha/nodes/short-lived/availability')?.payload ===
        'offline',
    );
    const r = await cli(['nodes', 'forget', 'short-lived'], { broker: url });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('short-lived forgotten\n');
    await eventually(async () => {
      const m = await read5('#');
      return !m.has(topic) && !m.has('cutter/v1/ha/nodes/short-lived/state') && m.has('homeassistant/device/cutter_via-mosquitto/config');
    });
    const list = JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url })).stdout) as { node: string }[];
    expect(list.map((n) => n.node)).not.toContain('short-lived');
    expect((await cli(['nodes', 'forget', 'short-lived'], { broker: url })).stderr).toContain('no node short-lived');
  });

  it('publishes everything again after Mosquitto restarts and has lost its retained messages', async () => {
    mosquitto.kill('SIGKILL');
    await new Promise((resolve) => mosquitto.once('exit', resolve));
    mosquittoLog = '';
    await startMosquitto(); // no persistence: it starts empty
    const topic = 'homeassistant/device/cutter_via-mosquitto/config';
    const got = await eventually(async () => {
      const m = await read5('#');
      return m.get(topic) && m.get('cutter/v1/ha/bridge/availability')?.payload === 'online' ? m : null;
    }, 20_000);
    checkDeviceConfig(topic, JSON.parse(got.get(topic)!.payload) as Json);
  });

  it('says offline on its availability topic when the server stops', async () => {
    await agent.stop();
    await server.stop();
    const m = await read5('cutter/v1/ha/bridge/availability');
    expect(m.get('cutter/v1/ha/bridge/availability')?.payload).toBe('offline');
  });
});

describe.skipIf(mosquitto.skip)(`--no-ha${mosquitto.tag}`, () => {
  it('publishes no discovery at all', async () => {
    const { daemon: server, url, port } = await startServer(['--no-ha']);
    const agent = await startAgent(url, 'quiet-node');
    try {
      const r = spawnSync(
        'mosquitto_sub',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-v',
          '-W',
          '2',
          '-t',
          'homeassistant/#',
          '-t',
          'cutter/v1/ha/#',
          '-t',
          'cutter/v1/nodes/+/status',
        ],
        { encoding: 'utf8' },
      );
      // The node's own status is there (the read works); nothing of Home Assistant is.
      expect(r.stdout).toContain('cutter/v1/nodes/quiet-node/status');
      expect(r.stdout).not.toMatch(/homeassistant\/|cutter\/v1\/ha\//);
    } finally {
      await agent.stop();
      await server.stop();
    }
  });
});

describe.skipIf(mosquitto.skip)(`--ha-broker over TLS (mqtts://, a private CA)${mosquitto.tag}`, () => {
  it("verifies Mosquitto's certificate against --ha-ca-file and publishes discovery there", async () => {
    const dir = tempDir('cutter-test-ha-tls-');
    chmodSync(dir, 0o755);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=ha test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
    writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
    ssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'server.pem',
    );
    for (const f of ['ca.pem', 'server.pem', 'server.key']) chmodSync(join(dir, f), 0o644);
    const port = await freePort();
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        `cafile ${join(dir, 'ca.pem')}`,
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
        '',
      ].join('\n'),
    );
    const mosq = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    const haUrl = `mqtts://127.0.0.1:${port}`;
    const ca = readFileSync(join(dir, 'ca.pem'));
    let server: Daemon | undefined;
    let agent: Daemon | undefined;
    try {
      await eventually(() =>
        mqtt.connectAsync(haUrl, { ca, reconnectPeriod: 0, connectTimeout: 2_000 }).then((c) => c.endAsync().then(() => true)),
      );
      let url: string;
      ({ daemon: server, url } = await startServer(['--ha-broker', haUrl, '--ha-ca-file', join(dir, 'ca.pem')]));
      agent = await startAgent(url, 'tls-node');
      const topic = 'homeassistant/device/cutter_tls-node/config';
      const payload = await eventually(async () => {
        const c = await mqtt.connectAsync(haUrl, { ca, protocolVersion: 5, reconnectPeriod: 0 });
        let got: string | undefined;
        c.on('message', (t, p) => t === topic && (got = p.toString()));
        await c.subscribeAsync(topic, { qos: 1 });
        await new Promise((r) => setTimeout(r, 500));
        await c.endAsync();
        return got;
      });
      checkDeviceConfig(topic, JSON.parse(payload) as Json);
    } finally {
      await agent?.stop();
      await server?.stop();
      mosq.kill('SIGTERM');
    }
  });
});
