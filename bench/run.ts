/**
 * `npm run bench`: every benchmark, each figure as a ratio against a baseline measured in the same
 * run on the same machine (or against the design target), with the absolute numbers and the
 * machine's description. Writes bench/results.md and bench/results.json.
 *
 *  1. dispatch — `cutter run --node n docker run IMG true` versus `docker run --rm IMG true` and
 *     versus `ssh localhost docker run --rm IMG true` (bench/ssh.ts), whole processes, interleaved,
 *     median of N runs each (target: within 1.15× of docker run);
 *  2. submit→assigned and submit→result of no-op exec tasks, one after another, p50/p99
 *     (target: submit→assigned under 5 ms p50);
 *  3. placement throughput — simulated agents (bench/sim-agents.ts) and no-op tasks
 *     (bench/throughput.ts; target 10,000 placements/s with 1,000 agents; HashiCorp's C2M ~1,500/s);
 *  4. heartbeat load — 1,000 nodes at a 2 s interval: the server's CPU and RSS, against it idle;
 *  5. agent idle footprint — one real `cutter agent` over a minute (target < 80 MB RSS, < 1% core);
 *  6. the broker — embedded Aedes versus Mosquitto on the heartbeat pattern (bench/broker-compare.ts);
 *  7. failure detection and rescheduling (bench/failover.ts; target: within 3 s).
 *
 * Environment: BENCH_QUICK=1 runs everything small (a smoke run of a minute or two);
 * BENCH_ONLY=dispatch,latency,scheduler,throughput,throughput-mosquitto,heartbeat,idle,broker,failover picks sections;
 * BENCH_NOTE adds a line to results.md (e.g. that other work shared the machine);
 * BENCH_OUT=DIR writes the results there instead of bench/ (the smoke test uses it).
 * Sections that cannot run here (no Docker engine, no sshd, no Mosquitto) are noted, not failed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { encode } from '../shared/codec.js';
import { topics } from '../shared/topics.js';
import { haveMosquitto, startMosquitto } from '../scripts/mosquitto.js';
import { CUTTER, ROOT, freePort, startDaemon } from '../scripts/procs.js';
import { compareBrokers } from './broker-compare.js';
import { runFileTransferBench } from './file-transfer.js';
import { benchOllama } from './ollama.js';
import { FAILOVER_CONFIG, measureFailover } from './failover.js';
import { fmtMiB, fmtMs, fmtPct, machineDescription, median, quantile, sampleUsage } from './proc-stats.js';
import { measureScheduler } from './scheduler.js';
import { startSshd } from './ssh.js';
import { measureHeartbeatLoad, measureThroughput } from './throughput.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const want = (section: string) => !ONLY || ONLY.has(section);
// Servers and agents started here bind no Ollama API or HTTP port and look for no Ollama unless a
// benchmark asks (bench/ollama.ts passes its own flags): ports 11434 and 8088 may be taken.
process.env.CUTTER_OLLAMA_API ??= 'false';
process.env.CUTTER_OLLAMA_URL ??= 'off';
process.env.CUTTER_HTTP_PORT ??= '0';
const num = (name: string, full: number, quick: number) => Number(process.env[name] ?? (QUICK ? quick : full));

const IMAGE = 'cutter-test/busybox:latest';
const RUNS = num('BENCH_RUNS', 9, 3);
const SUBMITS = num('BENCH_SUBMITS', 300, 50);
const AGENTS = num('BENCH_AGENTS', 1000, 100);
const TASKS = num('BENCH_TASKS', 100_000, 3_000);
const HEARTBEAT_WINDOW_MS = num('BENCH_HEARTBEAT_WINDOW_MS', 20_000, 4_000);
const IDLE_MS = num('BENCH_IDLE_MS', 60_000, 8_000);
const FAILOVER_TRIALS = num('BENCH_FAILOVER_TRIALS', 5, 1);
const OUT = process.env.BENCH_OUT ?? `${ROOT}bench`;

const PLACEMENT_TARGET = 10_000;
const C2M_PER_SEC = 2_000_000 / (22 * 60); // HashiCorp's C2M: 2,000,000 containers in 22 minutes

interface Row {
  name: string;
  baseline: string;
  measured: string;
  ratio: string;
  target: string;
  met: string;
}

const children: ChildProcess[] = [];
const rows: Row[] = [];
const notes: string[] = [];
const json: Record<string, unknown> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const verdict = (ok: boolean) => (ok ? 'met' : 'not met');

function timeCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore', env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A server and an exec agent `bench` (max 64 tasks) for the dispatch and latency sections. */
async function mesh(): Promise<string> {
  const port = await freePort();
  const broker = `mqtt://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'cutter-bench-'));
  children.push(
    await startDaemon(
      [
        'server',
        '--insecure',
        '--submits-per-minute',
        '1000000',
        '--broker-requests-per-minute',
        '100000000',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--data-dir',
        dataDir,
      ],
      'broker listening',
    ),
  );
  children.push(
    await startDaemon(
      ['agent', '--broker', broker, '--node-id', 'bench', '--allow-exec', '--max-tasks', '64', '--log-level', 'info'],
      'agent started',
    ),
  );
  return broker;
}

async function dispatch(broker: string): Promise<void> {
  const docker = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' });
  if (docker.status !== 0 || spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0) {
    rows.push({
      name: 'dispatch vs docker run',
      baseline: '-',
      measured: 'skipped: no Docker engine or test image',
      ratio: '-',
      target: '≤ 1.15×',
      met: 'not measured',
    });
    return;
  }
  let ssh: Awaited<ReturnType<typeof startSshd>> | null = null;
  try {
    ssh = await startSshd();
  } catch (err) {
    notes.push(`ssh localhost skipped: ${(err as Error).message}`);
  }
  const env = { ...process.env, CUTTER_BROKER: broker };
  const viaCutter = () => timeCommand(process.execPath, [CUTTER, 'run', '--node', 'bench', 'docker', 'run', IMAGE, 'true'], env);
  const viaDocker = () => timeCommand('docker', ['run', '--rm', IMAGE, 'true']);
  const viaSsh = () => timeCommand(ssh!.ssh[0], [...ssh!.ssh.slice(1), 'docker', 'run', '--rm', IMAGE, 'true']);
  // Warm-up: image layers and binaries in the page cache.
  viaDocker();
  viaCutter();
  if (ssh) viaSsh();
  const base: number[] = [];
  const via: number[] = [];
  const overSsh: number[] = [];
  const nodeStart: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    base.push(viaDocker());
    via.push(viaCutter());
    if (ssh) overSsh.push(viaSsh());
    nodeStart.push(timeCommand(process.execPath, ['-e', '0']));
  }
  ssh?.stop();
  const ratio = median(via) / median(base);
  json.dispatch = { dockerRunMs: base, cutterRunMs: via, sshDockerRunMs: overSsh, nodeStartMs: nodeStart, medianRatio: ratio };
  rows.push({
    name: `dispatch: \`cutter run --node n docker run IMG true\` vs \`docker run --rm IMG true\` (median of ${RUNS} whole processes each)`,
    baseline: `${fmtMs(median(base))} ms`,
    measured: `${fmtMs(median(via))} ms (of which Node start ${fmtMs(median(nodeStart))} ms)`,
    ratio: `${ratio.toFixed(2)}×`,
    target: '≤ 1.15×',
    met: verdict(ratio <= 1.15),
  });
  if (ssh) {
    const r = median(via) / median(overSsh);
    rows.push({
      name: 'dispatch: `cutter run …` vs `ssh localhost docker run --rm IMG true` (OpenSSH, key login, same runs)',
      baseline: `${fmtMs(median(overSsh))} ms`,
      measured: `${fmtMs(median(via))} ms`,
      ratio: `${r.toFixed(2)}×`,
      target: '-',
      met: '-',
    });
  }
}

