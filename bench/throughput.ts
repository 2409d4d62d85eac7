/**
 * Placement throughput: a real `cutter server` (embedded Aedes + controller, its own process),
 * `agents` simulated agents (bench/sim-agents.ts: real MQTT connections, the real protocol, one
 * process) and `tasks` no-op exec tasks submitted through one MQTT client with up to `window`
 * submits outstanding. Measured from the first submit:
 *  - placements/s: assignments the simulated agents received;
 *  - completed/s: tasks the controller recorded as finished (its `task finished` log lines, read
 *    from its stdout, so that counting costs the broker nothing);
 *  - the server process's CPU (cores busy) and RSS over the run.
 *
 * Also the heartbeat load: the same agents heartbeating every `heartbeatMs` with no tasks, the
 * server's CPU and RSS over a window, against the same server idle with no agents.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { encode } from '../shared/codec.js';
import { topics } from '../shared/topics.js';
import { CUTTER, freePort } from '../scripts/procs.js';
import { sampleUsage, type Usage } from './proc-stats.js';
import { startSimAgents } from './sim-agents.js';

export interface ThroughputResult {
  agents: number;
  tasks: number;
  submitted: number;
  refused: Record<string, number>;
  placed: number;
  completed: number;
  /** ms from the first submit to the last submit's reply, the last assignment, the last finished task. */
  submitMs: number;
  placeMs: number;
  completeMs: number;
  placementsPerSec: number;
  completedPerSec: number;
  server: Usage;
  /** This process: the simulated agents and the submitting client (if it is near 100%, the figure is the load generator's). */
  generator: Usage;
  /** The external broker's process, when the server ran with one (then `server` is the controller alone). */
  broker: Usage | null;
  invalidAssignments: number;
  timedOut: boolean;
}

export interface HeartbeatResult {
  agents: number;
  heartbeatMs: number;
  windowMs: number;
  idle: Usage;
  loaded: Usage;
}

