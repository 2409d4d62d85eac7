/**
 * `cutter pipeline` with real processes: a YAML pipeline whose second step sees the first's
 * output (environment and `${{ steps.ID.output }}`), each step a task on its own node shown by
 * `cutter tasks`; a failing step skips what needs it while independent steps run; a bad file is
 * refused with the field at fault.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startAgent, startServer, tempDir, type Daemon } from '../harness.js';

type Result = {
  ok: boolean;
  runId: string;
  steps: {
    id: string;
    status: string;
    taskId: string | null;
    node: string | null;
    exitCode: number | null;
    output: string | null;
    reason: string | null;
  }[];
};

describe('cutter pipeline', () => {
  let server: Daemon;
  let agents: Daemon[] = [];
  let url: string;
  const dir = tempDir('cutter-pipeline-');

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    agents = await Promise.all([startAgent(url, 'small', ['--allow-exec']), startAgent(url, 'big', ['--allow-exec'])]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it("feeds the first step's output to the second, each placed on its own node", async () => {
    const file = join(dir, 'two.yaml');
    writeFileSync(
      file,
      [
        'name: summarise-then-analyse',
        'steps:',
        '  - id: summarise',
        '    node: small',
        "    task: { kind: exec, argv: [sh, -c, 'echo summary-of-pages-42'] }",
        '  - id: analyse',
        '    needs: [summarise]',
        '    node: big',
        '    task:',
        '      kind: exec',
        '      argv: [sh, -c, \'echo "env=$CUTTER_OUTPUT_SUMMARISE"; echo "arg=$1"\', analyse, "${{ steps.summarise.output }}"]',
      ].join('\n'),
    );
    const r = await cli(['pipeline', file, '--json'], { broker: url, timeoutMs: 60_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const result = JSON.parse(r.stdout) as Result;
    expect(result.ok).toBe(true);
    const [first, second] = result.steps;
    expect(first).toMatchObject({ id: 'summarise', status: 'succeeded', node: 'small', output: 'summary-of-pages-42\n' });
    expect(second).toMatchObject({ id: 'analyse', status: 'succeeded', node: 'big' });
    expect(second.output).toBe('env=summary-of-pages-42\n\narg=summary-of-pages-42\n');

    const tasks = JSON.parse((await cli(['tasks', 'list', '--json'], { broker: url })).stdout) as {
      taskId: string;
      state: string;
      node: string;
    }[];
    expect(tasks.find((t) => t.taskId === `p${result.runId}.summarise`)).toMatchObject({ state: 'succeeded', node: 'small' });
    expect(tasks.find((t) => t.taskId === `p${result.runId}.analyse`)).toMatchObject({ state: 'succeeded', node: 'big' });
  }, 90_000);

  it('skips the dependants of a failed step, runs independent steps, and exits 1', async () => {
    const file = join(dir, 'dag.json');
    writeFileSync(
      file,
      JSON.stringify({
        steps: [
          { id: 'fails', task: { kind: 'exec', argv: ['sh', '-c', 'exit 3'] } },
          { id: 'child', needs: ['fails'], task: { kind: 'exec', argv: ['echo', 'never'] } },
          { id: 'grandchild', needs: ['child'], task: { kind: 'exec', argv: ['echo', 'never'] } },
          { id: 'independent', task: { kind: 'exec', argv: ['echo', 'still-runs'] } },
        ],
      }),
    );
    const r = await cli(['pipeline', file, '--json'], { broker: url, timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    const result = JSON.parse(r.stdout) as Result;
    const by = Object.fromEntries(result.steps.map((s) => [s.id, s]));
    expect(by.fails).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(by.child).toMatchObject({ status: 'skipped', taskId: null, reason: 'needs "fails", which failed' });
    expect(by.grandchild).toMatchObject({ status: 'skipped', reason: 'needs "child", which was skipped' });
    expect(by.independent).toMatchObject({ status: 'succeeded', output: 'still-runs\n' });
    const tasks = JSON.parse((await cli(['tasks', 'list', '--json'], { broker: url })).stdout) as { taskId: string; state: string }[];
    expect(tasks.find((t) => t.taskId === `p${result.runId}.fails`)?.state).toBe('failed');
    expect(tasks.some((t) => t.taskId === `p${result.runId}.child`)).toBe(false);
  }, 90_000);

  it('refuses an invalid pipeline with the field at fault, running nothing', async () => {
    const cyc = join(dir, 'cycle.yaml');
    writeFileSync(
      cyc,
      "steps:\n  - { id: a, needs: [b], task: { kind: exec, argv: ['true'] } }\n  - { id: b, needs: [a], task: { kind: exec, argv: ['true'] } }\n",
    );
    const r1 = await cli(['pipeline', cyc], { broker: url });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/cycle: a → b → a/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'steps:\n  - { id: a, task: { kind: podman, image: x } }\n');
    const r2 = await cli(['pipeline', bad], { broker: url });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/steps\[0\]\.task/);
    const ollama = join(dir, 'ollama.yaml');
    writeFileSync(
      ollama,
      "steps:\n  - id: ask\n    task: { kind: ollama, op: generate, model: 'llama3.2:1b', request: { prompt: 'hi' } }\n",
    );
    const r3 = await cli(['pipeline', ollama, '--check'], { broker: url });
    expect(r3.code, r3.stderr).toBe(0);
    expect(r3.stdout).toMatch(/ask\s+-\s+ollama/);
  });
});