async function submitLatency(broker: string): Promise<void> {
  const t = topics();
  const clientId = `bench-${randomBytes(4).toString('hex')}`;
  const client = await mqtt.connectAsync(broker, { clientId });
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  await client.subscribeAsync([t.replies(clientId), t.allTaskState()], { qos: 1 });
  const assigned: number[] = [];
  const result: number[] = [];
  const waiting = new Map<string, (topic: string, payload: Buffer) => void>();
  client.on('message', (topic, payload) => {
    for (const fn of waiting.values()) fn(topic, payload);
  });
  for (let i = 0; i < SUBMITS; i++) {
    const taskId = randomBytes(6).toString('hex');
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let gotReply = false;
      waiting.set(taskId, (topic, payload) => {
        if (payload.length === 0) return;
        if (!gotReply && topic === t.replies(clientId) && JSON.parse(payload.toString()).id === taskId) {
          gotReply = true;
          assigned.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        if (topic === t.taskState(taskId) && JSON.parse(payload.toString()).state === 'succeeded') {
          result.push(Number(process.hrtime.bigint() - t0) / 1e6);
          waiting.delete(taskId);
          resolve();
        }
      });
      void client.publishAsync(
        t.requests(clientId),
        encode({
          v: 1,
          id: taskId,
          op: 'submit',
          taskId,
          spec: { kind: 'exec', argv: ['true'], env: {} },
          requirements: { node: 'bench', memory: 0, cpus: 0 },
        }),
        { qos: 1 },
      );
    });
  }
  await client.endAsync();
  json.submit = { assignedMs: assigned, resultMs: result };
  const p50 = median(assigned);
  rows.push({
    name: `submit→assigned (the reply, sent after the assignment is published), ${SUBMITS} sequential no-op exec tasks`,
    baseline: 'target 5 ms',
    measured: `p50 ${fmtMs(p50)} ms, p99 ${fmtMs(quantile(assigned, 0.99))} ms`,
    ratio: `${(p50 / 5).toFixed(2)}× of 5 ms`,
    target: '< 5 ms p50',
    met: verdict(p50 < 5),
  });
  rows.push({
    name: 'submit→result (task state `succeeded`: the agent ran `true` and reported), same tasks',
    baseline: '-',
    measured: `p50 ${fmtMs(median(result))} ms, p99 ${fmtMs(quantile(result, 0.99))} ms`,
    ratio: '-',
    target: '-',
    met: '-',
  });
}

