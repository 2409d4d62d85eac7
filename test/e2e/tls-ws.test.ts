/**
 * Transports: a secure server with a TLS listener (a throwaway CA made with openssl) and a
 * WebSocket listener. An agent and the CLI work over mqtts:// with --ca-file; plain MQTT on the
 * TLS port and TLS without the CA fail; with --tls-client-cert only a client certificate signed by
 * the CA gets in (tokens still apply); a WebSocket client reads retained node status, and the
 * WebSocket listener cuts oversized packets like the TCP one.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { topics } from '../../shared/topics.js';
import { cli, eventually, startAgent, startServer, tempDir, type Daemon, describeEmbeddedBroker } from '../harness.js';

const t = topics();
type Creds = { username: string; password: string };

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, in a fresh dir. */
function makeCerts(): Record<'ca' | 'cert' | 'key' | 'clientCert' | 'clientKey' | 'otherCa', string> {
  const dir = tempDir('cutter-test-tls-');
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=cutter test CA',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
  );
  // An unrelated CA: trusting it must not make the server's certificate valid.
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=other CA',
    '-keyout',
    p('other.key'),
    '-out',
    p('other.pem'),
  );
  writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', p('server.key'), '-out', p('server.csr'));
  ssl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('server.ext'),
    '-out',
    p('server.pem'),
  );
  writeFileSync(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=laptop', '-keyout', p('client.key'), '-out', p('client.csr'));
  ssl(
    'x509',
    '-req',
    '-in',
    p('client.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('client.ext'),
    '-out',
    p('client.pem'),
  );
  return {
    ca: p('ca.pem'),
    cert: p('server.pem'),
    key: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCa: p('other.pem'),
  };
}

/** One connection attempt, no retries: 'connected', or why it failed (error code/message, or 'closed'). */
function attempt(url: string, opts: mqtt.IClientOptions = {}): Promise<string> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, {
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      clientId: `probe-${Math.random().toString(36).slice(2, 8)}`,
      ...opts,
    });
    const done = (result: string) => {
      c.removeAllListeners();
      c.on('error', () => undefined);
      c.end(true);
      resolve(result);
    };
    c.once('connect', () => done('connected'));
    c.once('error', (err: Error & { code?: string | number }) => done(String(err.code ?? err.message)));
    c.once('close', () => done('closed'));
  });
}

