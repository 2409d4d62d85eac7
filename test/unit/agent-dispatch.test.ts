/**
 * Task dispatch by kind (agent/executors/registry.ts, agent/tasks.ts): a task goes to the
 * executor of its `spec.kind`; a kind the node has no executor for, has turned off, or whose
 * executor is failing is refused with a `failed` event whose code says which. Also the executors'
 * own policy (`admit`) and the de-duplication ledger. No broker: events are caught from a fake client.
 */
import { describe, expect, it } from 'vitest';
import { AttemptLedger } from '../../agent/attempts.js';
import { DockerExecutor } from '../../agent/executors/docker.js';
import { ExecExecutor } from '../../agent/executors/exec.js';
import type { Executor, ExecutorContext, Fingerprint, Outcome } from '../../agent/executors/executor.js';
import { ExecutorRegistry } from '../../agent/executors/registry.js';
import { TaskEvents } from '../../agent/task-events.js';
import { TaskRunner } from '../../agent/tasks.js';
import { decode } from '../../shared/codec.js';
import { createLogger } from '../../shared/logger.js';
import type { MqttClient } from '../../shared/mqtt.js';
import { type Assignment, AssignmentSchema, type TaskEvent, TaskEventSchema, type TaskKind } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';

const log = createLogger('silent');
const MiB = 1024 ** 2;

/** An executor that records what it was asked to start and ends each task at once with exit code 0. */
function recording(kind: TaskKind, fp: Fingerprint = { available: true }): Executor & { started: string[] } {
  const started: string[] = [];
  return {
    kind,
    started,
    fingerprint: async () => fp,
    start(_spec, ctx: ExecutorContext) {
      started.push(ctx.taskId);
      ctx.started('ref-1');
      const outcome: Outcome = { exitCode: 0, oomKilled: false, cancelled: false, startedAt: 1, finishedAt: 2 };
      return { done: Promise.resolve(outcome), stop: async () => undefined };
    },
  };
}

/** A task runner over `executors` (fingerprinted) whose events land in `events`. */
async function runner(executors: Executor[]) {
  const registry = new ExecutorRegistry(executors, log);
  await registry.refresh();
  const events: TaskEvent[] = [];
  const client = {
    publishAsync: async (_topic: string, payload: string) => {
      const d = decode(TaskEventSchema, payload);
      if (!d.ok) throw new Error(`published event does not parse: ${d.error}`);
      events.push(d.value);
    },
  } as unknown as MqttClient;
  const taskEvents = new TaskEvents('n1', topics('cutter'), []);
  taskEvents.attach(client);
  const tasks = new TaskRunner({
    config: { nodeId: 'n1', maxTasks: 4 },
    runId: 'run-1',
    log,
    executors: registry,
    events: taskEvents,
    services: [],
    announce: () => undefined,
  });
  return { registry, tasks, events };
}

function assignment(taskId: string, spec: Record<string, unknown>): Assignment {
  return AssignmentSchema.parse({ v: 1, taskId, attempt: 1, leaseExpiresAt: 0, spec, requirements: {}, nodeRunId: 'run-1' });
}

const failure = (events: TaskEvent[], taskId: string) => events.find((e) => e.taskId === taskId && e.type === 'failed');

