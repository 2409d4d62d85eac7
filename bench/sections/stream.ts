/**
 * Output streaming: 100 MB of a container's stdout through `cutter run` against `docker run`
 * itself, paired in one run (issue 15: goal ≤ 1.2× docker run's time), with the peak RSS of the
 * server and the agent while cutter streams. Both commands write to /dev/null and read the same
 * source (`head -c N /dev/urandom` in the test image), so the difference is what cutter adds:
 * the agent reading the container's log stream, output over MQTT (binary frames,
 * shared/log-frame.ts), the controller keeping its bounded copy, the CLI writing the bytes out.
 * Peak RSS is the kernel's high-water mark (VmHWM), reset before each run; the agent's idle RSS is
 * read before the first stream (design target: peak ≤ idle + 64 MiB).
 *
 * Two baselines, each paired with every cutter run: `docker run` as a user types it (the engine's
 * default log driver, json-file: the goal is against this), and `docker run --log-driver
 * none`, the engine's work for cutter's own container (the agent creates it without an engine-side
 * log copy: agent/executors/docker-logging.ts), which shows what cutter's own path adds.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { CUTTER } from '../../scripts/procs.js';
import { fmtMiB, fmtMs, median, peakRssBytes, resetPeakRss, rssBytes } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { IMAGE, num } from '../settings.js';

/** Bytes of stdout per run. */
const STREAM_BYTES = num('BENCH_STREAM_BYTES', 100_000_000, 10_000_000);
/** Paired runs (docker run, then cutter run, in turn). */
const STREAM_RUNS = num('BENCH_STREAM_RUNS', 5, 2);

/** Runs a command with stdout to /dev/null. @returns wall time, ms. @throws Error on a non-zero exit. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-300)));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} … exited with ${code}: ${stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/**
 * `cutter run --node bench docker run IMG head -c N /dev/urandom` vs the same `docker run --rm`.
 * @param children the mesh's daemons (bench/sections/mesh.ts): the server first, then the agent `bench`.
 */
export async function stream(results: Results, broker: string, children: ChildProcess[]): Promise<void> {
  if (spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0) {
    results.notes.push('stream: skipped (no Docker engine or test image)');
    return;
  }
  const [server, agent] = children;
  const env = { ...process.env, CUTTER_BROKER: broker };
  const cmd = ['head', '-c', String(STREAM_BYTES), '/dev/urandom'];
  const viaDocker = () => timed('docker', ['run', '--rm', IMAGE, ...cmd], env);
  const viaDockerNoLog = () => timed('docker', ['run', '--rm', '--log-driver', 'none', IMAGE, ...cmd], env);
  const viaCutter = () => timed(process.execPath, [CUTTER, 'run', '--node', 'bench', 'docker', 'run', IMAGE, ...cmd], env);
  const agentIdle = rssBytes(agent.pid!) ?? 0;
  await viaDocker();
  await viaCutter();
  const base: number[] = [];
  const bare: number[] = [];
  const via: number[] = [];
  let serverPeak = 0;
  let agentPeak = 0;
  for (let i = 0; i < STREAM_RUNS; i++) {
    base.push(await viaDocker());
    bare.push(await viaDockerNoLog());
    resetPeakRss(server.pid!);
    resetPeakRss(agent.pid!);
    via.push(await viaCutter());
    serverPeak = Math.max(serverPeak, peakRssBytes(server.pid!) ?? 0);
    agentPeak = Math.max(agentPeak, peakRssBytes(agent.pid!) ?? 0);
  }
  const ratio = median(via) / median(base);
  const mb = STREAM_BYTES / 1e6;
  results.json.stream = {
    bytes: STREAM_BYTES,
    dockerRunMs: base,
    dockerRunNoLogMs: bare,
    cutterRunMs: via,
    serverRssPeak: serverPeak,
    agentRssPeak: agentPeak,
    agentRssIdle: agentIdle,
    ratio,
    ratioNoLog: median(via) / median(bare),
  };
  results.rows.push({
    name: `stdout: ${mb} MB of random bytes from a container, \`cutter run --node n docker run IMG head -c …\` vs \`docker run --rm IMG head -c …\` (median of ${STREAM_RUNS} pairs, to /dev/null)`,
    baseline: `${fmtMs(median(base))} ms (${(((STREAM_BYTES / median(base)) * 1e3) / 1e6).toFixed(0)} MB/s)`,
    measured: `${fmtMs(median(via))} ms (${(((STREAM_BYTES / median(via)) * 1e3) / 1e6).toFixed(0)} MB/s); peak RSS server ${fmtMiB(serverPeak)}, agent ${fmtMiB(agentPeak)} (idle before: ${fmtMiB(agentIdle)}, +${fmtMiB(agentPeak - agentIdle)})`,
    ratio: `${ratio.toFixed(2)}×`,
    target: '≤ 1.2×',
    met: verdict(ratio <= 1.2),
  });
  results.rows.push({
    name: `the same ${mb} MB against \`docker run --rm --log-driver none\`: the engine's work for cutter's container, so the ratio is what cutter's own path adds (agent, broker, CLI)`,
    baseline: `${fmtMs(median(bare))} ms (${(((STREAM_BYTES / median(bare)) * 1e3) / 1e6).toFixed(0)} MB/s)`,
    measured: `${fmtMs(median(via))} ms`,
    ratio: `${(median(via) / median(bare)).toFixed(2)}×`,
    target: '-',
    met: '-',
  });
  const growth = agentPeak - agentIdle;
  results.rows.push({
    name: `agent memory while ${mb} MB stream through it: peak RSS (VmHWM) against its idle RSS before the first stream`,
    baseline: `idle ${fmtMiB(agentIdle)}`,
    measured: `peak ${fmtMiB(agentPeak)} (+${fmtMiB(growth)})`,
    ratio: `+${fmtMiB(growth)}`,
    target: '≤ idle + 64 MiB',
    met: verdict(growth <= 64 * 1024 * 1024),
  });
}
