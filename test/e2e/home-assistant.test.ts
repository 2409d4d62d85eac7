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
// The --ha-broker (Mosquitto) cases are in home-assistant-mosquitto.test.ts, TLS in home-assistant-tls.test.ts.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ON_MOSQUITTO, cli, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { type Creds, type Json, checkDeviceConfig, retained, publish, GIB, llmBoxStatus } from './ha-helpers.js';

const mosquitto = needs('mosquitto');

// On the embedded broker by definition (observer tokens, its ACL): the Mosquitto case is --ha-broker below.
describe.skipIf(mosquitto.skip || ON_MOSQUITTO)(`Home Assistant discovery on the embedded broker${mosquitto.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let port: number;
  let url: string;
  let dataDir: string;
  let observer: Creds;
  let haAdmin: Creds;
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
    haAdmin = await token(['--role', 'admin', '--name', 'ha-admin']);
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

  it('drains and resumes a node from the drain switch (an admin token: an observer token may not drain, issue 14)', async () => {
    publish(port, haAdmin, 'cutter/v1/ha/nodes/ha.node/drain/set', 'ON');
    await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url, env: admin() });
      return (JSON.parse(r.stdout) as { node: string; drained: boolean }[]).find((n) => n.node === 'ha.node')?.drained === true;
    });
    const state = await eventually(() => {
      const s = retained(port, observer, ['cutter/v1/ha/nodes/ha.node/state'], 1).get('cutter/v1/ha/nodes/ha.node/state');
      return s && (JSON.parse(s) as Json).drained === true ? (JSON.parse(s) as Json) : null;
    });
    expect(state.state).toBe('draining');
    publish(port, haAdmin, 'cutter/v1/ha/nodes/ha.node/drain/set', 'OFF');
    await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url, env: admin() });
      return (JSON.parse(r.stdout) as { node: string; drained: boolean }[]).find((n) => n.node === 'ha.node')?.drained === false;
    });
    // Garbage on the command topic is logged and dropped, never fatal.
    publish(port, haAdmin, 'cutter/v1/ha/nodes/ha.node/drain/set', 'maybe');
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
