/**
 * The benchmarks on one real mesh (a `cutter server` and an exec agent `bench`, as daemons):
 * dispatch against `docker run` and `ssh localhost docker run`, submit latency, the agent's idle
 * footprint.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { CUTTER, startBenchServer, startDaemon } from '../../scripts/procs.js';
import { encode } from '../../shared/codec.js';
import { topics } from '../../shared/topics.js';
import { fmtMiB, fmtMs, fmtPct, median, quantile, sampleUsage } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { IDLE_MS, IMAGE, RUNS, SUBMITS, sleep } from '../settings.js';
import { startSshd } from '../ssh.js';

/** Runs a command to its end, output ignored. @returns its wall time, ms. @throws Error when it exits non-zero. */
function timeCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore', env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A server and an exec agent `bench` (max 64 tasks) for the dispatch and latency sections. */
export async function mesh(children: ChildProcess[]): Promise<string> {
  const { broker } = await startBenchServer({ children });
  children.push(
    await startDaemon(
      ['agent', '--broker', broker, '--node-id', 'bench', '--allow-exec', '--max-tasks', '64', '--log-level', 'info'],
      'agent started',
    ),
  );
  return broker;
}

/** `cutter run --node bench docker run IMG true` against `docker run` (and `ssh localhost`), whole processes. */
export async function dispatch(results: Results, broker: string): Promise<void> {
  const docker = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' });
  if (docker.status !== 0 || spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0) {
    results.rows.push({
      name: 'dispatch vs docker run',
      baseline: '-',
      measured: 'skipped: no Docker engine or test image',
      ratio: '-',
      target: '≤ 1.10×',
      met: 'not measured',
    });
    return;
  }
  let ssh: Awaited<ReturnType<typeof startSshd>> | null = null;
  try {
    ssh = await startSshd();
  } catch (err) {
    results.notes.push(`ssh localhost skipped: ${(err as Error).message}`);
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
  results.json.dispatch = { dockerRunMs: base, cutterRunMs: via, sshDockerRunMs: overSsh, nodeStartMs: nodeStart, medianRatio: ratio };
  results.rows.push({
    name: `dispatch: \`cutter run --node n docker run IMG true\` vs \`docker run --rm IMG true\` (median of ${RUNS} whole processes each)`,
    baseline: `${fmtMs(median(base))} ms`,
    measured: `${fmtMs(median(via))} ms (of which Node start ${fmtMs(median(nodeStart))} ms)`,
    ratio: `${ratio.toFixed(2)}×`,
    target: '≤ 1.10×',
    met: verdict(ratio <= 1.1),
  });
  if (ssh) {
    const r = median(via) / median(overSsh);
    results.rows.push({
      name: 'dispatch: `cutter run …` vs `ssh localhost docker run --rm IMG true` (OpenSSH, key login, same runs)',
      baseline: `${fmtMs(median(overSsh))} ms`,
      measured: `${fmtMs(median(via))} ms`,
      ratio: `${r.toFixed(2)}×`,
      target: '-',
      met: '-',
    });
  }
}

/**
 * The CLI's own start (issue 18: within 1.5× `node -e 0`): `cutter --version` (no broker) and
 * `cutter nodes list` (connect, one request, print) against a bare `node -e 0`, whole processes,
 * interleaved, median of RUNS each.
 */
export async function cliStart(results: Results, broker: string): Promise<void> {
  const env = { ...process.env, CUTTER_BROKER: broker };
  const version = () => timeCommand(process.execPath, [CUTTER, '--version']);
  const list = () => timeCommand(process.execPath, [CUTTER, 'nodes', 'list'], env);
  const bare = () => timeCommand(process.execPath, ['-e', '0']);
  version();
  list();
  bare();
  const runs = { version: [] as number[], list: [] as number[], bare: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    runs.bare.push(bare());
    runs.version.push(version());
    runs.list.push(list());
  }
  results.json.cliStart = runs;
  const base = median(runs.bare);
  for (const [what, ms] of [
    ['`cutter --version`', runs.version],
    ['`cutter nodes list` (connects to the server, one request)', runs.list],
  ] as const) {
    const ratio = median(ms) / base;
    results.rows.push({
      name: `CLI start: ${what} vs \`node -e 0\` (median of ${RUNS} whole processes each)`,
      baseline: `${fmtMs(base)} ms`,
      measured: `${fmtMs(median(ms))} ms`,
      ratio: `${ratio.toFixed(2)}×`,
      target: '≤ 1.5×',
      met: verdict(ratio <= 1.5),
    });
  }
}

/** submit→assigned and submit→result of sequential no-op exec tasks, p50/p99. */
export async function submitLatency(results: Results, broker: string): Promise<void> {
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
  results.json.submit = { assignedMs: assigned, resultMs: result };
  const p50 = median(assigned);
  results.rows.push({
    name: `submit→assigned (the reply, sent after the assignment is published), ${SUBMITS} sequential no-op exec tasks`,
    baseline: 'target 5 ms',
    measured: `p50 ${fmtMs(p50)} ms, p99 ${fmtMs(quantile(assigned, 0.99))} ms`,
    ratio: `${(p50 / 5).toFixed(2)}× of 5 ms`,
    target: '< 5 ms p50',
    met: verdict(p50 < 5),
  });
  results.rows.push({
    name: 'submit→result (task state `succeeded`: the agent ran `true` and reported), same tasks',
    baseline: '-',
    measured: `p50 ${fmtMs(median(result))} ms, p99 ${fmtMs(quantile(result, 0.99))} ms`,
    ratio: '-',
    target: '-',
    met: '-',
  });
}

/** Issue 18's idle RSS target, bytes. */
const IDLE_RSS_TARGET = 60 * 1024 * 1024;

/** One idle `cutter agent` (its process is added to `children`) against a bare Node process: RSS and CPU. */
export async function idle(results: Results, broker: string, children: ChildProcess[]): Promise<void> {
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
  // The kernel's own peak (VmHWM) since the agent's start: what the samples could miss between them.
  const hwm = vmHwmBytes(agent.pid!);
  agent.kill('SIGTERM');
  bare.kill('SIGTERM');
  results.json.agentIdle = { agent: a, bareNode: b, vmHwmBytes: hwm };
  // Issue 18's targets: ≤ 60 MiB RSS (its peak over the minute), ≤ 0.5 % of a core.
  const rssOk = a.rssPeakBytes <= IDLE_RSS_TARGET;
  const cpuOk = a.cores <= 0.005;
  results.rows.push({
    name: `agent idle footprint: one \`cutter agent\` (heartbeat 1 s) over ${IDLE_MS / 1000} s`,
    baseline: `bare Node process: RSS ${fmtMiB(b.rssMeanBytes)}, CPU ${fmtPct(b.cores)}`,
    measured: `RSS mean ${fmtMiB(a.rssMeanBytes)}, peak ${fmtMiB(a.rssPeakBytes)} (VmHWM since its start, the start included: ${hwm === null ? 'unknown' : fmtMiB(hwm)}); CPU ${fmtPct(a.cores)} of one core`,
    ratio: `RSS ${(a.rssPeakBytes / IDLE_RSS_TARGET).toFixed(2)}× of 60 MiB, CPU ${(a.cores / 0.005).toFixed(2)}× of 0.5%`,
    target: '≤ 60 MiB RSS, ≤ 0.5% of a core',
    met: rssOk && cpuOk ? 'met' : `not met (${rssOk ? '' : 'RSS '}${cpuOk ? '' : 'CPU'})`.replace(' )', ')'),
  });
}

/** A process's peak RSS since it started (`VmHWM` of /proc/PID/status), bytes; null off Linux or when it is gone. */
function vmHwmBytes(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
