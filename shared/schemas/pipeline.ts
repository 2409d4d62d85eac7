/**
 * Pipelines (`cutter pipeline FILE`, YAML or JSON): steps that are each a task with their own
 * placement, run in order of their `needs` (a small DAG). A step starts when every step it needs
 * has succeeded, and is skipped when one of them did not. A step sees what the steps it needs
 * printed on stdout (for an ollama step: the generated text):
 * - in any string of its `task` as `${{ steps.ID.output }}` (trailing whitespace trimmed);
 * - for docker and exec tasks, as environment variables `CUTTER_OUTPUT_<ID>` (upper-cased, other
 *   characters as `_`) and `CUTTER_INPUT` (the outputs of its needs, in `needs` order, concatenated).
 * Each step runs as a task `p<run>.<step id>`, so `cutter tasks` shows its state.
 */
import { z } from 'zod';
import { DurationSchema, SizeSchema } from '../config.js';
import { IdSchema } from '../topics.js';
import { TaskSpecSchema } from './task.js';

export const StepIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'step ids are 1-32 characters of A-Z a-z 0-9 _ -');

export const PipelineStepSchema = z.object({
  id: StepIdSchema,
  /** Steps that must succeed first. */
  needs: z.array(StepIdSchema).max(100).default([]),
  /** Run on this node (else the scheduler chooses). */
  node: IdSchema.optional(),
  /** Memory to reserve for placement (`8g`, or bytes). */
  memory: SizeSchema.optional(),
  cpus: z.number().nonnegative().max(1024).optional(),
  /** Bound on waiting and running (`30s`, `2h`). */
  timeout: DurationSchema.optional(),
  /** What to run: a TaskSpec (`kind: docker | exec | ollama`). */
  task: TaskSpecSchema,
});
export type PipelineStep = z.infer<typeof PipelineStepSchema>;

export const PipelineSchema = z
  .object({
    name: z.string().max(200).optional(),
    steps: z.array(PipelineStepSchema).min(1).max(100),
  })
  .superRefine((p, ctx) => {
    const ids = new Set<string>();
    p.steps.forEach((s, i) => {
      if (ids.has(s.id)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'id'], message: `step id "${s.id}" is used twice` });
      ids.add(s.id);
    });
    for (const [i, s] of p.steps.entries()) {
      for (const [j, n] of s.needs.entries()) {
        if (!ids.has(n))
          ctx.addIssue({ code: 'custom', path: ['steps', i, 'needs', j], message: `step "${s.id}" needs "${n}", which is not a step` });
        if (n === s.id) ctx.addIssue({ code: 'custom', path: ['steps', i, 'needs', j], message: `step "${s.id}" needs itself` });
      }
    }
    const cycle = findCycle(p.steps);
    if (cycle) ctx.addIssue({ code: 'custom', path: ['steps'], message: `steps depend on each other in a cycle: ${cycle.join(' → ')}` });
  });
export type Pipeline = z.infer<typeof PipelineSchema>;

/** A cycle among the steps' `needs` (as a list of ids, first repeated at the end), or null. */
export function findCycle(steps: { id: string; needs: string[] }[]): string[] | null {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | null => {
    if (state.get(id) === 'done') return null;
    if (state.get(id) === 'visiting') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'visiting');
    path.push(id);
    for (const n of byId.get(id)?.needs ?? []) {
      const c = visit(n);
      if (c) return c;
    }
    path.pop();
    state.set(id, 'done');
    return null;
  };
  for (const s of steps) {
    const c = visit(s.id);
    if (c) return c;
  }
  return null;
}
