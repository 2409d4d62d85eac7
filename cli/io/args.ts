/**
 * `cutter run --input LOCAL:TARGET` and `--output TARGET:LOCAL` (repeatable; shared/schemas/io.ts):
 * a local directory uploaded before the start and seen by the task at TARGET (docker: an absolute
 * container path, mounted read-only; exec: a name, its path in `$CUTTER_INPUT_<NAME>`), and a
 * directory TARGET the task writes, collected into LOCAL after the exit.
 */
import { statSync } from 'node:fs';
import { CutterError } from '../../shared/errors.js';
import { MAX_IO_DIRS } from '../../shared/schemas/io.js';
import type { TaskSpec } from '../../shared/schemas/index.js';

/** One input or output: the local directory and where the task sees it. */
export interface IoDir {
  local: string;
  target: string;
}

const bad = (flag: string, value: string, why: string) => new CutterError('INVALID_ARGUMENT', `${flag} "${value}": ${why}`);

function checkTarget(flag: string, value: string, target: string, kind: TaskSpec['kind']): string {
  if (!target) throw bad(flag, value, 'name where the task sees it, e.g. ./data:/in');
  if (kind === 'docker' && !target.startsWith('/')) throw bad(flag, value, 'the container path must be absolute, e.g. ./data:/in');
  if (target.length > 1024 || target.includes('\0')) throw bad(flag, value, 'the task path is too long');
  return target;
}

/**
 * Parses the flags and puts the targets in the spec (`inputs`, `outputs`).
 * @returns the inputs and outputs with their local directories, in spec order.
 * @throws CutterError INVALID_ARGUMENT naming the flag and what to write instead.
 */
export function applyIoFlags(spec: TaskSpec, inputs: string[], outputs: string[]): { inputs: IoDir[]; outputs: IoDir[] } {
  if (!inputs.length && !outputs.length) return { inputs: [], outputs: [] };
  if (spec.kind === 'ollama') throw new CutterError('INVALID_ARGUMENT', '--input and --output need a docker or exec task');
  if (inputs.length > MAX_IO_DIRS || outputs.length > MAX_IO_DIRS)
    throw new CutterError('INVALID_ARGUMENT', `at most ${MAX_IO_DIRS} --input and ${MAX_IO_DIRS} --output flags`);
  const ins = inputs.map((v): IoDir => {
    const colon = v.lastIndexOf(':');
    if (colon <= 0) throw bad('--input', v, 'expected LOCAL_DIR:TASK_PATH, e.g. ./dataset:/in');
    const local = v.slice(0, colon);
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(local);
    } catch {
      throw bad('--input', v, `no such local directory: ${local}`);
    }
    if (!st.isDirectory()) throw bad('--input', v, `${local} is not a directory (give the directory that holds the file)`);
    return { local, target: checkTarget('--input', v, v.slice(colon + 1), spec.kind) };
  });
  const outs = outputs.map((v): IoDir => {
    const colon = v.indexOf(':');
    if (colon <= 0 || colon === v.length - 1) throw bad('--output', v, 'expected TASK_PATH:LOCAL_DIR, e.g. /out:./results');
    return { target: checkTarget('--output', v, v.slice(0, colon), spec.kind), local: v.slice(colon + 1) };
  });
  const targets = [...ins, ...outs].map((d) => d.target);
  const twice = targets.find((t, i) => targets.indexOf(t) !== i);
  if (twice) throw new CutterError('INVALID_ARGUMENT', `${twice} is named by two --input/--output flags`);
  if (ins.length) spec.inputs = ins.map((d) => ({ target: d.target }));
  if (outs.length) spec.outputs = outs.map((d) => ({ target: d.target }));
  return { inputs: ins, outputs: outs };
}
