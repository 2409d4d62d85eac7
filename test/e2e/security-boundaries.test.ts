/**
 * Trust boundaries (issue 14), with a real server and real MQTT clients holding real tokens: two
 * hand-driven agents (fa, connected from 127.0.0.2, and fb) that accept what they are assigned.
 * An agent token is worth one node: fb naming another node is cut, fb reporting on fa's task is
 * quarantined (no follower sees it, fb stays connected); forwards open only for the node's own task,
 * its declared ports and the address the server sees the node at, on 127.0.0.1 only; an observer
 * cannot drain; the server's own client ids are reserved.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { cli, describeEmbeddedBroker, eventually, freePort, startServer, tempDir, type Daemon } from '../harness.js';

const t = topics();
type Creds = { username: string; password: string };
const GIB = 1024 ** 3;

/** Whether a TCP connect to host:port succeeds within 2 s. */
const canConnect = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = tcpConnect({ host, port });
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.once('connect', () => done(true)).once('error', () => done(false));
    setTimeout(() => done(false), 2_000);
  });

const status = (node: string) =>
  JSON.stringify({
    v: 1,
    node,
    state: 'online',
    version: '0.1.0',
    seq: 1,
    ts: Date.now(),
    heartbeatMs: 3_600_000,
    runId: `run-${node}`,
    capacity: {
      cpu: { cores: 4, loadPercent: 1 },
      memory: { total: 8 * GIB, available: 6 * GIB },
      gpus: [],
      docker: { available: true, version: '27.0.0' },
    },
    offer: { maxMemory: null, maxTasks: 8, executors: ['docker'], labels: {}, lostAfterMs: 0 },
    running: [],
  });