describeEmbeddedBroker('TLS and WebSocket listeners', () => {
  let certs: ReturnType<typeof makeCerts>;
  let server: Daemon;
  let dataDir: string;
  let tlsPort: number;
  let wsPort: number;
  let mqttsUrl: string;
  let admin: Creds;
  let agent: Daemon;
  /** The CLI as the admin over mqtts://, trusting the test CA through CUTTER_CA_FILE. */
  const as = (args: string[]) =>
    cli(args, { broker: mqttsUrl, env: { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json'), CUTTER_CA_FILE: certs.ca } });

  async function token(args: string[]): Promise<Creds> {
    const r = await as(['token', 'create', ...args, '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Creds;
  }

  beforeAll(async () => {
    certs = makeCerts();
    let port: number;
    [port, tlsPort, wsPort] = await freePorts(3);
    ({ daemon: server, dataDir } = await startServer(
      ['--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-port', String(tlsPort), '--ws-port', String(wsPort), '--plain-listener'],
      { secure: true, port },
    ));
    mqttsUrl = `mqtts://127.0.0.1:${tlsPort}`;
    admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as Creds;
    const creds = await token(['--role', 'agent', '--node', 'tls-node']);
    agent = await startAgent(mqttsUrl, 'tls-node', ['--allow-exec', '--ca-file', certs.ca], {
      CUTTER_USERNAME: creds.username,
      CUTTER_PASSWORD: creds.password,
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('logs one listening line per listener, with its scheme and port', () => {
    const lines = server.lines.filter((l) => l.msg === 'broker listening').map((l) => `${l.scheme}:${l.port}`);
    expect(lines).toEqual(expect.arrayContaining([`mqtts:${tlsPort}`, `ws:${wsPort}`]));
    expect(lines).toHaveLength(3);
  });

  it('runs a task end to end with the agent and the CLI on mqtts:// (--ca-file / CUTTER_CA_FILE)', async () => {
    const r = await as(['run', '--node', 'tls-node', 'exec', '--', 'echo', 'over tls']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('over tls\n');
    const flag = await cli(['nodes', 'list', '--json', '--ca-file', certs.ca], {
      broker: mqttsUrl,
      env: { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') },
    });
    expect(flag.code, flag.stderr).toBe(0);
    expect((JSON.parse(flag.stdout) as { node: string; state: string }[]).find((n) => n.node === 'tls-node')?.state).toBe('online');
  });

  it('refuses plain MQTT on the TLS port, and TLS without the CA (a private CA the client does not trust)', async () => {
    expect(await attempt(`mqtt://127.0.0.1:${tlsPort}`, admin)).not.toBe('connected');
    expect(await attempt(mqttsUrl, admin)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(await attempt(mqttsUrl, { ...admin, ca: readPem(certs.otherCa) })).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    // With the CA, the same credentials get in; without credentials, the broker still refuses.
    expect(await attempt(mqttsUrl, { ...admin, ca: readPem(certs.ca) })).toBe('connected');
    expect(await attempt(mqttsUrl, { ca: readPem(certs.ca) })).toBe('5');
    const r = await cli(['nodes', 'list', '--connect-timeout', '1500'], {
      broker: mqttsUrl,
      env: { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--ca-file');
  });

  it('serves MQTT over WebSocket on /mqtt: an observer reads retained node status', async () => {
    const obs = await token(['--role', 'observer', '--name', 'browser']);
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, {
      clientId: 'browser-dashboard',
      username: obs.username,
      password: obs.password,
      reconnectPeriod: 0,
    });
    const seen: string[] = [];
    c.on('message', (topic, payload, packet) => packet.retain && payload.length > 0 && seen.push(topic));
    await c.subscribeAsync(t.allNodeStatus(), { qos: 1 });
    await eventually(() => seen.includes(t.nodeStatus('tls-node')));
    await c.endAsync();
    // Same auth as the other listeners.
    expect(await attempt(`ws://127.0.0.1:${wsPort}/mqtt`, { username: obs.username, password: 'wrong' })).toBe('4');
  });

  it('cuts oversized packets on the WebSocket listener too', async () => {
    // An MQTT packet announcing 10 MB in a tiny WebSocket message: the packet guard cuts it.
    const announced = await wsSendUntilClosed(`ws://127.0.0.1:${wsPort}/mqtt`, Buffer.from([0x10, 0x80, 0x80, 0x80, 0x05]));
    expect(announced).toBe(true);
    await server.waitForLog((l) => l.msg === 'connection cut: packet too large' && String(l.reason).includes('first packet (CONNECT)'));
    // One WebSocket message bigger than the packet limit: ws's maxPayload cuts it (close 1009).
    const huge = await wsSendUntilClosed(`ws://127.0.0.1:${wsPort}/mqtt`, Buffer.alloc(5 * 1024 * 1024, 0x61));
    expect(huge).toBe(1009);
  });
});

describeEmbeddedBroker('TLS with required client certificates', () => {
  let certs: ReturnType<typeof makeCerts>;
  let server: Daemon;
  let dataDir: string;
  let url: string;
  let admin: Creds;

  beforeAll(async () => {
    certs = makeCerts();
    const [port, tlsPort] = await freePorts(2);
    ({ daemon: server, dataDir } = await startServer(
      ['--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-port', String(tlsPort), '--tls-ca', certs.ca, '--tls-client-cert'],
      { secure: true, port },
    ));
    url = `mqtts://127.0.0.1:${tlsPort}`;
    admin = JSON.parse(readPem(join(dataDir, 'admin.json')).toString()) as Creds;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses a client without a certificate, and one whose certificate another CA signed', async () => {
    expect(await attempt(url, { ...admin, ca: readPem(certs.ca) })).not.toBe('connected');
    await server.waitForLog((l) => l.msg === 'TLS handshake failed (a valid client certificate is required)');
    const other = makeCerts();
    expect(
      await attempt(url, { ...admin, ca: readPem(certs.ca), cert: readPem(other.clientCert), key: readPem(other.clientKey) }),
    ).not.toBe('connected');
  });

  it('lets a client with a certificate signed by the CA in, and still checks its token', async () => {
    const tls = { ca: readPem(certs.ca), cert: readPem(certs.clientCert), key: readPem(certs.clientKey) };
    expect(await attempt(url, { ...admin, ...tls })).toBe('connected');
    expect(await attempt(url, { ...admin, password: 'wrong', ...tls })).toBe('4');
    const r = await cli(
      ['nodes', 'list', '--json', '--ca-file', certs.ca, '--cert-file', certs.clientCert, '--key-file', certs.clientKey],
      { broker: url, env: { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') } },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});

const readPem = (path: string): Buffer => readFileSync(path);

/** `n` different free loopback ports (held together while picked, so none is handed out twice). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const srv = createServer();
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    ports.push((srv.address() as { port: number }).port);
  }
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  return ports;
}

/**
 * Opens a WebSocket (subprotocol mqtt), sends `data` and waits for the broker to close it.
 * @returns the close code, or true when the connection ended without a close frame.
 */
function wsSendUntilClosed(url: string, data: Buffer): Promise<number | true> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'mqtt');
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('the broker did not close the WebSocket'))), 10_000);
    ws.on('error', () => undefined);
    ws.once('open', () => ws.send(data));
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code === 1006 || code === 1005 ? true : code);
    });
  });
}
