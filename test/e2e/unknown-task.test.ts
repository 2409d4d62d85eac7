/**
 * Unknown is not forbidden (issue 14): an agent reporting on a task the server does not know
 * (evicted, or lost with the server's state) is told to stop that work — a Cancel with reason
 * `unknown-task` on its cancel topic — and its result is acknowledged on its ack topic, so it stops
 * re-sending; nothing disconnects it. A real MQTT client with a real agent token, against
 * `cutter server` with tokens on.
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { cli, type Daemon, describeEmbeddedBroker, eventually, startServer } from '../harness.js';

const t = topics('cutter');

describeEmbeddedBroker('events for a task the server does not know', () => {
  let server: Daemon;
  let url: string;
  let agent: mqtt.MqttClient;
  const got: { topic: string; body: Record<string, unknown> }[] = [];
  let closes = 0;

  beforeAll(async () => {
    let dataDir: string;
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    const r = await cli(['token', 'create', '--role', 'agent', '--node', 'ghost', '--json'], {
      broker: url,
      env: { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') },
    });
    expect(r.code, r.stderr).toBe(0);
    const creds = JSON.parse(r.stdout) as { username: string; password: string };
    agent = await mqtt.connectAsync(url, { clientId: 'cutter-agent-ghost', clean: false, reconnectPeriod: 0, ...creds });
    agent.on('close', () => closes++);
    agent.on('message', (topic, payload) => got.push({ topic, body: JSON.parse(payload.toString('utf8')) as Record<string, unknown> }));
    await agent.subscribeAsync([t.nodeCancel('ghost'), t.nodeAck('ghost')], { qos: 1 });
  });

  afterAll(async () => {
    await agent?.endAsync();
    await server?.stop();
  });

  const event = (taskId: string, body: Record<string, unknown>, seq = 0) =>
    agent.publishAsync(t.taskEvents(taskId), JSON.stringify({ v: 1, taskId, attempt: 2, node: 'ghost', seq, ts: Date.now(), ...body }), {
      qos: 1,
    });

  it('tells the agent to stop that work and acknowledges its result; the agent stays connected', async () => {
    await event('no-such-task', { type: 'log', stream: 'stdout', data: 'still here\n' });
    const cancel = await eventually(() => got.find((m) => m.topic === t.nodeCancel('ghost')), 10_000);
    expect(cancel!.body).toMatchObject({ v: 1, taskId: 'no-such-task', attempt: 2, reason: 'unknown-task' });

    await event('gone-task', { type: 'result', exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 2 });
    const ack = await eventually(() => got.find((m) => m.topic === t.nodeAck('ghost')), 10_000);
    expect(ack!.body).toEqual({ v: 1, acks: [{ taskId: 'gone-task', attempt: 2 }] });
    // A result is not fenced: the run has ended already.
    expect(got.filter((m) => m.topic === t.nodeCancel('ghost')).map((m) => m.body.taskId)).toEqual(['no-such-task']);

    // More events of the unknown task: still connected, and the stop is not repeated within its damping interval.
    for (let seq = 1; seq <= 20; seq++) await event('no-such-task', { type: 'log', stream: 'stdout', data: 'more\n' }, seq);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(agent.connected).toBe(true);
    expect(closes).toBe(0);
    expect(got.filter((m) => m.topic === t.nodeCancel('ghost'))).toHaveLength(1);
    expect(server.child.exitCode).toBeNull();
  });
});
