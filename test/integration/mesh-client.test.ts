/**
 * The one mesh client (shared/client/) against a real `cutter server` and real agents from dist/,
 * with exec tasks (no Docker): every way a follow ends — a task that succeeds, one that fails, a
 * cancel, a lost node, a follow timeout and the connection gone — ends the events iterable and
 * settles `result` as run-task.ts documents; a consumer that does not read loses output, not memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshClient, outcomeError, runTask, type TaskOutcome, type TaskRun, type TaskUpdate } from '../../shared/client/index.js';
import { CliConfigSchema } from '../../shared/config.js';
import { logBytes, logText } from '../../shared/log-data.js';
import { TaskStateSchema } from '../../shared/schemas/index.js';
import { type Daemon, startAgent, startServer } from '../harness.js';

const exec = (script: string) => ({ kind: 'exec' as const, argv: ['sh', '-c', script], env: {} });

/** Reads a run's events to their end. */
async function drain(run: TaskRun): Promise<{ updates: TaskUpdate[]; outcome: TaskOutcome }> {
  const updates: TaskUpdate[] = [];
  for await (const u of run.events) updates.push(u);
  return { updates, outcome: await run.result };
}

/** Every stdout byte of the run, as text. */
const stdout = (updates: TaskUpdate[]) =>
  Buffer.concat(
    updates.flatMap((u) => (u.type === 'event' && u.event.type === 'log' && u.event.stream === 'stdout' ? [logBytes(u.event)] : [])),
  ).toString('utf8');

async function connect(url: string): Promise<MeshClient> {
  return MeshClient.connect(CliConfigSchema.parse({ broker: url, timeoutMs: 5_000 }), { clientIdPrefix: 'mesh-client-test' });
}

describe('runTask on a real mesh', () => {
  let server: Daemon;
  let agent: Daemon;
  let client: MeshClient;

  beforeAll(async () => {
    const s = await startServer();
    server = s.daemon;
    agent = await startAgent(s.url, 'worker', ['--allow-exec']);
    client = await connect(s.url);
  });
  afterAll(async () => {
    await client?.close();
    await agent?.stop('SIGKILL');
    await server?.stop();
  });

  it('follows a task that succeeds: all its output in order, then the terminal state, then the end', async () => {
    const run = await runTask(client, { spec: exec('echo one; sleep 0.2; echo two') });
    const { updates, outcome } = await drain(run);
    expect(stdout(updates)).toBe('one\ntwo\n');
    expect(outcome).toMatchObject({ taskId: run.taskId, end: 'terminal', state: { state: 'succeeded', exitCode: 0, node: 'worker' } });
    expect(outcome.ending).toMatchObject({ type: 'result', exitCode: 0 });
    expect(outcomeError(outcome)).toBeNull();
    const types = updates.flatMap((u) => (u.type === 'event' ? [u.event.type] : []));
    expect(types[0]).toBe('accepted');
    expect(types.at(-1)).toBe('result');
    const last = updates.at(-1)!;
    expect(last.type === 'state' && last.state.state).toBe('succeeded');
  });

  it('follows a task that fails: the terminal state carries its exit code, outcomeError its code', async () => {
    const run = await runTask(client, { spec: exec('echo bad >&2; exit 3') });
    const { updates, outcome } = await drain(run);
    expect(outcome).toMatchObject({ end: 'terminal', state: { state: 'failed', exitCode: 3, error: { code: 'EXIT_CODE' } } });
    expect(outcomeError(outcome)?.code).toBe('EXIT_CODE');
    expect(updates.some((u) => u.type === 'event' && u.event.type === 'log' && logText(u.event) === 'bad\n')).toBe(true);
  });

  it('throws the submit error (NO_FIT with the reason per node) and follows nothing', async () => {
    await expect(
      runTask(client, { spec: exec('true'), requirements: { memory: 2 ** 50 }, options: { queue: false } }),
    ).rejects.toMatchObject({ code: 'NO_FIT' });
  });

  it('cancel() stops a running task; the follow ends on its terminal state cancelled', async () => {
    const run = await runTask(client, { spec: exec('echo started; sleep 30') });
    const seen: TaskUpdate[] = [];
    for await (const u of run.events) {
      seen.push(u);
      if (u.type === 'event' && u.event.type === 'log') await run.cancel(0);
    }
    const outcome = await run.result;
    expect(outcome).toMatchObject({ end: 'terminal', state: { state: 'cancelled' } });
    expect(outcomeError(outcome)?.code).toBe('CANCELLED');
    expect(stdout(seen)).toBe('started\n');
  });

  it('a follow timeout ends the follow with the last state and leaves the task running', async () => {
    const t0 = Date.now();
    const run = await runTask(client, { spec: exec('echo up; sleep 30') }, { followTimeoutMs: 1_500 });
    const { outcome } = await drain(run);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(outcome.end).toBe('timeout');
    expect(outcome.state?.state).toMatch(/assigned|running/);
    expect(outcomeError(outcome, 1_500)?.code).toBe('TIMEOUT');
    // The task itself runs on until cancelled.
    const s = await client.request({ op: 'task.get', taskId: run.taskId }, TaskStateSchema);
    expect(s.state).toBe('running');
    await client.request({ op: 'cancel', taskId: run.taskId, graceMs: 0 }, TaskStateSchema);
  });

  it('a slow consumer loses output beyond the bound (one dropped marker per gap), never the end', async () => {
    const script = 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; sleep 0.15; done';
    const run = await runTask(client, { spec: exec(script) }, { buffer: { maxItems: 4, maxBytes: 1 << 20 } });
    await run.result; // read nothing until the task is over
    const { updates, outcome } = await drain(run);
    expect(outcome.state?.state).toBe('succeeded');
    const dropped = updates.filter((u) => u.type === 'dropped');
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.reduce((n, u) => n + (u.type === 'dropped' ? u.items : 0), 0)).toBeGreaterThan(0);
    // Lifecycle events and the final state are kept whatever the bound.
    expect(updates.some((u) => u.type === 'event' && u.event.type === 'result')).toBe(true);
    expect(updates.at(-1)).toMatchObject({ type: 'state', state: { state: 'succeeded' } });
  });
});

