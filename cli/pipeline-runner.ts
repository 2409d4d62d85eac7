/**
 * Runs a Pipeline (shared/schemas/pipeline.ts) from the client: submits each step as a task once
 * the steps it needs have succeeded, follows it to its end, reads its output from the
 * controller's kept logs, and feeds it to the steps that need it. A step whose need failed (or was
 * skipped) is skipped; independent steps run on.
 */
import { randomBytes } from 'node:crypto';
import { CutterError, errorMessage } from '../shared/errors.js';
import { type MeshClient, outcomeError, runTask } from '../shared/client/index.js';
import { type LogEvent, logsText } from '../shared/log-data.js';
import type { Pipeline, PipelineStep, TaskEvent, TaskSpec } from '../shared/schemas/index.js';

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface StepResult {
  id: string;
  status: StepStatus;
  /** Task id of the step (`p<run>.<id>`), once submitted. */
  taskId: string | null;
  node: string | null;
  /** The task's terminal state (succeeded, failed, cancelled, lost). */
  taskState: string | null;
  exitCode: number | null;
  /** What it printed on stdout (ollama: the generated text); null until it ended. */
  output: string | null;
  /** Why it failed or was skipped. */
  reason: string | null;
}

/** Largest step output handed on through environment variables, characters (TaskSpec's env value limit). */
const MAX_ENV_OUTPUT = 32_768;

const envName = (id: string) => `CUTTER_OUTPUT_${id.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

/** Replaces `${{ steps.ID.output }}` in every string of `value`. @throws CutterError for an unknown step. */
export function substitute<T>(value: T, outputs: Map<string, string>, stepId: string): T {
  const one = (s: string) =>
    s.replace(/\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.output\s*\}\}/g, (_m, id: string) => {
      const out = outputs.get(id);
      if (out === undefined)
        throw new CutterError('INVALID_ARGUMENT', `step "${stepId}" uses the output of "${id}", which it does not need (add it to needs)`);
      return out.trimEnd();
    });
  const walk = (v: unknown): unknown =>
    typeof v === 'string'
      ? one(v)
      : Array.isArray(v)
        ? v.map(walk)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]))
          : v;
  return walk(value) as T;
}

/** The text of a finished attempt's events: stdout logs, or for ollama the response/message text. */
export function outputOf(events: TaskEvent[], attempt: number): string {
  let out = '';
  // stdout bytes are joined before they are decoded, so a character split between batches stays whole
  let stdout: LogEvent[] = [];
  const flushStdout = () => {
    out += logsText(stdout);
    stdout = [];
  };
  for (const e of events) {
    if (e.attempt !== attempt) continue;
    if (e.type === 'log' && e.stream === 'stdout') stdout.push(e);
    if (e.type === 'chunks') {
      flushStdout();
      for (const c of e.chunks) {
        const text =
          typeof c.response === 'string'
            ? c.response
            : typeof (c.message as { content?: unknown } | undefined)?.content === 'string'
              ? (c.message as { content: string }).content
              : undefined;
        out += text ?? `${JSON.stringify(c)}\n`;
      }
    }
  }
  flushStdout();
  return out;
}

/**
 * Runs the pipeline to its end.
 * @param onChange called whenever a step's status changes.
 * @returns every step's result, in the file's order.
 */
export async function runPipeline(
  client: MeshClient,
  pipeline: Pipeline,
  onChange: (r: StepResult) => void = () => undefined,
): Promise<{ runId: string; steps: StepResult[] }> {
  const runId = randomBytes(3).toString('hex');
  const results = new Map<string, StepResult>(
    pipeline.steps.map((s) => [
      s.id,
      { id: s.id, status: 'pending', taskId: null, node: null, taskState: null, exitCode: null, output: null, reason: null },
    ]),
  );
  const outputs = new Map<string, string>();
  const running = new Map<string, Promise<void>>();
  const set = (id: string, patch: Partial<StepResult>) => {
    const r = Object.assign(results.get(id)!, patch);
    onChange({ ...r });
  };

  const launch = async (step: PipelineStep): Promise<void> => {
    const taskId = `p${runId}.${step.id}`;
    try {
      const mine = new Map(step.needs.map((n) => [n, outputs.get(n)!]));
      let spec: TaskSpec = substitute(step.task, mine, step.id);
      if (spec.kind === 'docker' || spec.kind === 'exec') {
        const env: Record<string, string> = {};
        for (const n of step.needs) env[envName(n)] = outputs.get(n)!;
        env.CUTTER_INPUT = step.needs.map((n) => outputs.get(n)!).join('');
        const big = Object.entries(env).find(([, v]) => v.length > MAX_ENV_OUTPUT);
        if (big)
          throw new CutterError(
            'INVALID_ARGUMENT',
            `${big[0]} would be ${big[1].length} characters, over ${MAX_ENV_OUTPUT}: pass large outputs as files (cutter cp)`,
          );
        spec = { ...spec, env: { ...env, ...spec.env } };
      }
      set(step.id, { status: 'running', taskId });
      // Task options: the defaults of the step's kind (shared/client/task-options.ts), its timeout.
      const run = await runTask(
        client,
        {
          taskId,
          spec,
          requirements: {
            ...(step.node ? { node: step.node } : {}),
            memory: step.memory ?? (spec.kind === 'docker' ? (spec.memoryLimit ?? 0) : 0),
            cpus: step.cpus ?? 0,
          },
          options: step.timeout !== undefined ? { timeoutMs: step.timeout } : {},
        },
        { buffer: false },
      );
      const outcome = await run.result;
      const final = outcome.state;
      if (outcome.end !== 'terminal' || !final) throw outcomeError(outcome);
      const output = outputOf(await client.keptEvents(taskId), final.attempt);
      if (final.state === 'succeeded') {
        outputs.set(step.id, output);
        set(step.id, { status: 'succeeded', node: final.node, taskState: final.state, exitCode: final.exitCode, output });
      } else {
        set(step.id, {
          status: 'failed',
          node: final.node,
          taskState: final.state,
          exitCode: final.exitCode,
          output,
          reason: final.error ? `${final.error.code}: ${final.error.message}` : final.state,
        });
      }
    } catch (err) {
      set(step.id, { status: 'failed', taskId: results.get(step.id)!.taskId, reason: errorMessage(err) });
    }
  };

  for (;;) {
    let progressed = false;
    for (const step of pipeline.steps) {
      const r = results.get(step.id)!;
      if (r.status !== 'pending') continue;
      const needs = step.needs.map((n) => results.get(n)!);
      const blocked = needs.find((n) => n.status === 'failed' || n.status === 'skipped');
      if (blocked) {
        set(step.id, {
          status: 'skipped',
          reason: `needs "${blocked.id}", which ${blocked.status === 'failed' ? 'failed' : 'was skipped'}`,
        });
        progressed = true;
      } else if (needs.every((n) => n.status === 'succeeded')) {
        running.set(
          step.id,
          launch(step).finally(() => running.delete(step.id)),
        );
        progressed = true;
      }
    }
    if (progressed) continue;
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  return { runId, steps: pipeline.steps.map((s) => results.get(s.id)!) };
}
