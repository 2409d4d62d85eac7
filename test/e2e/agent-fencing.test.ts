/**
 * The agent alone, talked to directly through a bare in-process broker (no controller that would
 * fence or reschedule by itself): a newer attempt stops an older one; stale and redelivered
 * assignments are ignored; a container running (or exited) across an agent restart is re-adopted.
 * The Docker parts are skipped when no engine answers (except in CI, CUTTER_REQUIRE_ALL=1).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, ensureTestImage, startAgent, type Daemon } from '../harness.js';
import { type LogEvent, logText } from '../../shared/log-data.js';
import { needs } from '../services.js';
import { t, GATED, GATED_5, until, type Msg, watch, docker, containersOf, release, alive, bareBroker } from './recovery-helpers.js';

const engine = needs('docker');

describe('the agent alone (bare broker, no controller): fencing, de-duplication, re-adoption', () => {
  let broker: { url: string; close: () => Promise<void> };
  let pub: mqtt.MqttClient;
  let events: { messages: Msg[]; close: () => Promise<void> };
  const agents: Daemon[] = [];

  const assign = (node: string, taskId: string, attempt: number, spec: Record<string, unknown>) =>
    pub.publishAsync(
      t.nodeAssign(node),
      JSON.stringify({ v: 1, taskId, attempt, leaseExpiresAt: Date.now() + 60_000, spec, requirements: { memory: 1024, cpus: 0 } }),
      { qos: 1 },
    );

  beforeAll(async () => {
    broker = await bareBroker();
    pub = await mqtt.connectAsync(broker.url, { clientId: 'recovery-test-controller' });
    events = await watch(broker.url, t.allTaskEvents());
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await events?.close();
    await pub?.endAsync();
    await broker?.close();
  });

  it('a newer attempt stops the older one (whose events stop) before it starts; stale and redelivered assignments are ignored', async () => {
    const agent = await startAgent(broker.url, 'fenced', ['--allow-exec', '--log-level', 'debug']);
    agents.push(agent);
    const id = `fence-${Math.random().toString(16).slice(2, 10)}`;
    const ofTask = () => events.messages.filter((e) => e.taskId === id);
    await assign('fenced', id, 1, { kind: 'exec', argv: ['sleep', '30'], env: {} });
    const started1 = await until(() => ofTask().find((e) => e.attempt === 1 && e.type === 'started'));
    const pid1 = Number(started1.ref);
    expect(alive(pid1)).toBe(true);

    await assign('fenced', id, 3, { kind: 'exec', argv: ['sh', '-c', 'echo three'], env: {} });
    const result3 = await until(() => ofTask().find((e) => e.attempt === 3 && e.type === 'result'), 10_000);
    expect(result3).toMatchObject({ exitCode: 0, cancelled: false });
    expect(alive(pid1)).toBe(false);
    // Attempt 3 started only after attempt 1 had ended.
    const ended1 = await agent.waitForLog((l) => l.msg === 'stale attempt ended' && l.taskId === id && l.attempt === 1);
    const started3 = ofTask().find((e) => e.attempt === 3 && e.type === 'started')!;
    expect(Number(started3.ts)).toBeGreaterThanOrEqual(Number(ended1.time));
    // The stale attempt reported nothing after it was fenced.
    expect(
      ofTask()
        .filter((e) => e.attempt === 1)
        .map((e) => e.type),
    ).toEqual(['accepted', 'started']);

    await assign('fenced', id, 2, { kind: 'exec', argv: ['sleep', '30'], env: {} });
    await assign('fenced', id, 3, { kind: 'exec', argv: ['sh', '-c', 'echo three'], env: {} });
    await agent.waitForLog((l) => l.msg === 'ignored assignment of a stale attempt' && l.taskId === id && l.attempt === 2);
    await agent.waitForLog((l) => l.msg === 'ignored redelivered assignment' && l.taskId === id && l.attempt === 3);
    expect(
      ofTask()
        .filter((e) => e.type === 'accepted')
        .map((e) => e.attempt),
    ).toEqual([1, 3]);
  });

  it.skipIf(engine.skip)(
    `re-adopts a running container: new output only, seq above the old process, listed as running, a redelivered assignment ignored, one container${engine.tag}`,
    async () => {
      ensureTestImage();
      const id = `readopt-${Math.random().toString(16).slice(2, 10)}`;
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      const status = await watch(broker.url, t.nodeStatus('redeliver'));
      try {
        const spec = { kind: 'docker', image: TEST_IMAGE, cmd: GATED, env: {}, labels: {} };
        const first = await startAgent(broker.url, 'redeliver', []);
        agents.push(first);
        await assign('redeliver', id, 1, spec);
        await until(() => ofTask().some((e) => e.type === 'log' && logText(e as unknown as LogEvent).includes('before')));
        const labels = JSON.parse(docker('inspect', '--format', '{{json .Config.Labels}}', containersOf(id).split(' ')[0]));
        expect(labels).toMatchObject({
          'io.cutter.task': id,
          'io.cutter.attempt': '1',
          'io.cutter.node': 'redeliver',
          'io.cutter.memory': '1024',
        });
        await first.stop('SIGKILL');

        const restartedAt = Date.now();
        const second = await startAgent(broker.url, 'redeliver', ['--log-level', 'debug']);
        agents.push(second);
        await second.waitForLog((l) => l.msg === 're-adopted task' && l.taskId === id && l.memory === 1024);
        await until(() =>
          status.messages.some(
            (m) =>
              Number(m.ts) >= restartedAt &&
              (m.running as { taskId: string; attempt: number; memory: number }[] | undefined)?.some(
                (r) => r.taskId === id && r.attempt === 1 && r.memory === 1024,
              ),
          ),
        );
        await assign('redeliver', id, 1, spec);
        await second.waitForLog((l) => l.msg === 'ignored redelivered assignment' && l.taskId === id);
        expect(containersOf(id).split('\n')).toEqual([expect.stringMatching(/ running$/)]);

        release(id);
        const result = await until(() => ofTask().find((e) => e.type === 'result'), 10_000);
        expect(result).toMatchObject({ attempt: 1, exitCode: 7, oomKilled: false, cancelled: false });
        expect(result.seq).toBeGreaterThanOrEqual(restartedAt);
        expect(
          ofTask()
            .filter((e) => e.type === 'log')
            .map((e) => logText(e as unknown as LogEvent))
            .join(''),
        ).toBe('before\ndone\n');
        expect(ofTask().filter((e) => e.type === 'accepted')).toHaveLength(1);
        await until(() => containersOf(id) === '');
      } finally {
        await status.close();
      }
    },
  );

  it.skipIf(engine.skip)(
    `reports a container that exited while the agent was down, with the engine's times, and removes it${engine.tag}`,
    async () => {
      ensureTestImage();
      const id = `exited-${Math.random().toString(16).slice(2, 10)}`;
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      const first = await startAgent(broker.url, 'downtime', []);
      agents.push(first);
      await assign('downtime', id, 1, { kind: 'docker', image: TEST_IMAGE, cmd: GATED_5, env: {}, labels: {} });
      await until(() => ofTask().some((e) => e.type === 'started'));
      await first.stop('SIGKILL');
      const releasedAt = Date.now();
      release(id);
      await until(() => containersOf(id).endsWith(' exited'), 10_000);

      const restartedAt = Date.now();
      const second = await startAgent(broker.url, 'downtime', []);
      agents.push(second);
      const result = await until(() => ofTask().find((e) => e.type === 'result'), 10_000);
      expect(result).toMatchObject({ attempt: 1, exitCode: 5, oomKilled: false, cancelled: false });
      expect(result.seq).toBeGreaterThanOrEqual(restartedAt);
      const { startedAt, finishedAt } = result as { startedAt: number; finishedAt: number };
      expect(startedAt).toBeLessThan(releasedAt);
      expect(finishedAt).toBeGreaterThanOrEqual(releasedAt - 1_000);
      expect(finishedAt).toBeLessThan(restartedAt);
      await until(() => containersOf(id) === '');
    },
  );
});
