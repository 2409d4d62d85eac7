/** `cutter pipeline FILE`: runs a YAML or JSON pipeline of tasks (shared/schemas/pipeline.ts, cli/pipeline-runner.ts). */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { Pipeline } from '../../shared/schemas/index.js';
import { parsePipeline } from '../pipeline-file.js';
import { printError, printJson, table } from '../output.js';
import { runPipeline } from '../pipeline-runner.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/**
 * Reads and validates a pipeline file (JSON for `.json`, else YAML) strictly (../pipeline-file.ts);
 * deprecation notes go to stderr unless `quiet`.
 * @throws CutterError INVALID_ARGUMENT naming the file and the first bad field (an unknown key with the nearest valid one).
 */
export function loadPipeline(path: string, quiet = false): Pipeline {
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
  const { pipeline, notes } = parsePipeline(raw, `pipeline ${path}`);
  if (!quiet) for (const n of notes) process.stderr.write(`cutter: pipeline ${path}: ${n}\n`);
  return pipeline;
}

export function registerPipeline(program: Command): void {
  withClientOptions(
    program
      .command('pipeline')
      .argument('<file>', 'pipeline file (.yaml, .yml or .json)')
      .description('run a pipeline of tasks, each step fed the output of the steps it needs'),
  )
    .option('--check', 'validate the file and print the steps, run nothing')
    .action((file: string, flags: GlobalFlags & { check?: boolean }) => {
      // The file is checked before any connection: --check needs no server, and a typo costs no round trip.
      let pipeline: Pipeline;
      try {
        pipeline = loadPipeline(file, flags.json);
      } catch (err) {
        printError(err, Boolean(flags.json));
        process.exit(1);
      }
      if (flags.check) {
        if (flags.json) printJson(pipeline);
        else
          process.stdout.write(
            `${table(
              ['STEP', 'NEEDS', 'KIND', 'NODE'],
              pipeline.steps.map((s) => [s.id, s.needs.join(',') || '-', s.task.kind, s.node ?? '(scheduler)']),
            )}\n`,
          );
        return;
      }
      return withClient(flags, async (client) => {
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
      });
    });
}
