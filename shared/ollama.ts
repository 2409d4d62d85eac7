/**
 * Ollama naming and the placement file for models.
 *
 * Model names are `name:tag` with the tag `latest` when left out (Ollama docs/api.md
 * "Conventions": "The tag is optional and, if not provided, will default to `latest`"), so
 * `llama3` and `llama3:latest` are one model.
 *
 * The placement file (`cutter server --ollama-placement FILE`, YAML or JSON) pins models to nodes:
 * ```yaml
 * rules:
 *   - model: "gemma2:2b"     # glob on the model name (* and ?); tag defaults to latest
 *     nodes: [server]        # only these nodes may serve it
 *   - minSize: 12g           # models of 12 GiB and more (size as the mesh's /api/tags reports it)
 *     nodes: [notebook, gpu-box]
 * ```
 * The first rule that matches a model applies; a model no rule matches may go to any node. The
 * server reads the file with controller/ollama-placement-file.ts (the agent, which imports this
 * file, never loads the YAML parser).
 */
import { z } from 'zod';
import { SizeSchema } from './config.js';
import { globToRegExp } from './glob.js';
import { IdSchema } from './topics.js';

/** `llama3` → `llama3:latest`; names with a tag (`llama3:70b`, `hf.co/x/y:Q4_K_M`) are kept. */
export function canonicalModel(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return last.includes(':') ? name : `${name}:latest`;
}

/** True when two names are the same model (`llama3` = `llama3:latest`). */
export function sameModel(a: string, b: string): boolean {
  return canonicalModel(a) === canonicalModel(b);
}

/** One rule of the placement file; sizes in bytes (given as `12g` or a number). */
export const PlacementRuleSchema = z
  .object({
    /** Glob on the model name (`*` any run of characters, `?` one); a name without a tag means `:latest`. */
    model: z.string().min(1).max(256).optional(),
    /** Applies to models at least this large, bytes. */
    minSize: SizeSchema.optional(),
    /** Applies to models at most this large, bytes. */
    maxSize: SizeSchema.optional(),
    /** The nodes that may serve matching models. */
    nodes: z.array(IdSchema).min(1).max(1_000),
  })
  .strict()
  .refine((r) => r.model !== undefined || r.minSize !== undefined || r.maxSize !== undefined, 'a rule needs model, minSize or maxSize');

export const PlacementFileSchema = z.object({ rules: z.array(PlacementRuleSchema).max(1_000).default([]) }).strict();

export type PlacementRule = z.infer<typeof PlacementRuleSchema>;
export type PlacementFile = z.infer<typeof PlacementFileSchema>;

/** True when `rule` covers `model` of `size` bytes (null = size unknown: size conditions do not match). */
export function ruleMatches(rule: PlacementRule, model: string, size: number | null): boolean {
  if (rule.model !== undefined) {
    const glob = rule.model.includes('*') || rule.model.includes('?') ? rule.model : canonicalModel(rule.model);
    const re = globToRegExp(glob, { anyChar: true });
    if (!re.test(canonicalModel(model)) && !re.test(model)) return false;
  }
  if (rule.minSize !== undefined && (size === null || size < rule.minSize)) return false;
  if (rule.maxSize !== undefined && (size === null || size > rule.maxSize)) return false;
  return true;
}

/**
 * Response header on every answer of cutter's Ollama-compatible API (its value: the server's
 * version). An agent whose `--ollama-url` leads to it (the default 127.0.0.1:11434 on the server's
 * own machine) would take the mesh for its node's Ollama and send requests back into the mesh;
 * the header lets it tell the two apart.
 */
export const MESH_API_HEADER = 'x-cutter-mesh';
