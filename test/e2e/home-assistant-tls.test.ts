/**
 * `--ha-broker mqtts://…` with `--ha-ca-file`: the server verifies Mosquitto's certificate against a
 * private CA (made with openssl) and publishes discovery there.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, it } from 'vitest';
import { eventually, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { type Json, checkDeviceConfig } from './ha-helpers.js';

const mosquitto = needs('mosquitto');

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
