/**
 * The benchmarks at scale: the scheduler alone, placement throughput with simulated agents (on the
 * embedded broker and on Mosquitto), heartbeat load, and the embedded broker against Mosquitto.
 */
import { haveMosquitto, startMosquitto } from '../../scripts/mosquitto.js';
import { freePort } from '../../scripts/procs.js';
import { compareBrokers } from '../broker-compare.js';
import { fmtMiB, fmtMs, fmtPct } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { measureScheduler } from '../scheduler.js';
import { AGENTS, C2M_PER_SEC, HEARTBEAT_WINDOW_MS, PLACEMENT_TARGET, TASKS, THROUGHPUT_TIMEOUT_MS, num } from '../settings.js';
import { measureHeartbeatLoad, measureThroughput } from '../throughput.js';

/** Pure `place()` over AGENTS nodes, one thread, no I/O: placements/s. */
export async function scheduler(results: Results): Promise<void> {
  const perSec = measureScheduler(AGENTS);
  results.json.scheduler = { nodes: AGENTS, placementsPerSec: perSec };
  results.rows.push({
    name: `the scheduler alone: pure \`place()\` over ${AGENTS.toLocaleString('en')} nodes, registry snapshot and reservation included, one thread, no I/O`,
    baseline: `target ${PLACEMENT_TARGET.toLocaleString('en')}/s`,
    measured: `${Math.round(perSec).toLocaleString('en')} placements/s`,
    ratio: `${(perSec / PLACEMENT_TARGET).toFixed(2)}× of target`,
    target: '-',
    met: '-',
  });
}

/** Placement throughput on the embedded broker: AGENTS simulated agents, TASKS no-op tasks. */
export async function throughput(results: Results): Promise<void> {
  const r = await measureThroughput({
    agents: AGENTS,
    tasks: TASKS,
    window: 1_000,
    maxTasks: 64,
    timeoutMs: THROUGHPUT_TIMEOUT_MS,
  });
  results.json.throughput = r;
  const full = AGENTS >= 1000;
  results.rows.push({
    name: `placement throughput: ${AGENTS.toLocaleString('en')} simulated agents (real MQTT connections), ${TASKS.toLocaleString('en')} no-op tasks submitted with up to 1,000 in flight${r.timedOut ? ' — TIMED OUT before all completed' : ''}`,
    baseline: `target ${PLACEMENT_TARGET.toLocaleString('en')}/s; HashiCorp C2M ~${Math.round(C2M_PER_SEC).toLocaleString('en')}/s`,
    measured: `${Math.round(r.placementsPerSec).toLocaleString('en')} placements/s (${r.placed.toLocaleString('en')} in ${(r.placeMs / 1000).toFixed(1)} s)`,
    ratio: `${(r.placementsPerSec / PLACEMENT_TARGET).toFixed(2)}× of target, ${(r.placementsPerSec / C2M_PER_SEC).toFixed(2)}× of C2M`,
    target: full ? '10,000/s with 1,000 agents' : '10,000/s (quick mode: fewer agents, not comparable)',
    met: full ? verdict(r.placementsPerSec >= PLACEMENT_TARGET) : 'not measured (quick)',
  });
  results.rows.push({
    name: 'completed tasks/s, same run (controller recorded the result)',
    baseline: '-',
    measured: `${Math.round(r.completedPerSec).toLocaleString('en')}/s (${r.completed.toLocaleString('en')} in ${(r.completeMs / 1000).toFixed(1)} s); refused: ${JSON.stringify(r.refused)}`,
    ratio: '-',
    target: '-',
    met: '-',
  });
  results.rows.push({
    name: 'server (embedded broker + controller) during that run',
    baseline: '-',
    measured: `CPU ${fmtPct(r.server.cores)} of one core, RSS mean ${fmtMiB(r.server.rssMeanBytes)}, peak ${fmtMiB(r.server.rssPeakBytes)} (load generator — simulated agents and submitter, one process: CPU ${fmtPct(r.generator.cores)})`,
    ratio: '-',
    target: '-',
    met: '-',
  });
}

/** The same run with Mosquitto as the backbone: `cutter server --broker` is then the controller alone. */
export async function throughputOnMosquitto(results: Results): Promise<void> {
  if (!haveMosquitto()) {
    results.notes.push('placement throughput on Mosquitto skipped: mosquitto is not installed');
    return;
  }
  const m = await startMosquitto(await freePort(), { extraConfig: ['max_connections -1'] });
  try {
    const r = await measureThroughput({
      agents: AGENTS,
      tasks: TASKS,
      window: 1_000,
      maxTasks: 64,
      timeoutMs: THROUGHPUT_TIMEOUT_MS,
      externalBroker: { url: m.url, pid: m.child.pid! },
    });
    results.json.throughputMosquitto = r;
    const embedded = results.json.throughput as { placementsPerSec: number } | undefined;
    results.rows.push({
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

/** AGENTS nodes heartbeating every 2 s: the server's CPU and RSS against it idle. */
export async function heartbeat(results: Results): Promise<void> {
  const r = await measureHeartbeatLoad({ agents: AGENTS, heartbeatMs: 2_000, windowMs: HEARTBEAT_WINDOW_MS });
  results.json.heartbeat = r;
  results.rows.push({
    name: `heartbeat load: ${AGENTS.toLocaleString('en')} nodes at a 2 s interval, server (broker + controller) over ${HEARTBEAT_WINDOW_MS / 1000} s`,
    baseline: `idle, no nodes: CPU ${fmtPct(r.idle.cores)}, RSS ${fmtMiB(r.idle.rssMeanBytes)}`,
    measured: `CPU ${fmtPct(r.loaded.cores)} of one core, RSS mean ${fmtMiB(r.loaded.rssMeanBytes)}, peak ${fmtMiB(r.loaded.rssPeakBytes)}`,
    ratio: `CPU ${(r.loaded.cores / Math.max(r.idle.cores, 0.001)).toFixed(1)}× idle, RSS ${(r.loaded.rssMeanBytes / r.idle.rssMeanBytes).toFixed(2)}× idle`,
    target: '-',
    met: '-',
  });
}

/** Heartbeat fan-in through the embedded Aedes and through Mosquitto (when installed). */
export async function brokers(results: Results): Promise<void> {
  const publishers = num('BENCH_BROKER_PUBLISHERS', 20, 10);
  const perPublisher = num('BENCH_BROKER_MESSAGES', 5_000, 500);
  const r = await compareBrokers({ publishers, perPublisher, window: 10 });
  results.json.brokers = r;
  const a = r.aedes;
  const m = r.mosquitto;
  results.rows.push({
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