describe('runTask when the mesh goes away', () => {
  const daemons: Daemon[] = [];
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
  });

  it('a lost node ends a task that may not be retried: terminal state lost', async () => {
    const s = await startServer();
    daemons.push(s.daemon);
    const doomed = await startAgent(s.url, 'doomed', ['--allow-exec']);
    daemons.push(doomed);
    const client = await connect(s.url);
    try {
      const run = await runTask(client, {
        spec: exec('echo here; sleep 60'),
        options: { restart: 'never', lostAfterMs: 0 },
      });
      for await (const u of run.events) if (u.type === 'event' && u.event.type === 'log') await doomed.stop('SIGKILL');
      const outcome = await run.result;
      expect(outcome).toMatchObject({ end: 'terminal', state: { state: 'lost', node: 'doomed', error: { code: 'NODE_LOST' } } });
    } finally {
      await client.close();
    }
  });

  it('a lost attempt that the restart policy retries is followed on to the end of the next attempt', async () => {
    const s = await startServer();
    daemons.push(s.daemon);
    const agents = new Map<string, Daemon>();
    for (const node of ['one', 'two']) {
      const a = await startAgent(s.url, node, ['--allow-exec']);
      daemons.push(a);
      agents.set(node, a);
    }
    const client = await connect(s.url);
    try {
      const run = await runTask(client, { spec: exec('echo go; sleep 3; echo finished'), options: { lostAfterMs: 0 } });
      let killed: string | undefined;
      const updates: TaskUpdate[] = [];
      for await (const u of run.events) {
        updates.push(u);
        if (!killed && u.type === 'event' && u.event.type === 'log') {
          killed = u.event.node;
          await agents.get(killed)!.stop('SIGKILL');
        }
      }
      const outcome = await run.result;
      expect(outcome).toMatchObject({ end: 'terminal', state: { state: 'succeeded', attempt: 2 } });
      expect(outcome.state!.node).not.toBe(killed);
      expect(updates.some((u) => u.type === 'state' && u.state.state === 'queued' && u.state.attempt === 1)).toBe(true);
      expect(stdout(updates)).toBe('go\ngo\nfinished\n');
    } finally {
      await client.close();
    }
  });

  it('the connection gone (server killed) ends the follow after the grace, with the last state seen', async () => {
    const s = await startServer();
    daemons.push(s.daemon);
    daemons.push(await startAgent(s.url, 'orphan', ['--allow-exec']));
    const client = await connect(s.url);
    try {
      const run = await runTask(client, { spec: exec('echo alive; sleep 60') }, { connectionGraceMs: 1_000 });
      const updates: TaskUpdate[] = [];
      let killedAt = 0;
      for await (const u of run.events) {
        updates.push(u);
        if (!killedAt && u.type === 'event' && u.event.type === 'log') {
          killedAt = Date.now();
          await s.daemon.stop('SIGKILL');
        }
      }
      const outcome = await run.result;
      expect(outcome.end).toBe('disconnected');
      expect(outcome.state?.state).toBe('running');
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(900);
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      expect(outcomeError(outcome)?.code).toBe('NO_CONTROLLER');
      expect(stdout(updates)).toBe('alive\n');
    } finally {
      await client.close();
    }
  });
});