async function scheduler(): Promise<void> {
  const perSec = measureScheduler(AGENTS);
  json.scheduler = { nodes: AGENTS, placementsPerSec: perSec };
  rows.push({
    name: `the scheduler alone: pure \`place()\` over ${AGENTS.toLocaleString('en')} nodes, registry snapshot and reservation included, one thread, no I/O`,
    baseline: `target ${PLACEMENT_TARGET.toLocaleString('en')}/s`,
    measured: `${Math.round(perSec).toLocaleString('en')} placements/s`,
    ratio: `${(perSec / PLACEMENT_TARGET).toFixed(2)}× of target`,
    target: '-',
    met: '-',
  });
}

async function throughput(): Promise<void> {
  const r = await measureThroughput({
    agents: AGENTS,
    tasks: TASKS,
    window: 1_000,
    maxTasks: 64,
    timeoutMs: Number(process.env.BENCH_THROUGHPUT_TIMEOUT_MS ?? 600_000),
  });
  json.throughput = r;
  const full = AGENTS >= 1000;
  rows.push({
    name: `placement throughput: ${AGENTS.toLocaleString('en')} simulated agents (real MQTT connections), ${TASKS.toLocaleString('en')} no-op tasks submitted with up to 1,000 in flight${r.timedOut ? ' — TIMED OUT before all completed' : ''}`,
    baseline: `target ${PLACEMENT_TARGET.toLocaleString('en')}/s; HashiCorp C2M ~${Math.round(C2M_PER_SEC).toLocaleString('en')}/s`,
    measured: `${Math.round(r.placementsPerSec).toLocaleString('en')} placements/s (${r.placed.toLocaleString('en')} in ${(r.placeMs / 1000).toFixed(1)} s)`,
    ratio: `${(r.placementsPerSec / PLACEMENT_TARGET).toFixed(2)}× of target, ${(r.placementsPerSec / C2M_PER_SEC).toFixed(2)}× of C2M`,
    target: full ? '10,000/s with 1,000 agents' : '10,000/s (quick mode: fewer agents, not comparable)',
    met: full ? verdict(r.placementsPerSec >= PLACEMENT_TARGET) : 'not measured (quick)',
  });
  rows.push({
    name: 'completed tasks/s, same run (controller recorded the result)',
    baseline: '-',
    measured: `${Math.round(r.completedPerSec).toLocaleString('en')}/s (${r.completed.toLocaleString('en')} in ${(r.completeMs / 1000).toFixed(1)} s); refused: ${JSON.stringify(r.refused)}`,
    ratio: '-',
    target: '-',
    met: '-',
  });
  rows.push({
    name: 'server (embedded broker + controller) during that run',
    baseline: '-',
    measured: `CPU ${fmtPct(r.server.cores)} of one core, RSS mean ${fmtMiB(r.server.rssMeanBytes)}, peak ${fmtMiB(r.server.rssPeakBytes)} (load generator — simulated agents and submitter, one process: CPU ${fmtPct(r.generator.cores)})`,
    ratio: '-',
    target: '-',
    met: '-',
  });
}

