/**
 * How far one server goes (issue 18): a real `cutter server` (embedded Aedes + controller, one
 * process) on loopback, with steps of simulated agents (bench/sim-agents.ts: real MQTT connections
 * speaking the real protocol, all in this process) heartbeating at the agent's default interval.
 *
 * Measured: the server idle with no nodes, then at each step (SCALE_STEPS connected nodes, added in
 * groups within CONNECT_BUDGET_MS, a settle of SCALE_SETTLE_MS, then a window of SCALE_WINDOW_MS)
 * the server's CPU in cores (user + system seconds over the window / wall seconds; 1 = one core
 * busy), its RSS (mean and peak, bytes), how fast the agents connected (agents/s), and the
 * heartbeat bytes each node publishes per second (JSON payload, and whole MQTT PUBLISH packets).
 * The ladder stops at the first step the server does not keep up with. Then the last step it kept
 * up with runs on a fresh server at a 5× longer interval (splitting its CPU into a per-node and a
 * per-heartbeat part), and, when Mosquitto is installed, the top step on Mosquitto (`--broker`),
 * controller and Mosquitto measured apart. scaleModel turns these into the model in results.md.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { haveMosquitto, startMosquitto } from '../../scripts/mosquitto.js';
import { freePort, startDaemon } from '../../scripts/procs.js';
import { formatBytes, formatDuration } from '../../shared/units.js';
import { fmtMiB, fmtPct, sampleUsage, type Usage } from '../proc-stats.js';
import type { Results } from '../results.js';
import { QUICK, SCALE_HEARTBEAT_MS, SCALE_SETTLE_MS, SCALE_STEPS, SCALE_WINDOW_MS, sleep } from '../settings.js';
import { type SimAgents, startSimAgents } from '../sim-agents.js';
import { onlineNodes } from '../throughput.js';
import { STALE_AFTER_HEARTBEATS } from '../../controller/scheduler/snapshot.js';

/** One measured step. Usage: CPU in cores (1 = one core) and RSS in bytes over the window (bench/proc-stats.ts). */
export interface ScaleStep {
  /** Nodes asked for, connected, and listed online by the controller after the window (null: no answer within 15 s). */
  target: number;
  nodes: number;
  online: number | null;
  /** Each node's heartbeat interval, ms. */
  heartbeatMs: number;
  /** Agents added at this step and the ms it took to connect them (each: connect, subscribe, first status acknowledged). */
  added: number;
  connectMs: number;
  /** The server process (broker + controller), or with `--broker` the controller alone. */
  server: Usage;
  /** This process: the simulated agents (near one core, the heartbeat rate is the generator's limit). */
  generator: Usage;
  /** With `--broker`: the broker's process. */
  broker?: Usage;
  /** Heartbeats/s over the window: published by the agents, acknowledged by the broker, due (nodes / interval). */
  publishedPerSec: number;
  ackedPerSec: number;
  duePerSec: number;
  /** Heartbeat bytes per node per second: JSON payload; whole MQTT 3.1.1 PUBLISH packets (header, topic, packet id, payload). */
  payloadBytesPerNodeSec: number;
  packetBytesPerNodeSec: number;
  /** The 1-minute load average at the end of the window (other work on the machine shows here). */
  load1: number;
}

/** The Mosquitto run: the controller and Mosquitto idle (no nodes), then the step (`server` = the controller alone). */
export interface MosquittoRun {
  idle: { controller: Usage; broker: Usage };
  step: ScaleStep;
}

const k = (n: number) => Math.round(n).toLocaleString('en');
const sec = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;
/** Agents connected per second at a step. */
const rate = (s: ScaleStep) => s.added / Math.max(s.connectMs / 1000, 0.001);
/** A step the server kept up with: every agent connected, under 0.9 core, at least 95% of the heartbeats sent acknowledged. */
export const keptUp = (s: ScaleStep) => s.nodes === s.target && s.server.cores < 0.9 && s.ackedPerSec >= 0.95 * s.publishedPerSec;
/** Whether the simulated agents sent under 95% of the heartbeats due: this process (the load generator) fell behind. */
const genShort = (s: ScaleStep) => s.publishedPerSec < 0.95 * s.duePerSec;
/** How long one step may spend connecting agents (checked between groups of 250), ms: the rest are recorded as not connected. */
const CONNECT_BUDGET_MS = QUICK ? 15_000 : 45_000;

