/**
 * The agent across its own restarts and shutdowns, with real processes:
 * - re-adoption: an agent SIGKILLed while its container runs (or after it exited) is started again
 *   with the same node id and reports the container's result itself, with one container only;
 * - drain: SIGTERM announces `draining`, lets running tasks finish (or stops them after
 *   --drain-timeout), then announces `offline` and exits 0;
 * - fencing: a newer attempt stops an older one; stale and redelivered assignments are ignored.
 *
 * The re-adoption and drain tests run against `cutter server`; the fencing tests talk to the agent
 * directly through a bare in-process broker (no controller that would fence or reschedule by itself).
 * Docker parts are skipped when no engine answers (except in CI, CUTTER_REQUIRE_ALL=1).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { TEST_IMAGE, cli, cliBackground, ensureTestImage, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const t = topics('cutter');

/**
 * A container command that prints `before`, then runs until the test creates /tmp/go in it
 * (`release(taskId)`), then prints `done` and exits 7: it outlasts an agent restart however
 * slow the machine is, where a fixed `sleep 3` may not.
 */
const GATED = ['sh', '-c', 'echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo done; exit 7'];
/** Like GATED, silent, exits 5. */
const GATED_5 = ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 5'];

/** `eventually`, typed: resolves with the first truthy value. */
const until = async <T>(fn: () => Promise<T> | T, timeoutMs?: number, everyMs?: number) =>
  (await eventually(fn, timeoutMs, everyMs)) as NonNullable<T>;

type Msg = Record<string, unknown> & { type?: string; taskId?: string; attempt?: number; seq?: number; state?: string };

