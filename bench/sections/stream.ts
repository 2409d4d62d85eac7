/**
 * Output streaming: 100 MB of a container's stdout through `cutter run` against `docker run`
 * itself, paired in one run (issue 15: goal ≤ 1.2× docker run's time), with the peak RSS of the
 * server and the agent while cutter streams. Both commands write to /dev/null and read the same
 * source (`head -c N /dev/urandom` in the test image), so the difference is what cutter adds:
 * the agent reading the container's log stream, log events over MQTT (base64 in JSON), the
 * controller keeping its bounded copy, the CLI writing the bytes out.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { CUTTER } from '../../scripts/procs.js';
import { fmtMiB, fmtMs, median, sampleUsage } from '../proc-stats.js';
import { type Results, verdict } from '../results.js';
import { IMAGE, num } from '../settings.js';

/** Bytes of stdout per run. */
const STREAM_BYTES = num('BENCH_STREAM_BYTES', 100_000_000, 10_000_000);
/** Paired runs (docker run, then cutter run, in turn). */
const STREAM_RUNS = num('BENCH_STREAM_RUNS', 5, 2);

/** Runs a command with stdout to /dev/null. @returns wall time, ms. @throws Error on a non-zero exit. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env, maxBuffer: 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} … exited with ${r.status}: ${String(r.stderr).slice(0, 300)}`);
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
  const viaCutter = () => timed(process.execPath, [CUTTER, 'run', '--node', 'bench', 'docker', 'run', IMAGE, ...cmd], env);
  viaDocker();
  viaCutter();
  const base: number[] = [];
  const via: number[] = [];
  let serverPeak = 0;
  let agentPeak = 0;
  for (let i = 0; i < STREAM_RUNS; i++) {
    base.push(viaDocker());
    const s = sampleUsage([server.pid!], 100);
    const a = sampleUsage([agent.pid!], 100);
    via.push(viaCutter());
    serverPeak = Math.max(serverPeak, s.stop().rssPeakBytes);
    agentPeak = Math.max(agentPeak, a.stop().rssPeakBytes);
  }
  const ratio = median(via) / median(base);
  const mb = STREAM_BYTES / 1e6;
  results.json.stream = {
    bytes: STREAM_BYTES,
    dockerRunMs: base,
    cutterRunMs: via,
    serverRssPeak: serverPeak,
    agentRssPeak: agentPeak,
    ratio,
  };
  results.rows.push({
    name: `stdout: ${mb} MB of random bytes from a container, \`cutter run --node n docker run IMG head -c …\` vs \`docker run --rm IMG head -c …\` (median of ${STREAM_RUNS} pairs, to /dev/null)`,
    baseline: `${fmtMs(median(base))} ms (${(((STREAM_BYTES / median(base)) * 1e3) / 1e6).toFixed(0)} MB/s)`,
    measured: `${fmtMs(median(via))} ms (${(((STREAM_BYTES / median(via)) * 1e3) / 1e6).toFixed(0)} MB/s); peak RSS server ${fmtMiB(serverPeak)}, agent ${fmtMiB(agentPeak)}`,
    ratio: `${ratio.toFixed(2)}×`,
    target: '≤ 1.2×',
    met: verdict(ratio <= 1.2),
  });
}
