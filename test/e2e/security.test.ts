/**
 * Secure by default, over real sockets: the server refuses anonymous and wrong credentials,
 * tokens bind an agent to its node, the ACL keeps each role to its topics (denials logged), and a
 * revoked token is refused on its next connect.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { cli, eventually, startAgent, startServer, type Daemon, describeEmbeddedBroker, tempDir } from '../harness.js';

const t = topics();
type Creds = { username: string; password: string };

describeEmbeddedBroker('authentication and authorization', () => {
  let server: Daemon;
  let url: string;
  let admin: NodeJS.ProcessEnv;
  let agentA: Daemon;
  let agentB: Daemon;
  let credsA: Creds;
  let dataDir: string;
  const as = (args: string[]) => cli(args, { broker: url, env: admin });

  async function token(args: string[]): Promise<Creds> {
    const r = await as(['token', 'create', ...args, '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Creds;
  }
  const refusal = (opts: mqtt.IClientOptions) =>
    mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts }).then(
      async (c) => (await c.endAsync(), null),
      (err: Error & { code?: number }) => err.code ?? err.message,
    );

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    credsA = await token(['--role', 'agent', '--node', 'node-a']);
    const credsB = await token(['--role', 'agent', '--node', 'node-b']);
    [agentA, agentB] = await Promise.all([
      startAgent(url, 'node-a', ['--allow-exec'], { CUTTER_USERNAME: credsA.username, CUTTER_PASSWORD: credsA.password }),
      startAgent(url, 'node-b', ['--allow-exec'], { CUTTER_USERNAME: credsB.username, CUTTER_PASSWORD: credsB.password }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([agentA?.stop(), agentB?.stop()]);
    await server?.stop();
  });

  it('refuses a client without credentials, and one with a wrong password', async () => {
    expect(await refusal({ clientId: 'anon' })).toBe(5);
    expect(await refusal({ clientId: 'guess', username: credsA.username, password: 'wrong' })).toBe(4);
    // A CLI without credentials: another user's data home (on this one it finds the server's admin token through the data-dir hint).
    const r = await cli(['nodes', 'list', '--connect-timeout', '2000'], { broker: url, env: { XDG_DATA_HOME: tempDir() } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refused the connection');
    await server.waitForMsg('connection refused: bad credentials');
  });

  it('runs tasks end to end with tokens (agents publish their own status and events)', async () => {
    const r = await as(['run', '--node', 'node-b', 'exec', '--', 'echo', 'authorized']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('authorized\n');
  });

  it("binds an agent token to its node's client id: no takeover of another node's session", async () => {
    expect(await refusal({ clientId: 'cutter-agent-node-b', username: credsA.username, password: credsA.password })).toBe(2);
  });

  it("drops and logs agent A publishing agent B's status; B's retained status is unchanged", async () => {
    const a = await mqtt
      .connectAsync(url, { clientId: 'cutter-agent-node-a-x', username: credsA.username, password: credsA.password, reconnectPeriod: 0 })
      .catch(() => null);
    expect(a).toBeNull(); // a second client id for the same node is refused too
    // While agent A is live, a second connection for node-a is refused (issue 14: one node id, one
    // live agent) ...
    expect(await refusal({ clientId: 'cutter-agent-node-a', username: credsA.username, password: credsA.password })).toBe(2);
    // ... unless it is A's own process reconnecting (its last will names A's run id): what a stolen
    // token can still do, and the ACL still keeps it to node-a.
    const runId = await new Promise<string>((resolve) => {
      const w = mqtt.connect(url, { ...JSON.parse(readFileSync(admin.CUTTER_TOKEN_FILE!, 'utf8')), reconnectPeriod: 0 });
      w.on('message', (_t, p) => (w.end(true), resolve((JSON.parse(p.toString()) as { runId: string }).runId)));
      w.subscribe(t.nodeStatus('node-a'), { qos: 1 });
    });
    const rogue = await mqtt.connectAsync(url, {
      clientId: 'cutter-agent-node-a',
      username: credsA.username,
      password: credsA.password,
      reconnectPeriod: 0,
      will: { topic: t.nodeStatus('node-a'), payload: Buffer.from(JSON.stringify({ runId })), qos: 1, retain: false },
      clean: false,
    });
    const closed = new Promise((r) => rogue.once('close', r));
    rogue.publish(
      t.nodeStatus('node-b'),
      JSON.stringify({ v: 1, node: 'node-b', state: 'offline', version: 'x', seq: 1, ts: Date.now(), heartbeatMs: 1000, running: [] }),
      { qos: 1, retain: true },
    );
    await closed;
    rogue.end(true);
    await server.waitForLog((l) => l.msg === 'publish denied' && l.username === 'agent:node-a' && l.topic === t.nodeStatus('node-b'));
    const nodes = JSON.parse((await as(['nodes', 'list', '--json'])).stdout) as { node: string; state: string }[];
    expect(nodes.find((n) => n.node === 'node-b')?.state).toBe('online');
    // The real agent A reconnects (its session was taken over for a moment) and stays online.
    await eventually(
      async () =>
        (JSON.parse((await as(['nodes', 'list', '--json'])).stdout) as { node: string; state: string }[]).find((n) => n.node === 'node-a')
          ?.state === 'online',
    );
  });

  it('lets an observer read node status but not submit tasks or read logs', async () => {
    const obs = await token(['--role', 'observer', '--name', 'ha']);
    const c = await mqtt.connectAsync(url, {
      clientId: 'home-assistant',
      username: obs.username,
      password: obs.password,
      reconnectPeriod: 0,
    });
    const seen: string[] = [];
    c.on('message', (topic) => seen.push(topic));
    const granted = await c.subscribeAsync(t.allNodeStatus(), { qos: 1 });
    expect(granted[0].qos).toBe(1);
    // SUBACK 128 (failure): MQTT.js rejects the subscribe.
    await expect(c.subscribeAsync(t.allTaskEvents(), { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(c.subscribeAsync('cutter/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await server.waitForLog((l) => l.msg === 'subscribe denied' && l.username === 'observer:ha' && l.topic === 'cutter/#');
    await eventually(() => seen.includes(t.nodeStatus('node-a')));
    const closed = new Promise((r) => c.once('close', r));
    c.publish(
      t.requests('home-assistant'),
      JSON.stringify({ v: 1, id: '1', op: 'submit', spec: { kind: 'exec', argv: ['true'] }, requirements: {} }),
      { qos: 1 },
    );
    await closed;
    c.end(true);
    await server.waitForLog(
      (l) =>
        l.msg === 'publish denied' &&
        l.username === 'observer:ha' &&
        l.why === "observers publish only Home Assistant's status (its drain switch needs an admin token)",
    );
  });

  it('records who did what in the audit log: submissions by identity, refusals and denials', async () => {
    const lines = await eventually(() => {
      const all = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return all.some((l) => l.action === 'subscribe.denied') ? all : null;
    });
    expect(lines.find((l) => l.action === 'submit')).toMatchObject({ who: 'admin:local', outcome: 'ok' });
    expect(lines.find((l) => l.action === 'connect.refused' && l.who === credsA.username)).toMatchObject({
      outcome: 'denied',
      detail: expect.stringContaining('bad credentials'),
    });
    expect(lines.find((l) => l.action === 'publish.denied' && l.who === 'agent:node-a')).toMatchObject({ topic: t.nodeStatus('node-b') });
    expect(lines.find((l) => l.action === 'token.create')).toMatchObject({ who: 'admin:local', detail: 'agent:node-a' });
  });

  it('refuses a revoked token on its next connect', async () => {
    const extra = await token(['--role', 'admin', '--name', 'laptop']);
    expect(await refusal({ clientId: 'laptop-cli', ...extra })).toBeNull();
    const r = await as(['token', 'revoke', 'admin:laptop']);
    expect(r.stdout).toBe('admin:laptop revoked\n');
    expect(await refusal({ clientId: 'laptop-cli', ...extra })).toBe(4);
    const list = await as(['token', 'list']);
    expect(list.stdout).toMatch(/^admin:laptop\s+admin\s+.*ago\s+\S+ ago$/m);
    expect(list.stdout).not.toContain(extra.password);
  });
});
