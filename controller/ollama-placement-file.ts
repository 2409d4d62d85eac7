/**
 * The Ollama placement file as the server reads it (`cutter server --ollama-placement FILE`); its
 * format and rules are in shared/ollama.ts. Here, not there, so that the agent (which imports
 * shared/ollama.ts for model names) does not load the YAML parser.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CutterError } from '../shared/errors.js';
import { type PlacementFile, PlacementFileSchema } from '../shared/ollama.js';

/**
 * Reads and validates a placement file (`.json` is JSON, anything else YAML, a superset of JSON).
 * @throws CutterError INVALID_CONFIG naming the file and the first problem (with its rule index).
 */
export function loadPlacementFile(path: string): PlacementFile {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CutterError('INVALID_CONFIG', `cannot read placement file ${path}: ${(err as Error).message}`);
  }
  const parsed = PlacementFileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CutterError('INVALID_CONFIG', `placement file ${path}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return parsed.data;
}
