/**
 * Lending seen and changed from outside (issue 17), with real processes: Home Assistant's lending
 * switch and mode select reach the node's agent through the server; the state shows in HA's
 * retained state, in /metrics (one gauge per node state) and in the audit log.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startAgent, startServer, type Daemon } from '../harness.js';
import { lendingOf, powerDouble } from './lending-helpers.js';
import { t, until, watch } from './recovery-helpers.js';

describe('lending: Home Assistant and /metrics', () => {
  let server: Daemon;
  let url: string;
  let http: string;
  let dataDir: string;
  let agent: Daemon | undefined;

  beforeAll(async () => {
    const port = await freePort();
    ({ daemon: server, url, dataDir } = await startServer(['--http-port', String(port)]));
    http = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
  });

  it('turns lending off and on and sets its mode from HA, and shows the state in HA and /metrics', async () => {
    const statuses = await watch(url, t.allNodeStatus());
    const ha = await watch(url, 'homeassistant/device/+/config');
    const haState = await watch(url, 'cutter/v1/ha/nodes/hanb/state');
    const power = powerDouble();
    agent = await startAgent(url, 'hanb', ['--lend-ac-only', '--power-supply-dir', power.dir, '--lend-sample', '500ms']);
    const client = await mqtt.connectAsync(url, { clientId: `lending-ha-${process.pid}` });
    try {
      await until(() => lendingOf(statuses.messages, 'hanb')?.state === 'lending', 20_000);
      const config = await until(() => ha.messages.find((m) => (m.cmps as Record<string, unknown> | undefined)?.lending_enabled));
      const cmps = config.cmps as Record<string, { p: string; command_topic?: string; options?: string[] }>;
      expect(cmps.lending_enabled).toMatchObject({ p: 'switch', command_topic: 'cutter/v1/ha/nodes/hanb/lending/set' });
      expect(cmps.lending_mode).toMatchObject({ p: 'select', options: ['auto', 'always'] });

      await client.publishAsync('cutter/v1/ha/nodes/hanb/lending/set', 'OFF', { qos: 1 });
      await until(() => lendingOf(statuses.messages, 'hanb')?.reason === 'lending switched off', 20_000);
      expect(lendingOf(statuses.messages, 'hanb')?.state).toBe('closed');
      await until(() => haState.messages.some((s) => s.lending === 'closed: lending switched off' && s.lending_enabled === false), 20_000);
      const metrics = await until(async () => {
        const text = await (await fetch(`${http}/metrics`)).text();
        return text.includes('cutter_node_lending{node="hanb",state="closed"} 1') ? text : null;
      }, 20_000);
      expect(metrics).toContain('cutter_node_lending{node="hanb",state="lending"} 0');

      await client.publishAsync('cutter/v1/ha/nodes/hanb/mode/set', 'always', { qos: 1 });
      await client.publishAsync('cutter/v1/ha/nodes/hanb/lending/set', 'ON', { qos: 1 });
      power.set(false); // on battery, but mode always lends regardless
      await until(() => haState.messages.some((s) => s.lending === 'lending' && s.lending_mode === 'always'), 20_000);
      expect(lendingOf(statuses.messages, 'hanb')?.state).toBe('lending');

      // Garbage on a command topic is logged and dropped.
      await client.publishAsync('cutter/v1/ha/nodes/hanb/mode/set', 'sometimes', { qos: 1 });
      await server.waitForMsg('dropped invalid lending command: payload must be auto or always');
      const audit = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8');
      expect(audit).toContain('"who":"homeassistant","action":"lending.set"');
    } finally {
      power.set(true);
      await client.endAsync();
      await statuses.close();
      await ha.close();
      await haState.close();
    }
  }, 120_000);
});
