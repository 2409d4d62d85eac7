/**
 * What a benchmark run measures and how big, from the environment (see bench/run.ts):
 * BENCH_QUICK=1 picks the small sizes, BENCH_ONLY the sections, BENCH_OUT where results go, and
 * BENCH_RUNS, BENCH_SUBMITS, BENCH_AGENTS, BENCH_TASKS, BENCH_HEARTBEAT_WINDOW_MS, BENCH_IDLE_MS,
 * BENCH_FAILOVER_TRIALS, BENCH_THROUGHPUT_TIMEOUT_MS, BENCH_SCALE_STEPS, BENCH_SCALE_WINDOW_MS,
 * BENCH_SCALE_SETTLE_MS, BENCH_SCALE_HEARTBEAT_MS override one size each.
 */
import { ROOT } from '../scripts/procs.js';
import { AgentConfigSchema } from '../shared/config/agent.js';

/** BENCH_QUICK=1: every size small, a smoke run of a minute or two (not the published figures). */
export const QUICK = process.env.BENCH_QUICK === '1';
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;

/** Whether BENCH_ONLY (comma separated section names; unset: all) includes `section`. */
export const want = (section: string): boolean => !ONLY || ONLY.has(section);

/** The number in environment variable `name`, else `full` (or `quick` under BENCH_QUICK=1). */
export const num = (name: string, full: number, quick: number): number => Number(process.env[name] ?? (QUICK ? quick : full));

/** The image the dispatch section runs (built by scripts/build-test-image.sh). */
export const IMAGE = 'cutter-test/busybox:latest';
/** Whole-process runs of each command in the dispatch section. */
export const RUNS = num('BENCH_RUNS', 9, 3);
/** Sequential submits in the latency section. */
export const SUBMITS = num('BENCH_SUBMITS', 300, 50);
/** Nodes for the scheduler, simulated agents for throughput and heartbeat load. */
export const AGENTS = num('BENCH_AGENTS', 1000, 100);
/** No-op tasks of the throughput sections. */
export const TASKS = num('BENCH_TASKS', 100_000, 3_000);
/** How long the heartbeat load is measured, ms. */
export const HEARTBEAT_WINDOW_MS = num('BENCH_HEARTBEAT_WINDOW_MS', 20_000, 4_000);
/** Connected simulated agents at each step of the scale section (BENCH_SCALE_STEPS=1000,2500,…). */
export const SCALE_STEPS = (process.env.BENCH_SCALE_STEPS ?? (QUICK ? '100,300' : '1000,2500,5000,10000'))
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
/** How long each step of the scale section (and the idle server before) is measured, ms. */
export const SCALE_WINDOW_MS = num('BENCH_SCALE_WINDOW_MS', 20_000, 3_000);
/** How long the scale section waits after a step has connected before it measures, ms (at least one heartbeat). */
export const SCALE_SETTLE_MS = num('BENCH_SCALE_SETTLE_MS', 5_000, 1_500);
/** Heartbeat interval of the scale section's agents, ms: the agent's default (shared/config/agent.ts). */
export const SCALE_HEARTBEAT_MS = Number(process.env.BENCH_SCALE_HEARTBEAT_MS ?? AgentConfigSchema.shape.heartbeatMs.parse(undefined));
/** How long the idle agent is measured, ms. */
export const IDLE_MS = num('BENCH_IDLE_MS', 60_000, 8_000);
/** Trials of each failover mode. */
export const FAILOVER_TRIALS = num('BENCH_FAILOVER_TRIALS', 5, 1);
/** Leader kills of the takeover section (PostgreSQL state). */
export const TAKEOVER_TRIALS = num('BENCH_TAKEOVER_TRIALS', 10, 2);
/** Longest a throughput run may take, ms. */
export const THROUGHPUT_TIMEOUT_MS = Number(process.env.BENCH_THROUGHPUT_TIMEOUT_MS ?? 600_000);
/** Where results.md and results.json are written. */
export const OUT = process.env.BENCH_OUT ?? `${ROOT}bench`;

/** Placements per second the design targets (with 1,000 agents). */
export const PLACEMENT_TARGET = 10_000;
/** HashiCorp's C2M: 2,000,000 containers in 22 minutes, per second. */
export const C2M_PER_SEC = 2_000_000 / (22 * 60);

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, ms));
