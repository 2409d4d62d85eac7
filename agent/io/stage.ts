/**
 * The staging phase of a task with inputs or outputs (shared/schemas/io.ts), between the agent's
 * `accepted` and the executor's start (agent/tasks.ts): the attempt waits for its inputs, then its
 * spec is rewritten to reach the directories — docker: a read-only bind mount per input and a
 * writable one per output (HostConfig.Mounts type `bind`); exec: `$CUTTER_INPUT_<NAME>` and
 * `$CUTTER_OUTPUT_<NAME>` (shared/schemas/io.ts `ioEnvName`).
 */
import type { TaskSpec } from '../../shared/schemas/index.js';
import { ioEnvName } from '../../shared/schemas/io.js';
import type { IoDirs, IoStore } from './store.js';

/** How long staging may see nothing from the submitter before the task fails, ms. */
export const STAGE_IDLE_MS = 120_000;
/** How long uncollected outputs stay on the node after the task ended, ms. */
export const OUTPUT_KEEP_MS = 3_600_000;

/** The number of inputs and outputs of a spec (0 and 0 for ollama and specs without them). */
export function ioCounts(spec: TaskSpec): { inputs: number; outputs: number } {
  if (spec.kind === 'ollama') return { inputs: 0, outputs: 0 };
  return { inputs: spec.inputs?.length ?? 0, outputs: spec.outputs?.length ?? 0 };
}

/** Why the node cannot give a spec its inputs and outputs (a target docker could not mount), or null. */
export function ioProblem(spec: TaskSpec): string | null {
  if (spec.kind !== 'docker') return null;
  const bad = [...(spec.inputs ?? []), ...(spec.outputs ?? [])].find((t) => !t.target.startsWith('/') || t.target.includes('\0'));
  return bad ? `input/output path ${bad.target} in the container must be absolute` : null;
}

/** The spec with the staged directories mounted (docker) or named in the environment (exec). */
export function withIoDirs(spec: TaskSpec, dirs: IoDirs): TaskSpec {
  if (spec.kind === 'docker') {
    const mounts = [
      ...(spec.mounts ?? []),
      ...(spec.inputs ?? []).map((t, k) => ({ type: 'bind' as const, source: dirs.inputs[k], target: t.target, readOnly: true })),
      ...(spec.outputs ?? []).map((t, k) => ({ type: 'bind' as const, source: dirs.outputs[k], target: t.target, readOnly: false })),
    ];
    return { ...spec, mounts };
  }
  if (spec.kind === 'exec') {
    const env = { ...spec.env };
    for (const [k, t] of (spec.inputs ?? []).entries()) env[ioEnvName('input', t.target)] = dirs.inputs[k];
    for (const [k, t] of (spec.outputs ?? []).entries()) env[ioEnvName('output', t.target)] = dirs.outputs[k];
    return { ...spec, env };
  }
  return spec;
}

/**
 * Waits for the attempt's inputs (registered with `io.expect` before its `accepted` went out).
 * @returns the rewritten spec, or null when `stopped()` became true first.
 * @throws CutterError STAGING_FAILED with the reason.
 */
export async function stageSpec(
  io: IoStore,
  taskId: string,
  attempt: number,
  spec: TaskSpec,
  stopped: () => boolean,
): Promise<TaskSpec | null> {
  const dirs = await io.wait(taskId, attempt, stopped, STAGE_IDLE_MS);
  return dirs ? withIoDirs(spec, dirs) : null;
}
