/** `cutter pipeline FILE`: runs a YAML or JSON pipeline of tasks (shared/schemas/pipeline.ts, cli/pipeline-runner.ts). */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { PipelineSchema, type Pipeline } from '../../shared/schemas/index.js';
import { printJson, table } from '../output.js';
import { runPipeline } from '../pipeline-runner.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/**
 * Reads and validates a pipeline file (JSON when it parses as JSON, else YAML).
 * @throws CutterError INVALID_ARGUMENT naming the file and the first bad field.
 */
export function loadPipeline(path: string): Pipeline {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CutterError('INVALID_ARGUMENT', `cannot read pipeline ${path}: ${errorMessage(err)}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new CutterError(
      'INVALID_ARGUMENT',
      `pipeline ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${errorMessage(err)}`,
    );
  }
  const parsed = PipelineSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CutterError('INVALID_ARGUMENT', `pipeline ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export function registerPipeline(program: Command): void {
  withClientOptions(
    program
      .command('pipeline')
      .argument('<file>', 'pipeline file (.yaml, .yml or .json)')
      .description('run a pipeline of tasks, each step fed the output of the steps it needs'),
  )
    .option('--check', 'validate the file and print the steps, run nothing')
    .action((file: string, flags: GlobalFlags & { check?: boolean }) =>
      withClient(flags, async (client) => {
        const pipeline = loadPipeline(file);
        if (flags.check) {
          if (flags.json) printJson(pipeline);
          else
            process.stdout.write(
              `${table(
                ['STEP', 'NEEDS', 'KIND', 'NODE'],
                pipeline.steps.map((s) => [s.id, s.needs.join(',') || '-', s.task.kind, s.node ?? '(scheduler)']),
              )}\n`,
            );
          return 0;
        }
        const { runId, steps } = await runPipeline(client, pipeline, (r) => {
          if (flags.json) return;
          const where = r.node ? ` on ${r.node}` : '';
          const why = r.reason ? `: ${r.reason}` : '';
          process.stderr.write(
            `cutter: step ${r.id} ${r.status}${r.taskId ? ` (task ${r.taskId})` : ''}${r.status === 'running' ? '' : where}${why}\n`,
          );
        });
        const ok = steps.every((s) => s.status === 'succeeded');
        if (flags.json) printJson({ name: pipeline.name ?? null, runId, ok, steps });
        else {
          process.stdout.write(
            `${table(
              ['STEP', 'TASK', 'STATUS', 'NODE', 'EXIT'],
              steps.map((s) => [s.id, s.taskId ?? '-', s.status, s.node ?? '-', s.exitCode === null ? '-' : String(s.exitCode)]),
            )}\n`,
          );
          const last = [...steps].reverse().find((s) => s.status === 'succeeded' && s.output);
          if (ok && last?.output)
            process.stdout.write(`\n--- output of ${last.id} ---\n${last.output}${last.output.endsWith('\n') ? '' : '\n'}`);
        }
        return ok ? 0 : 1;
      }),
    );
}
