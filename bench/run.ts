/**
 * `npm run bench`: every benchmark, each figure as a ratio against a baseline measured in the same
 * run on the same machine (or against the design target), with the absolute numbers and the
 * machine's description. Writes bench/results.md and bench/results.json.
 *
 *  1. dispatch — `cutter run --node n docker run IMG true` versus `docker run --rm IMG true` and
 *     versus `ssh localhost docker run --rm IMG true` (bench/ssh.ts), whole processes, interleaved,
 *     median of N runs each (target: within 1.10× of docker run); then the CLI's own start,
 *     `cutter --version` and `cutter nodes list` against `node -e 0` (target: within 1.5×);
 *  2. submit→assigned and submit→result of no-op exec tasks, one after another, p50/p99
 *     (target: submit→assigned under 5 ms p50);
 *  3. placement throughput — simulated agents (bench/sim-agents.ts) and no-op tasks
 *     (bench/throughput.ts; target 10,000 placements/s with 1,000 agents; HashiCorp's C2M ~1,500/s);
 *  4. heartbeat load — 1,000 nodes at a 2 s interval: the server's CPU and RSS, against it idle;
 *  5. agent idle footprint — one real `cutter agent` over a minute (target ≤ 60 MiB RSS, ≤ 0.5% core);
 *  6. the broker — embedded Aedes versus Mosquitto on the heartbeat pattern (bench/broker-compare.ts);
 *  7. failure detection and rescheduling (bench/failover.ts; target: within 3 s);
 *  7b. leader takeover with PostgreSQL state (bench/takeover.ts; target: a standby leads within 5 s);
 *  8. output streaming — 100 MB of a container's stdout, `cutter run` vs `docker run`, with the
 *     server's and agent's peak RSS (bench/sections/stream.ts; target ≤ 1.2× docker run);
 *  9. how far one server goes — steps of simulated agents up to 10,000 at the agent's default
 *     heartbeat: the server's CPU and RSS per 1,000 nodes, heartbeat bytes per node per second, the
 *     same on Mosquitto, and a model of where one server stops (bench/sections/scale.ts).
 *
 * Environment: BENCH_QUICK=1 runs everything small (a smoke run of a minute or two);
 * BENCH_ONLY=dispatch,cli,stream,latency,scheduler,throughput,throughput-mosquitto,heartbeat,idle,broker,failover,takeover,ollama,files,scale
 * picks sections;
 * BENCH_NOTE adds a line to results.md (e.g. that other work shared the machine);
 * BENCH_OUT=DIR writes the results there instead of bench/ (the smoke test uses it).
 * Sections that cannot run here (no Docker engine, no sshd, no Mosquitto) are noted, not failed.
 *
 * This file runs the sections in order; each lives in bench/sections/ (mesh: 1, 2, 5; load: 3, 4, 6;
 * failover, ollama, files, scale), the sizes in bench/settings.ts, the table in bench/results.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { machineDescription } from './proc-stats.js';
import { type Results, resultsMarkdown, writeResults } from './results.js';
import { failover } from './sections/failover.js';
import { fileTransfer } from './sections/files.js';
import { brokers, heartbeat, scheduler, throughput, throughputOnMosquitto } from './sections/load.js';
import { cliStart, dispatch, idle, mesh, submitLatency } from './sections/mesh.js';
import { ollamaApi } from './sections/ollama.js';
import { scale } from './sections/scale.js';
import { stream } from './sections/stream.js';
import { takeover } from './sections/takeover.js';
import { OUT, QUICK, want } from './settings.js';

// Servers and agents started here bind no Ollama API or HTTP port and look for no Ollama unless a
// benchmark asks (bench/ollama.ts passes its own flags): ports 11434 and 8088 may be taken.
process.env.CUTTER_OLLAMA_API ??= 'false';
process.env.CUTTER_OLLAMA_URL ??= 'off';
process.env.CUTTER_HTTP_PORT ??= '0';

/** Daemons of the mesh sections, stopped when the run ends. */
const children: ChildProcess[] = [];

async function main(): Promise<void> {
  const results: Results = { rows: [], notes: [], json: {} };
  const machine = machineDescription();
  const started = new Date().toISOString();
  results.json.machine = { description: machine, cpus: cpus().length, cpu: cpus()[0]?.model, memory: totalmem(), node: process.version };
  results.json.mode = QUICK ? 'quick' : 'full';
  // A section that throws becomes a FAILED row and a note; the others still run.
  const step = async (name: string, fn: () => Promise<void>) => {
    if (!want(name)) return;
    process.stderr.write(`bench: ${name}…\n`);
    const t0 = Date.now();
    try {
      await fn();
    } catch (err) {
      results.notes.push(`${name} failed: ${(err as Error).message}`);
      results.rows.push({
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
  if (want('dispatch') || want('cli') || want('latency') || want('idle') || want('stream')) broker = await mesh(children);
  await step('dispatch', () => dispatch(results, broker));
  await step('cli', () => cliStart(results, broker));
  await step('stream', () => stream(results, broker, children));
  await step('latency', () => submitLatency(results, broker));
  await step('idle', () => idle(results, broker, children));
  for (const c of children.splice(0)) c.kill('SIGTERM');
  await step('scheduler', () => scheduler(results));
  await step('throughput', () => throughput(results));
  await step('throughput-mosquitto', () => throughputOnMosquitto(results));
  await step('heartbeat', () => heartbeat(results));
  await step('broker', () => brokers(results));
  await step('failover', () => failover(results));
  await step('takeover', () => takeover(results));
  await step('ollama', () => ollamaApi(results));
  await step('files', () => fileTransfer(results));
  await step('scale', () => scale(results));

  const md = resultsMarkdown(results, { started, machine, quick: QUICK, note: process.env.BENCH_NOTE || undefined });
  writeResults(OUT, started, md, results);
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