/** A raw MQTT subscriber that keeps every JSON message it receives on `filter`. */
async function watch(url: string, filter: string): Promise<{ messages: Msg[]; close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { clientId: `recovery-watch-${Math.random().toString(16).slice(2, 10)}` });
  const messages: Msg[] = [];
  client.on('message', (_topic, payload) => {
    if (payload.length === 0) return;
    try {
      messages.push(JSON.parse(payload.toString('utf8')) as Msg);
    } catch {
      // not ours
    }
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { messages, close: () => client.endAsync() };
}

function docker(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Containers (any state) of one task: `id state` per line. */
const containersOf = (taskId: string) => docker('ps', '-a', '--filter', `label=io.cutter.task=${taskId}`, '--format', '{{.ID}} {{.State}}');

/** Lets a GATED container of the task finish. */
const release = (taskId: string) => docker('exec', containersOf(taskId).split(' ')[0], 'touch', '/tmp/go');

async function showTask(url: string, id: string): Promise<Msg & { exitCode?: number | null; error?: { code: string } | null }> {
  return JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
}

async function nodeView(
  url: string,
  node: string,
): Promise<{ node: string; state: string; status: Msg & { running: { taskId: string; attempt: number }[]; reason?: string } } | undefined> {
  const r = await cli(['nodes', 'list', '--json'], { broker: url });
  return (JSON.parse(r.stdout) as { node: string; state: string; status: Msg & { running: { taskId: string; attempt: number }[] } }[]).find(
    (n) => n.node === node,
  );
}

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(engine.skip)(`re-adoption of containers after an agent restart${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await server?.stop();
  });

  it('a restarted agent re-adopts a running container: streams its new output and reports its exit code; one container only', async () => {
    const events = await watch(url, t.allTaskEvents());
    try {
      const first = await startAgent(url, 'phoenix', ['--lost-after', '60s']);
      agents.push(first);
      const r = await cli(['run', '-d', '--node', 'phoenix', 'docker', 'run', TEST_IMAGE, ...GATED], { broker: url });
      expect(r.code, r.stderr).toBe(0);
      const id = r.stdout.trim();
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      await until(() => ofTask().some((e) => e.type === 'log' && String(e.data).includes('before')));

      await first.stop('SIGKILL');
      const restartedAt = Date.now();
      const second = await startAgent(url, 'phoenix', ['--lost-after', '60s']);
      agents.push(second);
      const adopted = await second.waitForLog((l) => l.msg === 're-adopted task' && l.taskId === id);
      expect(adopted).toMatchObject({ attempt: 1 });
      // Still running, and the restart created no second container.
      expect(containersOf(id).split('\n')).toEqual([expect.stringMatching(/ running$/)]);
      // The heartbeat lists it: that is how the controller learns it lives on.
      await until(async () => (await nodeView(url, 'phoenix'))?.status.running.some((x) => x.taskId === id && x.attempt === 1));
      expect((await showTask(url, id)).state).toBe('running');

      release(id);
      const result = await until(() => ofTask().find((e) => e.type === 'result'), 15_000);
      expect(result).toMatchObject({ attempt: 1, node: 'phoenix', exitCode: 7, oomKilled: false, cancelled: false });
      // Events of the re-adopted run count on from the restart time, above the first process's.
      expect(result.seq).toBeGreaterThanOrEqual(restartedAt);
      const logs = ofTask()
        .filter((e) => e.type === 'log')
        .map((e) => String(e.data))
        .join('');
      expect(logs).toBe('before\ndone\n'); // new output only: `before` is not replayed
      await until(() => containersOf(id) === '');
      expect(ofTask().every((e) => e.attempt === 1)).toBe(true);

      // Controller side: the node came back within its lost-after window, so the re-adopted run's result counts.
      const final = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'failed' || s.state === 'succeeded' || s.state === 'lost' ? s : null;
      }, 15_000);
      expect(final).toMatchObject({ state: 'failed', exitCode: 7, attempt: 1, node: 'phoenix' });
      expect(containersOf(id)).toBe('');
    } finally {
      await events.close();
    }
  });

  it('a container that exited while its agent was down is reported with its exit code when the agent is back', async () => {
    const events = await watch(url, t.allTaskEvents());
    try {
      const first = await startAgent(url, 'lazarus', ['--lost-after', '60s']);
      agents.push(first);
      const r = await cli(['run', '-d', '--node', 'lazarus', 'docker', 'run', TEST_IMAGE, ...GATED_5], { broker: url });
      const id = r.stdout.trim();
      const ofTask = () => events.messages.filter((e) => e.taskId === id);
      await until(() => ofTask().some((e) => e.type === 'started'));

      await first.stop('SIGKILL');
      const releasedAt = Date.now();
      release(id);
      await until(() => containersOf(id).endsWith(' exited'), 10_000);
      const restartedAt = Date.now();
      const second = await startAgent(url, 'lazarus', ['--lost-after', '60s']);
      agents.push(second);

      const result = await until(() => ofTask().find((e) => e.type === 'result'), 10_000);
      expect(result).toMatchObject({ attempt: 1, node: 'lazarus', exitCode: 5, oomKilled: false, cancelled: false });
      // Times are the engine's: it finished after the test let it go, before the agent came back.
      const { startedAt, finishedAt } = result as { startedAt: number; finishedAt: number };
      expect(startedAt).toBeLessThan(releasedAt);
      expect(finishedAt).toBeGreaterThanOrEqual(releasedAt - 1_000); // engine and test clocks are the same host's; allow rounding
      expect(finishedAt).toBeLessThan(restartedAt);
      await until(() => containersOf(id) === '');

      // Controller side.
      const final = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'failed' || s.state === 'succeeded' || s.state === 'lost' ? s : null;
      }, 15_000);
      expect(final).toMatchObject({ state: 'failed', exitCode: 5, attempt: 1 });
    } finally {
      await events.close();
    }
  });
});

describe('drain on SIGTERM', () => {
  let server: Daemon;
  let url: string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('announces draining, lets the running task finish with its output, then goes offline and exits 0', async () => {
    const statuses = await watch(url, t.nodeStatus('drainer'));
    const agent = await startAgent(url, 'drainer', ['--allow-exec']);
    const gate = join(mkdtempSync(join(tmpdir(), 'cutter-drain-')), 'go');
    try {
      const run = cliBackground(
        ['run', '--node', 'drainer', 'exec', '--', 'sh', '-c', `echo begun; while [ ! -e ${gate} ]; do sleep 0.1; done; echo finished`],
        url,
      );
      await until(() => run.stdout.includes('begun'));
      agent.child.kill('SIGTERM');

      const view = await until(async () => {
        const n = await nodeView(url, 'drainer');
        return n?.state === 'draining' ? n : null;
      });
      expect(view.status.running).toHaveLength(1);
      // Heartbeats go on while it drains; the agent waits for the task.
      const drainingAt = Date.now();
      await until(() => statuses.messages.some((m) => m.state === 'draining' && Number(m.ts) > drainingAt));
      expect(agent.child.exitCode).toBe(null);

      writeFileSync(gate, '');
      expect(await run.exited).toBe(0);
      expect(run.stdout).toBe('begun\nfinished\n');
      expect(await agent.exited).toBe(0);

      const n = await until(async () => {
        const v = await nodeView(url, 'drainer');
        return v?.state === 'offline' ? v : null;
      });
      expect(n.status.reason).toBe('agent stopped');
      const states = statuses.messages.map((s) => s.state);
      expect(states.indexOf('draining')).toBeGreaterThan(states.indexOf('online'));
      expect(states.at(-1)).toBe('offline');
      expect(states.slice(states.indexOf('draining'), -1).every((s) => s === 'draining')).toBe(true);
    } finally {
      await statuses.close();
      await agent.stop('SIGKILL');
    }
  });

  it('with --drain-timeout 500ms stops a task that would run on, reports it AGENT_SHUTDOWN, and exits 0 within a few seconds', async () => {
    const events = await watch(url, t.allTaskEvents());
    const agent = await startAgent(url, 'impatient', ['--allow-exec', '--drain-timeout', '500ms']);
    try {
      const r = await cli(['run', '-d', '--node', 'impatient', 'exec', '--', 'sleep', '30'], { broker: url });
      const id = r.stdout.trim();
      const started = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started'));
      const pid = Number(started.ref);
      expect(alive(pid)).toBe(true);

      const t0 = Date.now();
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(alive(pid)).toBe(false);
      const failed = events.messages.find((e) => e.taskId === id && (e.type === 'failed' || e.type === 'result'));
      expect(failed).toMatchObject({ type: 'failed', code: 'AGENT_SHUTDOWN', attempt: 1 });
      expect(agent.lines.some((l) => l.msg === 'drain timeout: stopping the tasks left')).toBe(true);

      // Controller side: the attempt is over (the task is rescheduled, or queued for its node).
      const s = await until(async () => {
        const x = await showTask(url, id);
        return x.state !== 'running' && x.state !== 'unknown' ? x : null;
      });
      expect(s.state).not.toBe('running');
    } finally {
      await events.close();
      await agent.stop('SIGKILL');
    }
  });
});

/** A bare MQTT broker in this process: the agent alone, no controller answering for it. */
async function bareBroker(): Promise<{ url: string; close: () => Promise<void> }> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        aedes.close(() => undefined);
      }),
  };
}

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
        await until(() => ofTask().some((e) => e.type === 'log' && String(e.data).includes('before')));
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
            .map((e) => String(e.data))
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