/** A cutter server whose stdout lines are counted by message. */
interface CountingServer {
  child: ChildProcess;
  url: string;
  counts: Map<string, number>;
  lastAt: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * Starts `cutter server` with its embedded broker, or — with `externalBroker` — only the
 * controller, as a client of that broker (`--broker`).
 */
async function startCountingServer(externalBroker?: string): Promise<CountingServer> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'cutter-bench-'));
  const where = externalBroker ? ['--broker', externalBroker] : ['--host', '127.0.0.1', '--port', String(port)];
  // BENCH_PROF_DIR=DIR: the server writes a V8 CPU profile there when it stops (node --cpu-prof).
  const prof = process.env.BENCH_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : [];
  const child = spawn(
    process.execPath,
    [
      ...prof,
      CUTTER,
      'server',
      '--insecure',
      ...where,
      '--data-dir',
      dataDir,
      '--submits-per-minute',
      '1000000',
      '--broker-requests-per-minute',
      '100000000',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, CUTTER_MAX_CONNECTIONS: '100000' },
    },
  );
  const counts = new Map<string, number>();
  const lastAt = new Map<string, number>();
  let partial = '';
  let ready!: () => void;
  const listening = new Promise<void>((r) => (ready = r));
  child.stdout!.on('data', (c: Buffer) => {
    partial += c.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      const m = /"msg":"([^"]*)"/.exec(line);
      if (!m) continue;
      counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
      lastAt.set(m[1], performance.now());
      if (m[1] === (externalBroker ? 'controller started' : 'broker listening')) ready();
    }
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await Promise.race([listening, exited.then(() => Promise.reject(new Error('cutter server exited before listening')))]);
  return {
    child,
    url: externalBroker ?? `mqtt://127.0.0.1:${port}`,
    counts,
    lastAt,
    stop: async () => {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * How many nodes the controller lists online (`node.list`), or null without an answer within
 * `timeoutMs` (a saturated server, or one that cannot be reached).
 */
export async function onlineNodes(url: string, timeoutMs = 15_000): Promise<number | null> {
  const t = topics();
  const clientId = `bench-nodes-${randomBytes(3).toString('hex')}`;
  const c = mqtt.connect(url, { clientId, reconnectPeriod: 0 });
  c.on('error', () => undefined);
  const reply = new Promise<number>((resolve) => {
    c.on('message', (_topic, payload) => {
      const nodes = (JSON.parse(payload.toString()) as { result?: { nodes: { state: string }[] } }).result?.nodes ?? [];
      resolve(nodes.filter((n) => n.state === 'online').length);
    });
    c.once('connect', async () => {
      await c.subscribeAsync(t.replies(clientId), { qos: 1 }).catch(() => undefined);
      c.publish(t.requests(clientId), encode({ v: 1, id: 'n', op: 'node.list' }), { qos: 1 });
    });
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([reply, new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
    c.end(true);
  }
}

async function waitForNodes(url: string, n: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const online = (await onlineNodes(url)) ?? 0;
    if (online >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${online} of ${n} simulated nodes online after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the placement benchmark.
 * @param opts.timeoutMs gives up waiting for completions after this long (the result says so).
 */
export async function measureThroughput(opts: {
  agents: number;
  tasks: number;
  window: number;
  maxTasks: number;
  timeoutMs: number;
  externalBroker?: { url: string; pid: number };
}): Promise<ThroughputResult> {
  const server = await startCountingServer(opts.externalBroker?.url);
  const sim = await startSimAgents({ broker: server.url, count: opts.agents, heartbeatMs: 2_000, maxTasks: opts.maxTasks });
  try {
    await waitForNodes(server.url, opts.agents);
    const t = topics();
    const clientId = `bench-submit-${randomBytes(3).toString('hex')}`;
    const c = await mqtt.connectAsync(server.url, { clientId });
    (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    await c.subscribeAsync(t.replies(clientId), { qos: 1 });
    const refused: Record<string, number> = {};
    let replies = 0;
    let outstanding = 0;
    let wake: (() => void) | null = null;
    c.on('message', (_topic, payload) => {
      replies++;
      outstanding--;
      const r = JSON.parse(payload.toString()) as { ok: boolean; error?: { code: string } };
      if (!r.ok) refused[r.error!.code] = (refused[r.error!.code] ?? 0) + 1;
      wake?.();
    });
    const finishedBefore = server.counts.get('task finished') ?? 0;
    const usage = sampleUsage([server.child.pid!]);
    const generatorUsage = sampleUsage([process.pid]);
    const brokerUsage = opts.externalBroker ? sampleUsage([opts.externalBroker.pid]) : null;
    const t0 = performance.now();
    let lastReplyAt = t0;
    for (let i = 0; i < opts.tasks; i++) {
      while (outstanding >= opts.window) await new Promise<void>((r) => (wake = r));
      wake = null;
      outstanding++;
      const taskId = `b${i.toString(36)}${randomBytes(3).toString('hex')}`;
      c.publish(
        t.requests(clientId),
        encode({
          v: 1,
          id: taskId,
          op: 'submit',
          taskId,
          spec: { kind: 'exec', argv: ['true'], env: {} },
          requirements: { memory: 0, cpus: 0 },
          options: { restart: 'never' },
        }),
        { qos: 1 },
      );
    }
    const deadline = t0 + opts.timeoutMs;
    while (replies < opts.tasks && performance.now() < deadline) await sleep(20);
    lastReplyAt = performance.now();
    const accepted = opts.tasks - Object.values(refused).reduce((a, b) => a + b, 0);
    const finished = () => (server.counts.get('task finished') ?? 0) - finishedBefore;
    while ((sim.assigned < accepted || finished() < accepted) && performance.now() < deadline) await sleep(20);
    const server_ = usage.stop();
    const generator = generatorUsage.stop();
    const broker = brokerUsage?.stop() ?? null;
    const timedOut = finished() < accepted;
    await c.endAsync();
    const placeMs = sim.lastAssignedAt - t0;
    const completeMs = (server.lastAt.get('task finished') ?? t0) - t0;
    return {
      agents: opts.agents,
      tasks: opts.tasks,
      submitted: replies,
      refused,
      placed: sim.assigned,
      completed: finished(),
      submitMs: lastReplyAt - t0,
      placeMs,
      completeMs,
      placementsPerSec: sim.assigned / (placeMs / 1000),
      completedPerSec: finished() / (completeMs / 1000),
      server: server_,
      generator,
      broker,
      invalidAssignments: sim.invalid,
      timedOut,
    };
  } finally {
    await sim.stop();
    await server.stop();
  }
}

/** Server CPU and RSS idle (no agents) and with `agents` heartbeating every `heartbeatMs`. */
export async function measureHeartbeatLoad(opts: { agents: number; heartbeatMs: number; windowMs: number }): Promise<HeartbeatResult> {
  const server = await startCountingServer();
  try {
    await sleep(1_000);
    const idleSampler = sampleUsage([server.child.pid!]);
    await sleep(opts.windowMs);
    const idle = idleSampler.stop();
    const sim = await startSimAgents({ broker: server.url, count: opts.agents, heartbeatMs: opts.heartbeatMs, maxTasks: 4 });
    try {
      await waitForNodes(server.url, opts.agents);
      await sleep(opts.heartbeatMs);
      const loadedSampler = sampleUsage([server.child.pid!]);
      await sleep(opts.windowMs);
      const loaded = loadedSampler.stop();
      return { agents: opts.agents, heartbeatMs: opts.heartbeatMs, windowMs: opts.windowMs, idle, loaded };
    } finally {
      await sim.stop();
    }
  } finally {
    await server.stop();
  }
}
