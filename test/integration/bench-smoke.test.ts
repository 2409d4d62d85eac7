/**
 * `npm run bench` in a tiny quick mode: the benchmark code (simulated agents speaking the real
 * protocol, the throughput and heartbeat drivers, the report) runs end to end against a real
 * server and writes its report. Figures are not checked — speed is the benchmark's business —
 * only that every task was placed and completed and nothing failed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT, tempDir } from '../harness.js';

it('runs the CLI start, latency, throughput, heartbeat, Ollama API and scale benchmarks in quick mode and writes the report', () => {
  const out = tempDir('cutter-bench-smoke-');
  const r = spawnSync(process.execPath, [`${ROOT}dist/bench/run.js`], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      BENCH_QUICK: '1',
      BENCH_ONLY: 'cli,latency,throughput,heartbeat,ollama,scale',
      BENCH_SUBMITS: '10',
      BENCH_AGENTS: '5',
      BENCH_TASKS: '200',
      BENCH_HEARTBEAT_WINDOW_MS: '1000',
      BENCH_SCALE_STEPS: '5,10',
      BENCH_SCALE_WINDOW_MS: '1000',
      BENCH_SCALE_SETTLE_MS: '500',
      BENCH_SCALE_HEARTBEAT_MS: '200',
      BENCH_OUT: out,
    },
  });
  expect(r.status, r.stderr).toBe(0);
  const md = readFileSync(join(out, 'results.md'), 'utf8');
  expect(md).toContain('placement throughput: 5 simulated agents');
  expect(md).toContain('heartbeat load: 5 nodes');
  expect(md).toContain('submit→assigned');
  expect(md).toMatch(/CLI start: `cutter nodes list`.* \| [0-9.]+× \| ≤ 1.5× \|/);
  expect(md).toContain('Ollama-compatible API: time to first token');
  expect(md).toContain('scale: 10 nodes heartbeating every 0.2 s');
  expect(md).toContain('## Where one server stops');
  expect(md).not.toContain('FAILED');
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
    throughput: { placed: number; completed: number; invalidAssignments: number; timedOut: boolean; refused: Record<string, number> };
    scale: { steps: { nodes: number }[] };
  };
  expect(json.throughput).toMatchObject({ placed: 200, completed: 200, invalidAssignments: 0, timedOut: false, refused: {} });
  expect(json.scale.steps.map((s) => s.nodes)).toEqual([5, 10]);
}, 150_000);
