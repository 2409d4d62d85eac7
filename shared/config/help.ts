/**
 * Defaults for `--help`, read from the config schemas so the help text cannot drift from what the
 * commands do: `defaultText(ServerConfigSchema, 'httpPort')` → `8088`.
 */
import { homedir } from 'node:os';
import type { z } from 'zod';

/** How a default is written on the command line: sizes as `4g`, durations as `10s`, paths with `~`. */
export type DefaultFormat = 'plain' | 'size' | 'duration';

/** Bytes as the largest whole unit: 4294967296 → `4g`, 65536 → `64k`, 1000 → `1000`. */
export function sizeText(bytes: number): string {
  for (const [unit, n] of [
    ['t', 2 ** 40],
    ['g', 2 ** 30],
    ['m', 2 ** 20],
    ['k', 2 ** 10],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/** ms as the largest whole unit: 604800000 → `168h`, 300000 → `5m`, 2000 → `2s`, 0 → `0`, 1500 → `1500ms`. */
export function durationText(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, n] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * A key's default, as the help shows it.
 * @param schema one of the `*ConfigSchema` objects.
 * @returns the text, or undefined when the key has no default (optional keys).
 * @throws Error when `key` is not in the schema (a typo in a command's help).
 */
export function defaultText(schema: z.ZodObject, key: string, format: DefaultFormat = 'plain'): string | undefined {
  const field = schema.shape[key] as z.ZodType | undefined;
  if (!field) throw new Error(`no config key ${key}`);
  const parsed = field.safeParse(undefined);
  if (!parsed.success || parsed.data === undefined) return undefined;
  const value = parsed.data;
  if (format === 'size' && typeof value === 'number') return sizeText(value);
  if (format === 'duration' && typeof value === 'number') return durationText(value);
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',');
  const text = String(value);
  const home = homedir();
  return home && text.startsWith(`${home}/`) ? `~${text.slice(home.length)}` : text;
}

/**
 * A help line with the schema's default appended: `help(S, 'port', 'broker TCP port')` →
 * `broker TCP port (default 1883)`; `note` follows the default (`(default 8088; 0 = off)`).
 */
export function withDefault(schema: z.ZodObject, key: string, text: string, opts: { format?: DefaultFormat; note?: string } = {}): string {
  const d = defaultText(schema, key, opts.format);
  if (d === undefined) return opts.note ? `${text} (${opts.note})` : text;
  return `${text} (default ${d}${opts.note ? `; ${opts.note}` : ''})`;
}