describe('dispatch by kind', () => {
  it('starts each task on the executor of its kind and reports its result', async () => {
    const docker = recording('docker');
    const exec = recording('exec');
    const { tasks, events } = await runner([docker, exec]);
    await tasks.onAssignment(assignment('t-docker', { kind: 'docker', image: 'busybox' }));
    await tasks.onAssignment(assignment('t-exec', { kind: 'exec', argv: ['true'] }));
    expect(docker.started).toEqual(['t-docker']);
    expect(exec.started).toEqual(['t-exec']);
    expect(events.filter((e) => e.taskId === 't-exec').map((e) => e.type)).toEqual(['accepted', 'started', 'result']);
  });

  it('refuses a kind the node has no executor for, with EXECUTOR_UNAVAILABLE naming node and kind', async () => {
    const docker = recording('docker');
    const { registry, tasks, events } = await runner([docker]);
    expect(registry.dispatch('wasm', 'n1')).toEqual({ code: 'EXECUTOR_UNAVAILABLE', message: 'node n1 has no wasm executor' });
    await tasks.onAssignment(assignment('t-llm', { kind: 'ollama', op: 'generate', model: 'llama3.2', request: { prompt: 'hi' } }));
    expect(failure(events, 't-llm')).toMatchObject({ code: 'EXECUTOR_UNAVAILABLE', message: 'node n1 has no ollama executor' });
    expect(docker.started).toEqual([]);
  });

  it('refuses exec on a node that turned it off with EXECUTOR_DISABLED and says how to turn it on', async () => {
    const { tasks, events } = await runner([recording('docker'), new ExecExecutor({ enabled: false, allowlist: [] })]);
    await tasks.onAssignment(assignment('t-sh', { kind: 'exec', argv: ['sh', '-c', 'true'] }));
    const f = failure(events, 't-sh');
    expect(f).toMatchObject({ code: 'EXECUTOR_DISABLED' });
    expect(f && 'message' in f ? f.message : '').toContain('--allow-exec');
  });

  it('refuses a kind whose executor is failing with EXECUTOR_UNAVAILABLE and the fingerprint’s reason', async () => {
    const down = recording('docker', { available: false, error: 'Docker engine not reachable: connect ENOENT /var/run/docker.sock' });
    const { tasks, events } = await runner([down]);
    await tasks.onAssignment(assignment('t-1', { kind: 'docker', image: 'busybox' }));
    expect(failure(events, 't-1')).toMatchObject({
      code: 'EXECUTOR_UNAVAILABLE',
      message: 'Docker engine not reachable: connect ENOENT /var/run/docker.sock',
    });
    expect(down.started).toEqual([]);
  });

  it('refuses two executors for one kind when the registry is built', () => {
    expect(() => new ExecutorRegistry([recording('exec'), recording('exec')], log)).toThrow(/two executors for kind exec/);
  });

  it('takes a redelivered assignment once', async () => {
    const exec = recording('exec');
    const { tasks } = await runner([exec]);
    const a = assignment('t-once', { kind: 'exec', argv: ['true'] });
    await tasks.onAssignment(a);
    await tasks.onAssignment(a);
    expect(exec.started).toEqual(['t-once']);
  });
});

describe('executor policy (admit)', () => {
  it('docker: fills in the default memory limit, refuses images outside allowedImages and limits over maxTaskMemory', () => {
    const docker = new DockerExecutor(undefined, { allowedImages: ['busybox*'], maxTaskMemory: 512 * MiB, defaultTaskMemory: 256 * MiB });
    const base = { kind: 'docker' as const, cmd: [], env: {}, labels: {} };
    expect(docker.admit({ ...base, image: 'busybox:1.36' })).toEqual({ spec: { ...base, image: 'busybox:1.36', memoryLimit: 256 * MiB } });
    expect(docker.admit({ ...base, image: 'alpine' })).toEqual({ denied: expect.stringContaining('image alpine is not allowed here') });
    expect(docker.admit({ ...base, image: 'busybox', memoryLimit: 1024 * MiB })).toEqual({
      denied: expect.stringContaining('maxTaskMemory'),
    });
  });

  it('exec: a bare name in the allowlist allows that bare command only, not a path ending in it', () => {
    const exec = new ExecExecutor({ enabled: true, allowlist: ['python3', '/usr/bin/env'] });
    const spec = (argv: string[]) => ({ kind: 'exec' as const, argv, env: {} });
    expect(exec.admit(spec(['python3', '-V']))).toEqual({ spec: spec(['python3', '-V']) });
    expect(exec.admit(spec(['/usr/bin/env']))).toEqual({ spec: spec(['/usr/bin/env']) });
    expect(exec.admit(spec(['/tmp/python3']))).toEqual({ denied: expect.stringContaining('command /tmp/python3 is not allowed here') });
  });
});

describe('attempt ledger', () => {
  it('drops redeliveries and stale attempts, and remembers a cancel that came before its assignment', () => {
    const l = new AttemptLedger(3);
    l.remember('a', 2);
    expect(l.has('a', 2)).toBe(true);
    expect(l.latest('a')).toBe(2);
    l.cancelEarly('b', 1);
    l.cancelEarly('a', 2); // taken already: not an early cancel
    expect(l.takeEarlyCancel('b', 1)).toBe(true);
    expect(l.takeEarlyCancel('b', 1)).toBe(false);
    expect(l.takeEarlyCancel('a', 2)).toBe(false);
  });

  it('forgets the oldest entries past its limit', () => {
    const l = new AttemptLedger(2);
    for (const t of ['a', 'b', 'c']) l.remember(t, 1);
    expect(l.has('a', 1)).toBe(false);
    expect(l.has('c', 1)).toBe(true);
  });
});