describeEmbeddedBroker('trust boundaries', () => {
  let server: Daemon;
  let url: string;
  let port: number;
  let dataDir: string;
  let admin: NodeJS.ProcessEnv;
  const creds: Record<string, Creds> = {};
  const assigned = new Map<string, { node: string; attempt: number }>();
  const clients: MqttClient[] = [];
  let echo: Server;
  let echoPort: number;
  const as = (args: string[]) => cli(args, { broker: url, env: admin });
  const audit = () => readFileSync(join(dataDir, 'audit.jsonl'), 'utf8');

  /** A hand-driven agent: announces itself, accepts and starts every assignment. */
  async function fakeAgent(node: string, localAddress = '127.0.0.1'): Promise<MqttClient> {
    const c = new mqtt.MqttClient(() => tcpConnect({ host: '127.0.0.1', port, localAddress }) as never, {
      clientId: `cutter-agent-${node}`,
      username: creds[node].username,
      password: creds[node].password,
      reconnectPeriod: 0,
      clean: true,
    });
    clients.push(c);
    await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
    c.on('message', (_topic, payload) => {
      const a = JSON.parse(payload.toString()) as { taskId: string; attempt: number };
      assigned.set(a.taskId, { node, attempt: a.attempt });
      for (const [i, type] of ['accepted', 'started'].entries())
        c.publish(
          t.taskEvents(a.taskId),
          JSON.stringify({ v: 1, taskId: a.taskId, attempt: a.attempt, node, seq: i, ts: Date.now(), type }),
          { qos: 1 },
        );
    });
    await c.subscribeAsync(t.nodeAssign(node), { qos: 1 });
    await c.publishAsync(t.nodeStatus(node), status(node), { qos: 1, retain: true });
    return c;
  }
  const connectAs = (who: Creds, clientId: string) =>
    mqtt.connectAsync(url, { clientId, ...who, reconnectPeriod: 0, connectTimeout: 5_000 }).then(
      (c) => (clients.push(c), c),
      (err: Error & { code?: number }) => err.code ?? err.message,
    );
  /** Submits a docker task with `-p server:80` to node fa; resolves once fa started it. */
  async function submit(serverPort: number): Promise<string> {
    const r = await as(['run', '-d', '--node', 'fa', '-p', `${serverPort}:80`, 'docker', 'run', 'busybox']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    await eventually(() => assigned.has(id));
    await eventually(async () => JSON.parse((await as(['tasks', 'show', id, '--json'])).stdout).state === 'running');
    return id;
  }
  const announce = (c: MqttClient, node: string, taskId: string, address: string | null, ports: object[]) =>
    c.publishAsync(t.nodePorts(node, taskId), JSON.stringify({ v: 1, node, taskId, attempt: 1, address, ports, ts: Date.now() }), {
      qos: 1,
      retain: true,
    });

  beforeAll(async () => {
    ({ daemon: server, url, port, dataDir } = await startServer([], { secure: true }));
    admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    for (const [name, args] of Object.entries({
      fa: ['--role', 'agent', '--node', 'fa'],
      fb: ['--role', 'agent', '--node', 'fb'],
      observer: ['--role', 'observer', '--name', 'watcher'],
      admin: ['--role', 'admin', '--name', 'other-admin'],
    })) {
      const r = await as(['token', 'create', ...args, '--json']);
      creds[name] = JSON.parse(r.stdout) as Creds;
    }
    echo = createServer((s) => s.pipe(s));
    echoPort = await freePort();
    await new Promise<void>((r) => echo.listen(echoPort, '127.0.0.2', r));
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    echo?.close();
    await server?.stop();
  });

  it("cuts an agent naming another node; quarantines a plausible event for another node's task", async () => {
    const fa = await fakeAgent('fa', '127.0.0.2');
    const fb = await fakeAgent('fb');
    const task = await submit(await freePort());
    const follower = await mqtt.connectAsync(url, { ...JSON.parse(readFileSync(admin.CUTTER_TOKEN_FILE!, 'utf8')), reconnectPeriod: 0 });
    clients.push(follower);
    const seen: string[] = [];
    follower.on('message', (topic, payload) => seen.push(`${topic} ${payload}`));
    await follower.subscribeAsync(t.allTaskEvents(), { qos: 1 });

    // Plausible (names fb, attempt 1): re-routed, fb stays connected, fa's task unaffected.
    let fbClosed = false;
    fb.once('close', () => (fbClosed = true));
    await fb.publishAsync(
      t.taskEvents(task),
      JSON.stringify({ v: 1, taskId: task, attempt: 1, node: 'fb', seq: 9, ts: Date.now(), type: 'started' }),
      { qos: 1 },
    );
    await fb.publishAsync(
      t.taskEvents(task),
      JSON.stringify({ v: 1, taskId: task, attempt: 1, node: 'fb', seq: 10, ts: Date.now(), type: 'result', exitCode: 0 }),
      { qos: 1 },
    );
    await new Promise((r) => setTimeout(r, 1_500));
    expect(seen.filter((s) => s.includes('"node":"fb"'))).toEqual([]);
    expect(fbClosed).toBe(false);
    expect(JSON.parse((await as(['tasks', 'show', task, '--json'])).stdout)).toMatchObject({ state: 'running', node: 'fa', attempt: 1 });
    await eventually(() => audit().includes('"outcome":"quarantined"'));
    expect(fa.connected).toBe(true);

    // Static: an event naming another node cuts the connection, audited.
    const closed = new Promise((r) => fb.once('close', r));
    fb.publish(
      t.taskEvents(task),
      JSON.stringify({ v: 1, taskId: task, attempt: 1, node: 'fa', seq: 11, ts: Date.now(), type: 'started' }),
      { qos: 1 },
    );
    await closed;
    await eventually(() => audit().includes('event does not carry \\"node\\": \\"fb\\"'));
  }, 60_000);

  it('opens a forward only for the node, its current attempt and its declared port, dialling the address the server sees, on 127.0.0.1', async () => {
    const fa = clients[0];
    const fb = await fakeAgent('fb');
    // fb announcing fa's task: quarantined, nothing listens.
    const p1 = await freePort();
    const t1 = await submit(p1);
    await announce(fb, 'fb', t1, '127.0.0.2', [{ container: 80, host: echoPort, server: p1 }]);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await canConnect('127.0.0.1', p1)).toBe(false);

    // fa announcing a port its task did not declare: refused, nothing listens.
    const undeclared = await freePort();
    await announce(fa, 'fa', t1, '127.0.0.2', [{ container: 22, host: echoPort, server: undeclared }]);
    await server.waitForLog((l) => l.msg === 'port forward refused' && String(l.reason).includes('did not declare'));
    expect(await canConnect('127.0.0.1', undeclared)).toBe(false);

    // fa naming an address that is not the one it connects from (127.0.0.1:22): refused.
    const p2 = await freePort();
    const t2 = await submit(p2);
    await announce(fa, 'fa', t2, '127.0.0.1', [{ container: 80, host: 22, server: p2 }]);
    await server.waitForLog((l) => l.msg === 'port forward refused' && String(l.reason).includes('is connected from 127.0.0.2'));
    expect(await canConnect('127.0.0.1', p2)).toBe(false);
    const refused = await cli(['ports', '--json'], { broker: url, env: admin });
    expect(JSON.parse(refused.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ taskId: t2, state: 'refused' })]));
    expect(audit()).toMatch(/"action":"port.forward","outcome":"refused"/);

    // Allowed: declared port, the node's own address; listens on 127.0.0.1 only.
    const p3 = await freePort();
    const t3 = await submit(p3);
    await announce(fa, 'fa', t3, '127.0.0.2', [{ container: 80, host: echoPort, server: p3 }]);
    await eventually(() => canConnect('127.0.0.1', p3), 10_000, 200);
    expect(await canConnect('127.0.0.3', p3)).toBe(false);
  }, 90_000);

  it('refuses an observer publishing a drain command', async () => {
    const obs = await connectAs(creds.observer, 'watcher-1');
    expect(typeof obs).toBe('object');
    const c = obs as MqttClient;
    const closed = new Promise((r) => c.once('close', r));
    c.publish(`${t.prefix}/v1/ha/nodes/fa/drain/set`, 'ON', { qos: 1 });
    await closed;
    await eventually(() => audit().includes('its drain switch needs an admin token'));
    const nodes = JSON.parse((await as(['nodes', 'list', '--json'])).stdout) as { node: string; drained?: boolean }[];
    expect(nodes.find((n) => n.node === 'fa')?.drained ?? false).toBe(false);
  });

  it("refuses the server's own client ids to other tokens; the Home Assistant link stays up", async () => {
    expect(await connectAs(creds.observer, 'cutter-ha-cutter')).toBe(2);
    expect(await connectAs(creds.admin, 'cutter-controller-x')).toBe(2);
    // HA's birth makes the link re-send discovery (not retained): it is still connected.
    const sub = await mqtt.connectAsync(url, { ...creds.admin, reconnectPeriod: 0 });
    clients.push(sub);
    const live = new Promise((r) => sub.on('message', (_t, _p, packet) => !packet.retain && r(true)));
    await sub.subscribeAsync('homeassistant/#', { qos: 1 });
    const obs = (await connectAs(creds.observer, 'watcher-2')) as MqttClient;
    await obs.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await expect(live).resolves.toBe(true);
  }, 30_000);
});

describeEmbeddedBroker('TLS without a plain listener', () => {
  it('opens no plain TCP listener when a TLS certificate is configured', async () => {
    const dir = tempDir();
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
    ]);
    expect(made.status, String(made.stderr)).toBe(0);
    const [plainPort, tlsPort] = [await freePort(), await freePort()];
    const { daemon } = await startServer(['--tls-cert', cert, '--tls-key', key, '--tls-port', String(tlsPort)], {
      secure: true,
      port: plainPort,
    });
    try {
      expect(await canConnect('127.0.0.1', tlsPort)).toBe(true);
      expect(await canConnect('127.0.0.1', plainPort)).toBe(false);
      expect(daemon.lines.some((l) => l.msg === 'plain TCP listener not opened: TLS is configured (--plain-listener to allow it)')).toBe(
        true,
      );
    } finally {
      await daemon.stop();
    }
  }, 30_000);
});
