/**
 * Unknown keys in a document checked against a zod schema: zod's objects drop keys they do not
 * know, so a misspelled field (`comand:`) silently fell back to its default. `unknownKeys` walks
 * the document beside the schema and reports each key the schema has no place for, with its path
 * (`steps[2].task.comand`) and the nearest valid key by edit distance (`did you mean "command"?`).
 * Records (`env`, `labels`, `request`) take any key; a discriminated union is followed by its
 * discriminator (`kind`).
 */
import type { z } from 'zod';
import { isJsonObject } from './codec.js';

/** One unknown key: where it is and what was probably meant. */
export interface UnknownKey {
  /** `steps[2].task.comand` */
  path: string;
  key: string;
  /** The nearest valid key at that place, when one is close enough (edit distance ≤ 1/3 of its length, at least 2). */
  suggestion?: string;
  /** Every key valid at that place. */
  valid: string[];
}

/** Levenshtein distance (insert, delete, substitute cost 1), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] === t[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[t.length];
}

/** The valid key nearest to `key`, or undefined when none is close (distance ≤ max(2, ⌊len/3⌋)). */
export function nearestKey(key: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const v of valid) {
    const d = editDistance(key, v);
    if (d < bestD) [best, bestD] = [v, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

type Def = { type: string; [k: string]: unknown };
const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } })?._zod?.def;

/** Strips wrappers that do not change the shape of the value (optional, default, transform pipes…). */
function unwrap(schema: unknown): Def | undefined {
  let def = defOf(schema);
  for (let i = 0; def && i < 20; i++) {
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) def = defOf(def.innerType);
    else if (def.type === 'pipe') def = defOf(def.in);
    else if (def.type === 'lazy') def = defOf((def.getter as () => unknown)());
    else return def;
  }
  return def;
}

/**
 * Every key of `value` that `schema` has no place for.
 * @param path the path of `value` itself ('' for the document).
 * @param extra keys also accepted at a path (aliases the caller maps before validating), by path pattern
 *   with `[]` for any index: `{ 'steps[].task': ['command'] }`.
 */
export function unknownKeys(schema: z.ZodType, value: unknown, path = '', extra: Record<string, string[]> = {}): UnknownKey[] {
  const out: UnknownKey[] = [];
  const walk = (s: unknown, v: unknown, p: string, pattern: string) => {
    const def = unwrap(s);
    if (!def) return;
    if (def.type === 'object' && isJsonObject(v)) {
      const shape = (def.shape ?? {}) as Record<string, unknown>;
      const valid = [...Object.keys(shape), ...(extra[pattern] ?? [])];
      for (const [k, child] of Object.entries(v)) {
        const cp = p ? `${p}.${k}` : k;
        const cpat = pattern ? `${pattern}.${k}` : k;
        if (k in shape) walk(shape[k], child, cp, cpat);
        else if (!valid.includes(k)) out.push({ path: cp, key: k, suggestion: nearestKey(k, valid), valid });
      }
    } else if (def.type === 'array' && Array.isArray(v)) {
      for (const [i, item] of v.entries()) walk(def.element, item, `${p}[${i}]`, `${pattern}[]`);
    } else if ((def.type === 'union' || def.type === 'intersection') && isJsonObject(v)) {
      const options = (def.options ?? [def.left, def.right]) as unknown[];
      const disc = def.discriminator as string | undefined;
      const objects = options.map((o) => [o, unwrap(o)] as const).filter(([, d]) => d?.type === 'object');
      if (disc) {
        const match = objects.find(([, d]) => {
          const lit = unwrap((d!.shape as Record<string, unknown>)[disc]);
          return (lit?.values as unknown[] | undefined)?.includes(v[disc]);
        });
        if (match) walk(match[0], v, p, pattern);
      } else if (objects.length === 1) walk(objects[0][0], v, p, pattern);
    }
  };
  walk(schema, value, path, path);
  return out;
}

/** `steps[2].task.comand: unknown key "comand" (did you mean "command"?)` */
export function describeUnknownKey(u: UnknownKey): string {
  const hint = u.suggestion ? `did you mean "${u.suggestion}"?` : `valid keys here: ${u.valid.join(', ')}`;
  return `${u.path}: unknown key "${u.key}" (${hint})`;
}