/** The same run with Mosquitto as the backbone: `cutter server --broker` is then the controller alone. */
async function throughputOnMosquitto(): Promise<void> {
  if (!haveMosquitto()) {
    notes.push('placement throughput on Mosquitto skipped: mosquitto is not installed');
    return;
  }
  const m = await startMosquitto(await freePort(), { extraConfig: ['max_connections -1'] });
  try {
    const r = await measureThroughput({
      agents: AGENTS,
      tasks: TASKS,
      window: 1_000,
      maxTasks: 64,
      timeoutMs: Number(process.env.BENCH_THROUGHPUT_TIMEOUT_MS ?? 600_000),
      externalBroker: { url: m.url, pid: m.child.pid! },
    });
    json.throughputMosquitto = r;
    const embedded = json.throughput as { placementsPerSec: number } | undefined;
    rows.push({
      name: `placement throughput, same load, Mosquitto as the backbone (\`cutter server --broker\`: the controller alone)${r.timedOut ? ' — TIMED OUT before all completed' : ''}`,
      baseline: embedded ? `embedded broker: ${Math.round(embedded.placementsPerSec).toLocaleString('en')}/s` : '-',
      measured: `${Math.round(r.placementsPerSec).toLocaleString('en')} placements/s, ${Math.round(r.completedPerSec).toLocaleString('en')} completed/s; controller CPU ${fmtPct(r.server.cores)}, RSS peak ${fmtMiB(r.server.rssPeakBytes)}; Mosquitto CPU ${fmtPct(r.broker?.cores ?? 0)}, RSS peak ${fmtMiB(r.broker?.rssPeakBytes ?? 0)}`,
      ratio: `${(r.placementsPerSec / PLACEMENT_TARGET).toFixed(2)}× of target${embedded ? `, ${(r.placementsPerSec / embedded.placementsPerSec).toFixed(2)}× embedded` : ''}`,
      target: AGENTS >= 1000 ? '10,000/s with 1,000 agents' : '(quick mode)',
      met: AGENTS >= 1000 ? verdict(r.placementsPerSec >= PLACEMENT_TARGET) : 'not measured (quick)',
    });
  } finally {
    await m.stop();
  }
}

