/**
 * The agent's announcement built from its executors' fingerprints (agent/heartbeat.ts,
 * agent/capacity.ts, agent/executors/registry.ts): capacity merged from several executors, only
 * available kinds offered, and an executor whose fingerprint throws or hangs reported as
 * unavailable while the heartbeat goes on. No broker: statuses are caught from a fake client.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat } from '../../agent/heartbeat.js';
import { mergeCapacity, NO_DOCKER } from '../../agent/capacity.js';
import type { Executor, Fingerprint } from '../../agent/executors/executor.js';
import { ExecutorRegistry } from '../../agent/executors/registry.js';
import { ExecExecutor } from '../../agent/executors/exec.js';
import { decode } from '../../shared/codec.js';
import { AgentConfigSchema } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import type { MqttClient } from '../../shared/mqtt.js';
import { type NodeStatus, NodeStatusSchema, type TaskKind } from '../../shared/schemas/index.js';

// The host probe is the machine's own (systeminformation); fixed here so only fingerprints vary.
vi.mock('../../agent/probe.js', () => ({
  probeHost: async () => ({ cores: 4, loadPercent: 12.5, memoryTotal: 16 * 1024 ** 3, memoryAvailable: 8 * 1024 ** 3 }),
  probeGpus: async () => [],
}));

const log = createLogger('silent');
const HOST = { cores: 4, loadPercent: 12.5, memoryTotal: 16 * 1024 ** 3, memoryAvailable: 8 * 1024 ** 3 };
const DOCKER_UP: Fingerprint = { available: true, capacity: { docker: { available: true, version: '27.1.1', apiVersion: '1.46' } } };
const OLLAMA_UP: Fingerprint = {
  available: true,
  capacity: { ollama: { available: true, version: '0.9.0', models: [{ name: 'llama3.2:1b', size: 1_300_000_000 }], loaded: [] } },
};

/** An executor whose fingerprint is whatever `fp` does (resolve, throw, hang); it runs nothing. */
function fake(kind: TaskKind, fp: () => Promise<Fingerprint>): Executor {
  return {
    kind,
    fingerprint: fp,
    start: () => {
      throw new Error('not in this test');
    },
  };
}

/** A client that keeps the statuses published on it. */
function statusSink(): { client: MqttClient; statuses: NodeStatus[] } {
  const statuses: NodeStatus[] = [];
  const client = {
    publishAsync: async (_topic: string, payload: string) => {
      const d = decode(NodeStatusSchema, payload);
      if (!d.ok) throw new Error(`published status does not parse: ${d.error}`);
      statuses.push(d.value);
    },
  } as unknown as MqttClient;
  return { client, statuses };
}

function heartbeat(executors: Executor[], heartbeatMs = 1_000) {
  const config = AgentConfigSchema.parse({ nodeId: 'n1', heartbeatMs });
  const registry = new ExecutorRegistry(executors, log, 5_000);
  const hb = new Heartbeat({ config, runId: 'r1', log, executors: registry, running: () => [] });
  const sink = statusSink();
  hb.attach(sink.client);
  return { hb, registry, ...sink };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('capacity merged from executors', () => {
  it('puts each executor part next to the host figures; exec adds nothing', () => {
    const cap = mergeCapacity(HOST, [], [DOCKER_UP, { available: true }, OLLAMA_UP]);
    expect(cap.cpu).toEqual({ cores: 4, loadPercent: 12.5 });
    expect(cap.memory).toEqual({ total: HOST.memoryTotal, available: HOST.memoryAvailable });
    expect(cap.docker).toEqual(DOCKER_UP.capacity!.docker);
    expect(cap.ollama?.models.map((m) => m.name)).toEqual(['llama3.2:1b']);
  });

  it('says there is no Docker engine when no executor reports one (the wire requires the field)', () => {
    const cap = mergeCapacity(HOST, [], [{ available: true }]);
    expect(cap.docker).toEqual(NO_DOCKER);
    expect(cap.ollama).toBeUndefined();
  });

  it('publishes a NodeStatus that parses, offering only the kinds whose fingerprint is available', async () => {
    const dockerDown: Fingerprint = {
      available: false,
      error: 'Docker engine not reachable: connect ENOENT',
      capacity: { docker: { available: false, error: 'Docker engine not reachable: connect ENOENT' } },
    };
    const { hb, statuses } = heartbeat([
      fake('docker', async () => dockerDown),
      new ExecExecutor({ enabled: true, allowlist: [] }),
      fake('ollama', async () => OLLAMA_UP),
    ]);
    await hb.probeAll();
    await hb.publishNow();
    const s = statuses.at(-1)!;
    expect(s.state).toBe('online');
    expect(s.offer?.executors).toEqual(['exec', 'ollama']);
    expect(s.capacity?.docker).toEqual({ available: false, error: 'Docker engine not reachable: connect ENOENT' });
    expect(s.capacity?.ollama?.version).toBe('0.9.0');
  });

  it('does not offer exec on an agent started without --allow-exec', async () => {
    const { hb, statuses } = heartbeat([fake('docker', async () => DOCKER_UP), new ExecExecutor({ enabled: false, allowlist: [] })]);
    await hb.probeAll();
    await hb.publishNow();
    expect(statuses.at(-1)!.offer?.executors).toEqual(['docker']);
  });
});

describe('a failing fingerprint', () => {
  it('is reported unavailable, with the executor named, and the other executors are still offered', async () => {
    const { hb, registry, statuses } = heartbeat([
      fake('docker', async () => DOCKER_UP),
      fake('ollama', async () => {
        throw new Error('socket hang up');
      }),
    ]);
    await hb.probeAll();
    await hb.publishNow();
    expect(registry.fingerprintOf('ollama')).toMatchObject({ available: false, error: expect.stringMatching(/ollama.*socket hang up/) });
    expect(statuses.at(-1)!.offer?.executors).toEqual(['docker']);
    expect(statuses.at(-1)!.capacity?.ollama).toBeUndefined();
  });

  it('does not stop the heartbeat: a status goes out every interval while one fingerprint throws and another hangs', async () => {
    vi.useFakeTimers();
    let asked = 0;
    const { hb, registry, statuses } = heartbeat(
      [
        fake('docker', async () => {
          asked++;
          throw new Error('engine exploded');
        }),
        fake('exec', () => new Promise<Fingerprint>(() => undefined)),
        fake('ollama', async () => OLLAMA_UP),
      ],
      1_000,
    );
    const probed = hb.probeAll();
    await vi.advanceTimersByTimeAsync(5_000); // the hung fingerprint times out
    await probed;
    expect(registry.fingerprintOf('exec')).toMatchObject({ available: false, error: expect.stringContaining('did not answer') });
    await hb.start();
    await vi.advanceTimersByTimeAsync(10_000);
    hb.close();
    // One at start, then one a second; none waits for the hung fingerprint.
    expect(statuses.length).toBeGreaterThanOrEqual(10);
    expect(asked).toBeGreaterThanOrEqual(2);
    const seqs = statuses.map((s) => s.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(statuses.at(-1)!.offer?.executors).toEqual(['ollama']);
  });
});
