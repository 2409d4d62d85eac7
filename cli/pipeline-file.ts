/**
 * Reading a pipeline file strictly (shared/schemas/pipeline.ts is the shape): an unknown or
 * misspelled key is an error naming its path and the nearest valid key, instead of being dropped
 * (a `comand:` used to run the image's default command).
 *
 * The command of a docker or exec step is `task.command` (the name `cutter run`'s help and the MCP
 * `run_task` tool use); the wire names `cmd` (docker) and `argv` (exec) are still accepted, with a
 * deprecation note.
 */
import { CutterError } from '../shared/errors.js';
import { type Pipeline, PipelineSchema } from '../shared/schemas/index.js';
import { describeUnknownKey, nearestKey, unknownKeys } from '../shared/strict-keys.js';
import { DockerSpecSchema, ExecSpecSchema } from '../shared/schemas/task.js';
import { isJsonObject } from '../shared/codec.js';

/** Keys of a docker or exec task, for a step key that belongs inside `task`. */
const TASK_KEYS = [...new Set(['command', ...Object.keys(DockerSpecSchema.shape), ...Object.keys(ExecSpecSchema.shape)])].filter(
  (k) => k !== 'cmd' && k !== 'argv',
);

/** A validated pipeline and the notes for the user (deprecated names used). */
export interface PipelineRead {
  pipeline: Pipeline;
  notes: string[];
}

/** zod's path `['steps', 2, 'task']` as `steps[2].task`. */
export function pathText(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '');
}

/**
 * Moves each docker/exec step's `command` to the wire name (`cmd` / `argv`) and notes the old names.
 * @returns the notes, and for each step the wire name that `command` became (to name errors by `command`).
 * @throws CutterError INVALID_ARGUMENT when a step gives `command` and its old name both, or an ollama step gives `command`.
 */
function mapCommandNames(raw: unknown, where: string): { notes: string[]; renamed: Map<number, string> } {
  const notes: string[] = [];
  const renamed = new Map<number, string>();
  if (!isJsonObject(raw) || !Array.isArray(raw.steps)) return { notes, renamed };
  raw.steps.forEach((step: unknown, i) => {
    if (!isJsonObject(step) || !isJsonObject(step.task)) return;
    const task = step.task;
    const wire = task.kind === 'exec' ? 'argv' : task.kind === 'docker' ? 'cmd' : undefined;
    const at = `steps[${i}].task`;
    if (wire === undefined) {
      if ('command' in task)
        throw new CutterError(
          'INVALID_ARGUMENT',
          `${where}: ${at}.command: a ${String(task.kind)} step has no command (it takes op, model and request)`,
        );
      return;
    }
    if ('command' in task) {
      if (wire in task) throw new CutterError('INVALID_ARGUMENT', `${where}: ${at}: give "command" or its old name "${wire}", not both`);
      task[wire] = task.command;
      delete task.command;
      renamed.set(i, wire);
    } else if (wire in task) notes.push(`${at}.${wire}: "${wire}" is the old name of "command"; it still works, but write "command"`);
  });
  return { notes, renamed };
}

/**
 * Validates a parsed pipeline document.
 * @param raw the JSON or YAML document (modified: command names are mapped).
 * @param where how messages name the document (`pipeline build.yaml`).
 * @throws CutterError INVALID_ARGUMENT `<where>: steps[2].task.comand: unknown key "comand" (did you mean "command"?)`,
 *   or the first schema problem with its path.
 */
export function parsePipeline(raw: unknown, where: string): PipelineRead {
  const { notes, renamed } = mapCommandNames(raw, where);
  const unknown = unknownKeys(PipelineSchema, raw, '', { 'steps[].task': ['command'] });
  for (const u of unknown) {
    // A task key written on the step (`comand:` beside `id:`): point inside `task`.
    const near = /^steps\[\d+\]\.[^.]+$/.test(u.path) && !u.suggestion ? nearestKey(u.key, TASK_KEYS) : undefined;
    if (near) u.suggestion = `task.${near}`;
  }
  if (unknown.length > 0) {
    const more =
      unknown.length > 1
        ? ` (and ${unknown.length - 1} more: ${unknown
            .slice(1, 4)
            .map((u) => u.path)
            .join(', ')})`
        : '';
    throw new CutterError('INVALID_ARGUMENT', `${where}: ${describeUnknownKey(unknown[0])}${more}`);
  }
  const parsed = PipelineSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = [...issue.path];
    // A command given as `command` is named so in the error, not by its wire name.
    if (path[0] === 'steps' && typeof path[1] === 'number' && path[2] === 'task' && path[3] === renamed.get(path[1])) path[3] = 'command';
    throw new CutterError('INVALID_ARGUMENT', `${where}: ${pathText(path) || '(root)'}: ${issue.message}`);
  }
  return { pipeline: parsed.data, notes };
}
