/**
 * The fuzz test's fixed names and sizes, and a JSON tree that can hold what JSON.stringify cannot
 * write (raw number tokens, duplicate and `__proto__` keys), with paths into it (test/integration/fuzz.test.ts).
 */
import { topics } from '../../shared/topics.js';

export const t = topics('cutter');
export const AGENT = 'fuzz-target';
export const TASK = 'fuzztask0001';
export const CLIENT = 'fuzzer';

/** Batches of generated payloads per topic: BATCHES × BATCH_SIZE = 10,000 on each (issue 14). */
export const BATCHES = 100;
export const BATCH_SIZE = 100;
export const HUGE_PER_TOPIC = 2;
export const MIB = 1024 * 1024;
export const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

// ---- a JSON tree that can hold what JSON.stringify cannot write ----------------------------------

/** Raw JSON text inserted as is (odd number tokens, deep nesting, broken literals). */
export class Raw {
  constructor(readonly text: string) {}
}
/** An object as an ordered list of entries: allows `__proto__` as an own key and duplicate keys. */
export class Obj {
  constructor(readonly entries: (readonly [string, J])[]) {}
}
export type J = null | boolean | number | string | Raw | Obj | J[];
export type Path = number[];

/** A plain JSON value as a tree (objects become Obj). */
export function toJ(v: unknown): J {
  if (Array.isArray(v)) return v.map(toJ);
  if (v !== null && typeof v === 'object') return new Obj(Object.entries(v).map(([k, x]) => [k, toJ(x)] as const));
  return v as J;
}

/** The tree as JSON text (Raw written as is, Obj entries in order, duplicates kept). */
export function ser(v: J): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${ser(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(ser).join(',')}]`;
  return JSON.stringify(v) ?? 'null';
}

/** The direct children of a container (object values or array items); [] for a leaf. */
export function children(v: J): J[] {
  if (v instanceof Obj) return v.entries.map(([, x]) => x);
  return Array.isArray(v) ? v : [];
}

/** Every path in the tree, the root's ([]) first, depth first. */
export function allPaths(v: J, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  for (const [i, x] of children(v).entries()) allPaths(x, [...at, i], out);
  return out;
}

/** The node at `path`. */
export function getAt(v: J, path: Path): J {
  return path.reduce<J>((node, i) => children(node)[i], v);
}

export const isContainer = (v: J): boolean => v instanceof Obj || Array.isArray(v);
export const leafPaths = (v: J): Path[] => allPaths(v).filter((p) => !isContainer(getAt(v, p)));

/** A copy of the tree with the node at `path` replaced by `fn(old)`. */
export function replaceAt(v: J, path: Path, fn: (old: J) => J): J {
  if (path.length === 0) return fn(v);
  const [i, ...rest] = path;
  if (v instanceof Obj) return new Obj(v.entries.map(([k, x], j) => [k, j === i ? replaceAt(x, rest, fn) : x] as const));
  if (Array.isArray(v)) return v.map((x, j) => (j === i ? replaceAt(x, rest, fn) : x));
  return v;
}

/** Applies `fn` to every object, innermost first. */
export function mapObjects(v: J, fn: (o: Obj) => Obj): J {
  if (v instanceof Obj) return fn(new Obj(v.entries.map(([k, x]) => [k, mapObjects(x, fn)] as const)));
  if (Array.isArray(v)) return v.map((x) => mapObjects(x, fn));
  return v;
}
