/**
 * The results of a benchmark run: one table row per figure, notes, and the raw numbers; written as
 * results.md (the table and how to read it) and results.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One row of the results table; every cell is Markdown. */
export interface Row {
  name: string;
  baseline: string;
  measured: string;
  ratio: string;
  target: string;
  met: string;
}

/** What the sections of one run report: table rows, notes (sections skipped or failed), raw numbers by section. */
export interface Results {
  rows: Row[];
  notes: string[];
  json: Record<string, unknown>;
  /** Markdown blocks a section adds after the notes, each with its own `##` heading (the scale section's model). */
  blocks?: string[];
}

/** `met` or `not met`, for the last column. */
export const verdict = (ok: boolean): string => (ok ? 'met' : 'not met');

/** results.md: the table, then how to read it and the notes. `started` is an ISO time, `machine` its description. */
export function resultsMarkdown(results: Results, run: { started: string; machine: string; quick: boolean; note?: string }): string {
  const { rows, notes } = results;
  return [
    '# cutter benchmarks',
    '',
    `Run ${run.started} (${run.quick ? 'QUICK mode: small sizes, a smoke run — not the published figures' : 'full run'}) on ${run.machine}. Written by \`npm run bench\`; every ratio is against a baseline measured in the same run on the same machine, or against the target from the design.`,
    ...(run.note ? ['', run.note] : []),
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
    ...(results.blocks ?? []).flatMap((b) => [b.trimEnd(), '']),
  ].join('\n');
}

/** Writes `md` as results.md and the raw numbers as results.json into `dir` (created when missing). */
export function writeResults(dir: string, started: string, md: string, results: Results): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.md'), md);
  writeFileSync(
    join(dir, 'results.json'),
    `${JSON.stringify({ started, ...results.json, rows: results.rows, notes: results.notes }, null, 2)}\n`,
  );
}
