/**
 * Human-readable output for the CLI (tables, errors) and the `--json` alternative.
 */
import { CutterError, errorMessage } from '../shared/errors.js';
import { formatRejection } from '../shared/reasons.js';
import type { Rejection } from '../shared/schemas/index.js';

/** Renders rows as a left-aligned table with a header, two spaces between columns. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Prints JSON on stdout (one document). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Reports an error: `error: message` plus one indented line per rejected node on stderr, or with
 * `--json` `{"error": {"code", "message", "rejections"?}}` on stdout.
 */
export function printError(err: unknown, json: boolean): void {
  if (isZodError(err)) err = new CutterError('INVALID_ARGUMENT', zodText(err));
  const code = err instanceof CutterError ? err.code : 'INTERNAL';
  const rejections = err instanceof CutterError && Array.isArray(err.details) ? (err.details as Rejection[]) : undefined;
  if (json) {
    printJson({ error: { code, message: errorMessage(err), ...(rejections ? { rejections } : {}) } });
    return;
  }
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  for (const r of rejections ?? []) process.stderr.write(`  ${r.node}: ${formatRejection(r)}\n`);
}

/** A zod validation error (its message is a JSON dump of every issue: not for people). */
function isZodError(err: unknown): err is { issues: { path: PropertyKey[]; message: string }[] } {
  return err instanceof Error && err.name === 'ZodError' && Array.isArray((err as { issues?: unknown }).issues);
}

/** The first issue of a zod error as `path: message`. */
function zodText(err: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const i = err.issues[0];
  const path = i?.path.map(String).join('.') ?? '';
  return `${path ? `${path}: ` : ''}${i?.message ?? 'invalid value'}`;
}

/** "3.2 s ago"-style age from ms. */
export function ago(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms ago`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ago`;
  return `${Math.floor(ms / 3_600_000)}h ago`;
}
