/**
 * Home Assistant discovery through `cutter server --ha-broker`: the server publishes to a real
 * Mosquitto as an MQTT 5 client, takes drain commands from it, forgets removed nodes and publishes
 * again after Mosquitto restarts (rules checked as in home-assistant.test.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, eventually, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { type Creds, type Json, checkDeviceConfig } from './ha-helpers.js';

const mosquitto = needs('mosquitto');

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
    const haTokenFile = join(tempDir(), 'ha-token.json');
    writeFileSync(haTokenFile, JSON.stringify(ha), { mode: 0o600 });
    ({ daemon: server, url } = await startServer([
      '--ha-broker',
      `mqtt://127.0.0.1:${haPort}`,
      // Passwords never on argv (`ps` shows it): the credentials come from a file.
      '--ha-token-file',
      haTokenFile,
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