async function heartbeat(): Promise<void> {
  const r = await measureHeartbeatLoad({ agents: AGENTS, heartbeatMs: 2_000, windowMs: HEARTBEAT_WINDOW_MS });
  json.heartbeat = r;
  rows.push({
    name: `heartbeat load: ${AGENTS.toLocaleString('en')} nodes at a 2 s interval, server (broker + controller) over ${HEARTBEAT_WINDOW_MS / 1000} s`,
    baseline: `idle, no nodes: CPU ${fmtPct(r.idle.cores)}, RSS ${fmtMiB(r.idle.rssMeanBytes)}`,
    measured: `CPU ${fmtPct(r.loaded.cores)} of one core, RSS mean ${fmtMiB(r.loaded.rssMeanBytes)}, peak ${fmtMiB(r.loaded.rssPeakBytes)}`,
    ratio: `CPU ${(r.loaded.cores / Math.max(r.idle.cores, 0.001)).toFixed(1)}× idle, RSS ${(r.loaded.rssMeanBytes / r.idle.rssMeanBytes).toFixed(2)}× idle`,
    target: '-',
    met: '-',
  });
}

async function idle(broker: string): Promise<void> {
  const agent = await startDaemon(['agent', '--broker', broker, '--node-id', 'idle', '--log-level', 'info'], 'agent started');
  children.push(agent);
  // A bare Node process beside it: what any Node program costs here.
  const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  children.push(bare);
  await sleep(3_000);
  const usage = sampleUsage([agent.pid!], 500);
  const bareUsage = sampleUsage([bare.pid!], 500);
  await sleep(IDLE_MS);
  const a = usage.stop();
  const b = bareUsage.stop();
  agent.kill('SIGTERM');
  bare.kill('SIGTERM');
  json.agentIdle = { agent: a, bareNode: b };
  const rssOk = a.rssPeakBytes < 80 * 1024 * 1024;
  const cpuOk = a.cores < 0.01;
  rows.push({
    name: `agent idle footprint: one \`cutter agent\` (heartbeat 1 s) over ${IDLE_MS / 1000} s`,
    baseline: `bare Node process: RSS ${fmtMiB(b.rssMeanBytes)}, CPU ${fmtPct(b.cores)}`,
    measured: `RSS mean ${fmtMiB(a.rssMeanBytes)}, peak ${fmtMiB(a.rssPeakBytes)}; CPU ${fmtPct(a.cores)} of one core`,
    ratio: `RSS ${(a.rssPeakBytes / (80 * 1024 * 1024)).toFixed(2)}× of 80 MB, CPU ${(a.cores / 0.01).toFixed(2)}× of 1%`,
    target: '< 80 MB RSS, < 1% of a core',
    met: rssOk && cpuOk ? 'met' : `not met (${rssOk ? '' : 'RSS '}${cpuOk ? '' : 'CPU'})`.replace(' )', ')'),
  });
}

async function brokers(): Promise<void> {
  const publishers = num('BENCH_BROKER_PUBLISHERS', 20, 10);
  const perPublisher = num('BENCH_BROKER_MESSAGES', 5_000, 500);
  const r = await compareBrokers({ publishers, perPublisher, window: 10 });
  json.brokers = r;
  const a = r.aedes;
  const m = r.mosquitto;
  rows.push({
    name: `broker: heartbeat fan-in, ${publishers} publishers × ${perPublisher.toLocaleString('en')} retained QoS 1 messages of ~620 bytes (10 in flight each) to one \`+\` subscriber`,
    baseline: m
      ? `Mosquitto ${Math.round(m.perSec).toLocaleString('en')} msg/s, p50 ${fmtMs(m.latencyP50Ms)} ms, p99 ${fmtMs(m.latencyP99Ms)} ms, CPU ${fmtPct(m.usage.cores)}`
      : 'Mosquitto not installed',
    measured: `embedded Aedes ${Math.round(a.perSec).toLocaleString('en')} msg/s, p50 ${fmtMs(a.latencyP50Ms)} ms, p99 ${fmtMs(a.latencyP99Ms)} ms, CPU ${fmtPct(a.usage.cores)}`,
    ratio: m ? `${(a.perSec / m.perSec).toFixed(2)}× Mosquitto's rate` : '-',
    target: '-',
    met: '-',
  });
}

