/**
 * Hostile and malformed input: a raw MQTT client publishes garbage to every topic the controller
 * and the agent subscribe to. Each message must be logged and dropped, and both processes must
 * keep working (a task still runs end to end afterwards).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { cli, startAgent, startServer, type Daemon } from '../harness.js';

const t = topics('cutter');

const GARBAGE: [string, string | Buffer][] = [
  ['not json', 'this is not json {'],
  ['truncated json', '{"v":1,"node":"a'],
  ['wrong types', JSON.stringify({ v: 1, node: 42, state: ['online'], seq: 'x' })],
  ['wrong version', JSON.stringify({ v: 2 })],
  ['json null', 'null'],
  ['json array', '[1,2,3]'],
  ['prototype keys', '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"v":1}'],
  ['deep nesting', `${'['.repeat(5000)}${']'.repeat(5000)}`],
  ['huge string', JSON.stringify({ v: 1, id: 'x'.repeat(3 * 1024 * 1024) })],
  ['binary', Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80])],
];

describe('malformed messages are logged and dropped; nothing crashes', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let raw: mqtt.MqttClient;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer(['--log-level', 'debug']));
    agent = await startAgent(url, 'target', ['--allow-exec', '--log-level', 'debug']);
    raw = await mqtt.connectAsync(url, { clientId: 'hostile-raw-client' });
  });
  afterAll(async () => {
    await raw?.endAsync();
    await agent?.stop();
    await server?.stop();
  });

  const targets = [
    { topic: t.nodeStatus('target'), who: () => server },
    { topic: t.taskEvents('abc123'), who: () => server },
    { topic: t.requests('hostile'), who: () => server },
    { topic: t.nodeAssign('target'), who: () => agent },
    { topic: t.nodeCancel('target'), who: () => agent },
  ];

  for (const target of targets) {
    it(`drops every kind of garbage on ${target.topic}`, async () => {
      for (const [, payload] of GARBAGE) await raw.publishAsync(target.topic, payload, { qos: 1 });
      const daemon = target.who();
      await daemon.waitForLog(
        (l) =>
          l.msg === 'dropped invalid message' &&
          l.topic === target.topic &&
          daemon.lines.filter((x) => x.msg === 'dropped invalid message' && x.topic === target.topic).length >= GARBAGE.length,
      );
      const dropped = daemon.lines.filter((l) => l.msg === 'dropped invalid message' && l.topic === target.topic);
      expect(dropped.length).toBe(GARBAGE.length);
      for (const l of dropped) expect(typeof l.error).toBe('string');
      expect(dropped.some((l) => String(l.error).startsWith('not JSON'))).toBe(true);
      expect(dropped.some((l) => String(l.error).includes('exceeds'))).toBe(true);
    });
  }

  it('drops schema-valid messages that lie about who they are', async () => {
    const status = { v: 1, node: 'someone-else', state: 'offline', version: '0', seq: 1, ts: Date.now(), heartbeatMs: 1000, running: [] };
    await raw.publishAsync(t.nodeStatus('target'), JSON.stringify(status), { qos: 1 });
    await server.waitForMsg('dropped node status: node id does not match its topic');
    const event = { v: 1, taskId: 'ffffffffffff', attempt: 1, node: 'target', seq: 0, ts: Date.now(), type: 'accepted' };
    await raw.publishAsync(t.taskEvents('ffffffffffff'), JSON.stringify(event), { qos: 1 });
    await server.waitForMsg('dropped event for unknown task');
  });

  it('answers an invalid request that has an id with INVALID_REQUEST naming the bad field', async () => {
    await raw.subscribeAsync(t.replies('hostile2'), { qos: 1 });
    const reply = new Promise<Record<string, unknown>>((resolve) =>
      raw.on('message', (topic, payload) => topic === t.replies('hostile2') && resolve(JSON.parse(payload.toString()))),
    );
    await raw.publishAsync(t.requests('hostile2'), JSON.stringify({ v: 1, id: 'r1', op: 'submit', spec: { kind: 'docker' } }), { qos: 1 });
    expect(await reply).toMatchObject({ v: 1, id: 'r1', ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(String(((await reply).error as { message: string }).message)).toMatch(/^invalid request: spec\.image/);
  });

  it('both processes are still up and a task still runs end to end', async () => {
    expect(server.child.exitCode).toBeNull();
    expect(agent.child.exitCode).toBeNull();
    const nodes = await cli(['nodes', 'list', '--json'], { broker: url });
    expect(JSON.parse(nodes.stdout).find((n: { node: string }) => n.node === 'target').state).toBe('online');
    const r = await cli(['run', '--node', 'target', 'exec', '--', 'echo', 'still alive'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('still alive\n');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