/** Least-squares line y = a + b·x through `points` ([x, y]); flat when x does not vary. */
export function fitLine(points: [number, number][]): { a: number; b: number } {
  const mx = points.reduce((s, [x]) => s + x, 0) / points.length;
  const my = points.reduce((s, [, y]) => s + y, 0) / points.length;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const b = sxx === 0 ? 0 : points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx;
  return { a: my - b * mx, b };
}

/** The soft limit on open files of this process (`ulimit -n`; the server inherits it), or null. */
function openFileLimit(): number | null {
  if (process.platform !== 'linux') return null;
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m ? null : m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

/**
 * Starts `cutter server` on loopback (embedded broker; with `broker`, the controller alone on it),
 * runs `fn` with its pid, its broker URL and a list for the agent groups, then closes the agents
 * and stops the server (SIGKILL after 10 s: one that fell behind may take long) whatever happens.
 */
async function withServer<T>(maxConns: number, broker: string | undefined, fn: (pid: number, url: string, g: SimAgents[]) => Promise<T>) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'cutter-bench-scale-'));
  const where = broker ? ['--broker', broker] : ['--host', '127.0.0.1', '--port', String(port)];
  const env = { ...process.env, CUTTER_MAX_CONNECTIONS: String(maxConns) };
  const child = await startDaemon(
    ['server', '--insecure', ...where, '--data-dir', dataDir],
    broker ? 'controller started' : 'broker listening',
    env,
  );
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  const groups: SimAgents[] = [];
  try {
    return await fn(child.pid!, broker ?? `mqtt://127.0.0.1:${port}`, groups);
  } finally {
    await Promise.all(groups.map((g) => g.stop(true)));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The heartbeat counters of several groups of simulated agents, summed. */
const counters = (groups: SimAgents[]) => ({
  published: groups.reduce((s, g) => s + g.statusMessages, 0),
  acked: groups.reduce((s, g) => s + g.statusAcked, 0),
  payload: groups.reduce((s, g) => s + g.statusPayloadBytes, 0),
  packet: groups.reduce((s, g) => s + g.statusPacketBytes, 0),
});

/** Connects agents (groups of up to 250) until `target` are connected or the budget is spent, settles, measures a window. */
async function measureStep(
  url: string,
  groups: SimAgents[],
  target: number,
  heartbeatMs: number,
  pids: { server: number; broker?: number },
) {
  const t0 = performance.now();
  const connected = () => groups.reduce((s, g) => s + g.started, 0);
  const before = connected();
  while (connected() < target && performance.now() < t0 + CONNECT_BUDGET_MS) {
    const count = Math.min(250, target - connected());
    const g = await startSimAgents({
      broker: url,
      count,
      prefix: `scale${groups.length}-`,
      heartbeatMs,
      maxTasks: 4,
      connectBatch: 100,
      startTimeoutMs: 20_000,
    });
    groups.push(g);
    if (g.failed > 0) break;
  }
  const connectMs = performance.now() - t0;
  const nodes = connected();
  await sleep(Math.max(SCALE_SETTLE_MS, heartbeatMs));
  const c0 = counters(groups);
  const samplers = [pids.server, process.pid, pids.broker ?? 0].map((pid) => (pid ? sampleUsage([pid]) : null));
  await sleep(SCALE_WINDOW_MS);
  const [server, generator, broker] = samplers.map((s) => s?.stop());
  const c1 = counters(groups);
  const wallS = server!.wallMs / 1000;
  const perNodeSec = (d: number) => d / wallS / Math.max(nodes, 1);
  const step: ScaleStep = {
    target,
    nodes,
    online: await onlineNodes(url),
    heartbeatMs,
    added: nodes - before,
    connectMs,
    server: server!,
    generator: generator!,
    ...(broker ? { broker } : {}),
    publishedPerSec: (c1.published - c0.published) / wallS,
    ackedPerSec: (c1.acked - c0.acked) / wallS,
    duePerSec: nodes / (heartbeatMs / 1000),
    payloadBytesPerNodeSec: perNodeSec(c1.payload - c0.payload),
    packetBytesPerNodeSec: perNodeSec(c1.packet - c0.packet),
    load1: loadavg()[0],
  };
  return step;
}

/** CPU and RSS of `pids` (no nodes) over `ms`, after a second for the start to finish. */
async function idleUsage(pids: number[], ms: number): Promise<Usage[]> {
  await sleep(1_000);
  const samplers = pids.map((p) => sampleUsage([p]));
  await sleep(ms);
  return samplers.map((s) => s.stop());
}

/**
 * Where one server stops, from this run's figures only: the numbers (cores, bytes, nodes, seconds)
 * and the Markdown block of results.md. `split` is the 5× longer interval step, `mq` the Mosquitto run.
 */
export function scaleModel(
  idle: Usage,
  ladder: ScaleStep[],
  split: ScaleStep | undefined,
  mq: MosquittoRun | undefined,
  openFiles: number | null,
) {
  const H = SCALE_HEARTBEAT_MS / 1000;
  const good = ladder.filter(keptUp);
  const used = good.length > 0 ? good : ladder;
  const cpu = fitLine([[0, idle.cores], ...used.map((s): [number, number] => [s.nodes, s.server.cores])]);
  const rssPoints = [...used, ...(split && keptUp(split) ? [split] : [])].map((s): [number, number] => [s.nodes, s.server.rssMeanBytes]);
  const rss = fitLine([[0, idle.rssMeanBytes], ...rssPoints]);
  // cores = a + nodes · (perNode + perBeat / interval); without a second interval all of it counts as per heartbeat.
  const slope = Math.max(cpu.b, 1e-9);
  let perBeat = slope * H;
  if (split && keptUp(split)) {
    const slopeLong = (split.server.cores - cpu.a) / split.nodes;
    perBeat = Math.min(slope * H, Math.max(0, (slope - slopeLong) / (1 / H - 1 / (split.heartbeatMs / 1000))));
  }
  const perNode = slope - perBeat / H;
  const nodesAt = (intervalS: number) => Math.max(0, (1 - cpu.a) / (perNode + perBeat / intervalS));
  const stopsAt = nodesAt(H);
  const rssAt = rss.a + rss.b * stopsAt;
  // Connecting: seconds per agent at each step against the nodes already there (mid-step).
  const cs = (good.length >= 2 ? good : ladder).filter((s) => s.added > 0);
  const connect = fitLine(cs.map((s): [number, number] => [s.nodes - s.added / 2, s.connectMs / 1000 / s.added]));
  const reconnectS = (n: number) => connect.a * n + (Math.max(connect.b, 0) * n * n) / 2;
  const over = ladder.find((s) => !keptUp(s));
  const best = good.at(-1);
  const top = Math.max(...ladder.map((s) => s.target));
  const last = ladder.at(-1)!;
  const b = best ?? last; // heartbeat bytes and reconnect time: at the last step the server kept up with
  const pct1k = (coresPerNode: number) => fmtPct(coresPerNode * 1000);
  const mqStep = mq?.step;
  // With --broker: core-seconds per heartbeat acknowledged (the agents may have sent fewer than due), to nodes at the default interval.
  const beats = Math.max(mqStep?.ackedPerSec ?? 0, 1);
  const ctrlPerBeat = mq && mqStep ? Math.max(mqStep.server.cores - mq.idle.controller.cores, 1e-9) / beats : null;
  const brokerPerBeat = mq && mqStep?.broker ? Math.max(mqStep.broker.cores - mq.idle.broker.cores, 1e-9) / beats : null;
  const ctrlStopsAt = mq && ctrlPerBeat ? ((1 - mq.idle.controller.cores) / ctrlPerBeat) * H : null;
  const brokerStopsAt = mq && brokerPerBeat ? ((1 - mq.idle.broker.cores) / brokerPerBeat) * H : null;
  const why = (s: ScaleStep) =>
    `${s.nodes < s.target ? `only ${k(s.nodes)} of ${k(s.target)} agents connected within ${sec(CONNECT_BUDGET_MS)} (${k(rate(s))}/s); ` : ''}${fmtPct(s.server.cores)} of a core; ${k(s.ackedPerSec)} of ${k(s.duePerSec)} heartbeats/s acknowledged`;
  const md = [
    '## Where one server stops (scale section, computed from this run)',
    '',
    `The server (embedded Aedes + controller: one Node process, its JavaScript on one thread) used ${fmtPct(idle.cores)} of a core and ${fmtMiB(idle.rssMeanBytes)} RSS idle, and **${pct1k(slope)} of a core and ${fmtMiB(rss.b * 1000)} RSS per 1,000 nodes** heartbeating every ${H} s (the agent's default): least squares over the idle server and ${good.length > 0 ? `the steps it kept up with (${good.map((s) => k(s.nodes)).join(', ')} nodes)` : 'all steps (it kept up with none: a lower bound)'}. Each node sent ${b.payloadBytesPerNodeSec.toFixed(0)} B/s of heartbeat payload, ${b.packetBytesPerNodeSec.toFixed(0)} B/s as MQTT packets (simulated nodes: 8 cores, no GPUs, no Docker, nothing running; a real agent's status is larger).`,
    '',
    `- **Heartbeats alone would take one core at about ${k(stopsAt)} nodes** at ${H} s (${k(stopsAt / H)} heartbeats/s, ${fmtMiB(stopsAt * b.packetBytesPerNodeSec)}/s), the CPU extrapolated in a straight line; the RSS there, about ${fmtMiB(rssAt)} of ${formatBytes(totalmem())}, is not what stops it. Past it the event loop falls behind and heartbeats queue in memory; a node silent for ${STALE_AFTER_HEARTBEATS} intervals (${+(STALE_AFTER_HEARTBEATS * H).toFixed(1)} s) is marked offline, so an overloaded mesh flaps rather than slows. Tasks, submits and log streams share the thread: at 70% of a core, ~${k(stopsAt * 0.7)} nodes.`,
    `- **In this run it ${over ? `kept up with ${best ? `${k(best.nodes)} nodes` : 'no step'} and stopped at ${k(over.target)}**: ${why(over)}` : `kept up with every step, up to ${k(last.nodes)} nodes**`}.`,
    `- **Connecting slows as nodes grow:** ${ladder.map((s) => `${k(rate(s))}/s up to ${k(s.nodes)}`).join(', ')} (each subscription makes the embedded Aedes compare every retained message: a status per node, and three more per node with Home Assistant discovery on). With the wall time per agent fitted as ${(connect.a * 1000).toFixed(2)} ms + ${(Math.max(connect.b, 0) * 1e6).toFixed(2)} ms per 1,000 nodes already there (100 connecting at once), all agents reconnecting after a server restart would take about ${formatDuration(reconnectS(b.nodes) * 1000)} at ${k(b.nodes)} nodes${top > b.nodes ? ` and ${formatDuration(reconnectS(top) * 1000)} at ${k(top)}` : ''}.`,
    '- Past it:',
    `  1. **A longer heartbeat interval** (\`cutter agent --heartbeat 5s\`, or \`heartbeatMs\` in its config) — ${split && keptUp(split) ? `from the two intervals measured, ${pct1k(perNode)} of a core per 1,000 nodes whatever the interval plus ${fmtPct(perBeat * 1000)} per 1,000 heartbeats/s` : 'assuming all the cost is per heartbeat (no second interval was measured)'}: heartbeats take one core at about ${k(nodesAt(5))} nodes at 5 s, ${k(nodesAt(10))} at 10 s, ${k(nodesAt(30))} at 30 s (connecting them is not made faster), and failure detection takes ${STALE_AFTER_HEARTBEATS} intervals (${[5, 10, 30].map((i) => `${+(STALE_AFTER_HEARTBEATS * i).toFixed(1)} s`).join(', ')}).`,
    mq && mqStep && ctrlStopsAt !== null
      ? `  2. **An MQTT backbone of its own**, \`cutter server --broker mqtt://HOST:1883\`: the server is then the controller alone. Measured with Mosquitto, ${k(mqStep.nodes)} of ${k(mqStep.target)} nodes connected at ${k(rate(mqStep))}/s and heartbeating every ${sec(mqStep.heartbeatMs)}: controller ${fmtPct(mqStep.server.cores)} of a core, RSS ${fmtMiB(mqStep.server.rssMeanBytes)}; Mosquitto ${fmtPct(mqStep.broker?.cores ?? 0)}, RSS ${fmtMiB(mqStep.broker?.rssMeanBytes ?? 0)}; ${k(mqStep.ackedPerSec)} heartbeats/s acknowledged of ${k(mqStep.duePerSec)} due${genShort(mqStep) ? ` (the simulated agents sent only ${k(mqStep.publishedPerSec)}/s: their process, ${fmtPct(mqStep.generator.cores)} of a core at load average ${mqStep.load1.toFixed(2)}, fell behind, not the backbone)` : ''}. Per heartbeat acknowledged, in a straight line, the controller alone takes one core at about **${k(ctrlStopsAt)} nodes** at ${H} s, Mosquitto (one thread too) at about ${k(brokerStopsAt ?? 0)}. Past Mosquitto, an **EMQX cluster** spreads connections and fan-in over several machines; the controller stays one process, so its count (more at longer intervals) is then the mesh's ceiling.`
      : "  2. **An MQTT backbone of its own**, `cutter server --broker mqtt://HOST:1883` with Mosquitto or an EMQX cluster, takes the broker's share off the server (not measured in this run: mosquitto is not installed); the controller alone then sets the limit.",
    `  3. **The controller's limits** at such counts: the embedded broker takes at most \`maxConnections\` connections, agents and clients together (default 10,000; \`CUTTER_MAX_CONNECTIONS\` or the config file); each connection holds a file descriptor (\`ulimit -n\` of the server: ${openFiles === null ? 'unknown' : k(openFiles)} here); an agent's keepalive (2 s by default) has the broker fire its last will after 3 s without a packet.`,
  ].join('\n');
  const fit = { cpuPerThousandNodes: slope * 1000, rssBytesPerThousandNodes: rss.b * 1000, fittedSteps: used.map((s) => s.nodes) };
  const costs = {
    coresPerThousandNodesAnyInterval: perNode * 1000,
    coreSecondsPerHeartbeat: perBeat,
    stopsAtNodes: stopsAt,
    rssBytesAtStop: rssAt,
  };
  const more = { nodesAtOneCore: { '5s': nodesAt(5), '10s': nodesAt(10), '30s': nodesAt(30) }, connectSecondsPerAgent: connect };
  const ends = {
    reconnectSeconds: { [b.nodes]: reconnectS(b.nodes), [top]: reconnectS(top) },
    controllerAloneStopsAtNodes: ctrlStopsAt,
    mosquittoStopsAtNodes: brokerStopsAt,
  };
  return { figures: { ...fit, ...costs, ...more, ...ends }, markdown: md };
}

/** The table row of a step. */
function stepRow(s: ScaleStep, idle: Usage, what: string, ratio: string) {
  return {
    name: `scale: ${k(s.nodes)} nodes${s.nodes < s.target ? ` (of ${k(s.target)} asked: the rest did not connect within ${sec(CONNECT_BUDGET_MS)})` : ''} heartbeating every ${sec(s.heartbeatMs)}${what}, over ${sec(s.server.wallMs)}`,
    baseline: `idle, no nodes: CPU ${fmtPct(idle.cores)}, RSS ${fmtMiB(idle.rssMeanBytes)}`,
    measured: `CPU ${fmtPct(s.server.cores)} of one core, RSS mean ${fmtMiB(s.server.rssMeanBytes)}, peak ${fmtMiB(s.server.rssPeakBytes)}; ${k(s.ackedPerSec)} heartbeats/s acknowledged of ${k(s.publishedPerSec)} sent, ${k(s.duePerSec)} due${genShort(s) ? " (the agents' process fell behind)" : ''}${keptUp(s) ? '' : ' — did NOT keep up'}; ${s.online === null ? 'online count not answered' : `${k(s.online)} online`}; ${k(s.added)} agents connected at ${k(rate(s))}/s (simulated agents' process CPU ${fmtPct(s.generator.cores)}; load average ${s.load1.toFixed(2)})`,
    ratio,
    target: '-',
    met: '-',
  };
}

/** The scale section: steps of simulated agents on one server, the per-1,000-node figures and the model (see the file's docstring). */
export async function scale(results: Results): Promise<void> {
  const openFiles = openFileLimit();
  const cap = openFiles === null ? Number.POSITIVE_INFINITY : openFiles - 500; // margin for this process's and the server's other files
  const steps = [...new Set(SCALE_STEPS.map((n) => Math.min(n, cap)))].filter((n) => n > 0).sort((a, b) => a - b);
  if (steps.at(-1)! < Math.max(...SCALE_STEPS))
    results.notes.push(
      `scale: the open-file limit (ulimit -n ${openFiles}) caps the simulated agents at ${k(cap)}; raise it in the shell that runs the bench to go further`,
    );
  const top = steps.at(-1)!;
  const maxConnections = top + 1_000;
  const H = SCALE_HEARTBEAT_MS;
  const ladder: ScaleStep[] = [];
  const [idle] = await withServer(maxConnections, undefined, async (pid, url, groups) => {
    const usage = await idleUsage([pid], SCALE_WINDOW_MS);
    for (const target of steps) {
      process.stderr.write(`bench: scale: ${k(target)} nodes every ${sec(H)}…\n`);
      const step = await measureStep(url, groups, target, H, { server: pid });
      ladder.push(step);
      if (!keptUp(step)) break;
    }
    return usage;
  });
  const skipped = steps.filter((n) => n > ladder.at(-1)!.target);
  if (skipped.length > 0)
    results.notes.push(
      `scale: the server did not keep up with ${k(ladder.at(-1)!.target)} nodes, so ${skipped.map(k).join(', ')} were not run on it`,
    );
  // The last step it kept up with, at a 5× longer interval on a fresh server: splits per-node from per-heartbeat CPU.
  const best = ladder.filter(keptUp).at(-1);
  let split: ScaleStep | undefined;
  if (best) {
    process.stderr.write(`bench: scale: ${k(best.nodes)} nodes every ${sec(5 * H)}…\n`);
    split = await withServer(maxConnections, undefined, (pid, url, groups) => measureStep(url, groups, best.nodes, 5 * H, { server: pid }));
  }
  // The top step at the default interval with Mosquitto as the backbone: the controller and Mosquitto measured apart.
  let mq: MosquittoRun | undefined;
  if (!haveMosquitto()) results.notes.push('scale on Mosquitto skipped: mosquitto is not installed');
  else {
    process.stderr.write(`bench: scale: ${k(top)} nodes every ${sec(H)} on Mosquitto…\n`);
    const m = await startMosquitto(await freePort(), { extraConfig: ['max_connections -1'] });
    try {
      mq = await withServer(maxConnections, m.url, async (pid, url, groups) => {
        const [controller, broker] = await idleUsage([pid, m.child.pid!], SCALE_WINDOW_MS / 2);
        return { idle: { controller, broker }, step: await measureStep(url, groups, top, H, { server: pid, broker: m.child.pid! }) };
      });
    } finally {
      await m.stop();
    }
  }
  const model = scaleModel(idle, ladder, split, mq, openFiles);
  const f = model.figures;
  const json = {
    heartbeatMs: H,
    windowMs: SCALE_WINDOW_MS,
    settleMs: SCALE_SETTLE_MS,
    connectBudgetMs: CONNECT_BUDGET_MS,
    openFiles,
    idle,
  };
  results.json.scale = { ...json, steps: ladder, longerInterval: split, mosquitto: mq, model: f };
  (results.blocks ??= []).push(model.markdown);
  const row = (name: string, baseline: string, measured: string, ratio = '-') =>
    results.rows.push({ name, baseline, measured, ratio, target: '-', met: '-' });
  let prev = { nodes: 0, cores: idle.cores, rss: idle.rssMeanBytes };
  for (const s of ladder) {
    const per = (d: number) => (d / Math.max(s.nodes - prev.nodes, 1)) * 1000;
    const ratio = `+${fmtPct(per(s.server.cores - prev.cores))} CPU, +${fmtMiB(per(s.server.rssMeanBytes - prev.rss))} RSS per 1,000 nodes over the step before`;
    results.rows.push(stepRow(s, idle, " (the agent's default), server (embedded broker + controller)", ratio));
    prev = { nodes: s.nodes, cores: s.server.cores, rss: s.server.rssMeanBytes };
  }
  if (split && best) {
    const ratio = `CPU ${(split.server.cores / Math.max(best.server.cores, 0.001)).toFixed(2)}× the same nodes at ${sec(H)}`;
    results.rows.push(stepRow(split, idle, ` (5× the default), server on a fresh start`, ratio));
  }
  const last = ladder.at(-1)!;
  const b = best ?? last;
  row(
    `scale: heartbeat bytes per node per second at ${sec(H)} (simulated NodeStatus, retained QoS 1), ${k(b.nodes)} nodes`,
    '-',
    `${b.payloadBytesPerNodeSec.toFixed(0)} B/s of JSON payload, ${b.packetBytesPerNodeSec.toFixed(0)} B/s as MQTT 3.1.1 PUBLISH packets (+4 B PUBACK back per heartbeat; TCP/IP not counted)`,
  );
  row(
    `scale: server per 1,000 nodes at ${sec(H)} (least squares over idle and ${f.fittedSteps.map(k).join(', ')} nodes), and where heartbeats alone would take one core (model below the table)`,
    '-',
    `CPU ${fmtPct(f.cpuPerThousandNodes)} of a core, RSS ${fmtMiB(f.rssBytesPerThousandNodes)} per 1,000 nodes; one core at ~${k(f.stopsAtNodes)} nodes (RSS ~${fmtMiB(f.rssBytesAtStop)})`,
  );
  if (mq) {
    const m = mq.step;
    row(
      `scale: ${k(m.nodes)}${m.nodes < m.target ? ` of ${k(m.target)}` : ''} nodes every ${sec(m.heartbeatMs)} on Mosquitto as the backbone (\`cutter server --broker\`: the controller alone), over ${sec(m.server.wallMs)}`,
      `embedded broker, ${k(last.nodes)} nodes: CPU ${fmtPct(last.server.cores)}, RSS ${fmtMiB(last.server.rssMeanBytes)}${keptUp(last) ? '' : ', did not keep up'}`,
      `controller CPU ${fmtPct(m.server.cores)}, RSS ${fmtMiB(m.server.rssMeanBytes)}; Mosquitto CPU ${fmtPct(m.broker?.cores ?? 0)}, RSS ${fmtMiB(m.broker?.rssMeanBytes ?? 0)}; ${k(m.ackedPerSec)} heartbeats/s acknowledged of ${k(m.publishedPerSec)} sent, ${k(m.duePerSec)} due${keptUp(m) ? '' : ' — did NOT keep up'}; ${m.online === null ? 'online count not answered' : `${k(m.online)} online`}; connected at ${k(rate(m))}/s (simulated agents' process CPU ${fmtPct(m.generator.cores)}; load average ${m.load1.toFixed(2)})`,
      `controller + Mosquitto ${fmtPct(m.server.cores + (m.broker?.cores ?? 0))} for ${(m.nodes / Math.max(last.nodes, 1)).toFixed(1)}× the nodes`,
    );
  }
}