async function ollamaApi(): Promise<void> {
  const b = await benchOllama(QUICK ? { ttftRuns: 10, pacedTokens: 30, floodTokens: 2_000 } : undefined);
  json.ollama = b;
  const [first, chunk, tput] = b.targets;
  rows.push({
    name: `Ollama-compatible API: time to first token of a streamed generate, median of ${b.ttft.runs} (official \`ollama\` client; the node's Ollama is the documented-API double)`,
    baseline: `same client straight at the node's Ollama: ${b.ttft.directMedianMs} ms (p95 ${b.ttft.directP95Ms})`,
    measured: `through the server: ${b.ttft.meshMedianMs} ms (p95 ${b.ttft.meshP95Ms}), +${b.ttft.addedMs} ms`,
    ratio: `${b.ttft.ratio}×`,
    target: `${first.target} added`,
    met: first.met ? 'met' : 'not met',
  });
  rows.push({
    name: `Ollama-compatible API: latency of each streamed chunk, ${b.chunk.tokens} tokens 5 ms apart (send → client)`,
    baseline: `straight at the node: mean ${b.chunk.directMeanMs} ms, p99 ${b.chunk.directP99Ms} ms`,
    measured: `through the server: mean ${b.chunk.meshMeanMs} ms, p99 ${b.chunk.meshP99Ms} ms, +${b.chunk.addedMs} ms`,
    ratio: '-',
    target: `${chunk.target} added`,
    met: chunk.met ? 'met' : 'not met',
  });
  rows.push({
    name: `Ollama-compatible API: one unpaced stream of ${b.throughput.tokens.toLocaleString('en')} chunks`,
    baseline: `straight at the node: ${b.throughput.directChunksPerSec.toLocaleString('en')} chunks/s`,
    measured: `through the server: ${b.throughput.meshChunksPerSec.toLocaleString('en')} chunks/s`,
    ratio: `${b.throughput.ratio}×`,
    target: tput.target,
    met: tput.met ? 'met' : 'not met',
  });
}

async function fileTransfer(): Promise<void> {
  await runFileTransferBench();
  const r = JSON.parse(readFileSync(join(ROOT, 'bench', 'file-transfer-results.json'), 'utf8')) as {
    fileBytes: number;
    tcp: { MBps: number };
    put: { MBps: number; ratioToTcp: number };
    get: { MBps: number; ratioToTcp: number };
  };
  json.fileTransfer = r;
  rows.push({
    name: `file transfer: \`cutter cp\` of ${Math.round(r.fileBytes / 1e6)} MB over loopback MQTT, SHA-256 checked ([details](file-transfer-results.md))`,
    baseline: `plain TCP copy: ${r.tcp.MBps.toFixed(0)} MB/s`,
    measured: `to the node ${r.put.MBps.toFixed(0)} MB/s, from the node ${r.get.MBps.toFixed(0)} MB/s`,
    ratio: `${r.put.ratioToTcp.toFixed(2)}×, ${r.get.ratioToTcp.toFixed(2)}× of TCP`,
    target: '-',
    met: '-',
  });
}

async function failover(): Promise<void> {
  for (const f of await measureFailover(FAILOVER_TRIALS)) {
    json[`failover${f.mode}`] = f;
    const how = f.mode === 'SIGKILL' ? 'agent SIGKILLed (last will)' : 'agent SIGSTOPped (silence only)';
    const cfg = `heartbeat ${FAILOVER_CONFIG.heartbeatMs} ms, keepalive ${FAILOVER_CONFIG.keepaliveSec} s, lost-after 0`;
    rows.push({
      name: `${how}: signal → node offline, ${FAILOVER_TRIALS} trials (${cfg})`,
      baseline: 'Nomad: 10 s+ heartbeat grace',
      measured: `p50 ${median(f.offlineMs)} ms, p95 ${quantile(f.offlineMs, 0.95)} ms`,
      ratio: `${(median(f.offlineMs) / 10_000).toFixed(2)}× of 10 s`,
      target: '< 3 s',
      met: verdict(quantile(f.offlineMs, 0.95) < 3_000),
    });
    rows.push({
      name: `${how}: signal → task running on another node`,
      baseline: '-',
      measured: `p50 ${median(f.rescheduledMs)} ms, p95 ${quantile(f.rescheduledMs, 0.95)} ms`,
      ratio: `${(quantile(f.rescheduledMs, 0.95) / 3_000).toFixed(2)}× of 3 s`,
      target: '< 3 s',
      met: verdict(quantile(f.rescheduledMs, 0.95) < 3_000),
    });
  }
}

async function main(): Promise<void> {
  const machine = machineDescription();
  const started = new Date().toISOString();
  json.machine = { description: machine, cpus: cpus().length, cpu: cpus()[0]?.model, memory: totalmem(), node: process.version };
  json.mode = QUICK ? 'quick' : 'full';
  const step = async (name: string, fn: () => Promise<void>) => {
    if (!want(name)) return;
    process.stderr.write(`bench: ${name}…\n`);
    const t0 = Date.now();
    try {
      await fn();
    } catch (err) {
      notes.push(`${name} failed: ${(err as Error).message}`);
      rows.push({
        name,
        baseline: '-',
        measured: `FAILED: ${(err as Error).message.split('\n')[0]}`,
        ratio: '-',
        target: '-',
        met: 'not measured',
      });
    }
    process.stderr.write(`bench: ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  };
  let broker = '';
  if (want('dispatch') || want('latency') || want('idle')) broker = await mesh();
  await step('dispatch', () => dispatch(broker));
  await step('latency', () => submitLatency(broker));
  await step('idle', () => idle(broker));
  for (const c of children.splice(0)) c.kill('SIGTERM');
  await step('scheduler', scheduler);
  await step('throughput', throughput);
  await step('throughput-mosquitto', throughputOnMosquitto);
  await step('heartbeat', heartbeat);
  await step('broker', brokers);
  await step('failover', failover);
  await step('ollama', ollamaApi);
  await step('files', fileTransfer);

  const md = [
    '# cutter benchmarks',
    '',
    `Run ${started} (${QUICK ? 'QUICK mode: small sizes, a smoke run — not the published figures' : 'full run'}) on ${machine}. Written by \`npm run bench\`; every ratio is against a baseline measured in the same run on the same machine, or against the target from the design.`,
    ...(process.env.BENCH_NOTE ? ['', process.env.BENCH_NOTE] : []),
    '',
    '| benchmark | baseline | cutter | ratio | target | |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.baseline} | ${r.measured} | ${r.ratio} | ${r.target} | ${r.met} |`),
    '',
    '## How to read it',
    '',
    '- Dispatch includes the `cutter` process start (Node and its modules) that a Go binary such as `docker` does not pay; "Node start" is a bare `node -e 0` on the same machine.',
    '- Placement throughput: the simulated agents run in one process beside the server, on the same cores, and every task is a full round of real messages (submit, reply, assignment, accepted, started, result, retained state) with every state change written to SQLite before it is published. Placements/s counts assignments the agents received from the first submit to the last assignment.',
    '- Heartbeat load and throughput: the server is one process holding the embedded broker and the controller; its CPU is summed user+system time over the window divided by the window (100% = one core busy).',
    '- Failover: the controller\'s node list is polled every 20 ms while the task\'s state is pushed, so "running on another node" can read a few ms lower than "offline".',
    '- What limits placement throughput, what was fixed and what is left: [profile.md](profile.md).',
    ...notes.map((n) => `- Note: ${n}`),
    '',
  ].join('\n');
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'results.md'), md);
  writeFileSync(join(OUT, 'results.json'), `${JSON.stringify({ started, ...json, rows, notes }, null, 2)}\n`);
  process.stdout.write(md);
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM');
    // Open MQTT clients or timers must not keep a finished benchmark alive.
    setTimeout(() => process.exit(), 2_000).unref();
  });
