/** Markdown helpers of docs/protocol.md: inline code, links to sections, lists, tables, JSON blocks. */

/** `s` as inline code. */
export function code(s: string): string {
  return `\`${s}\``;
}

/** The in-page anchor of a `### name` heading, e.g. `#taskstate`. */
function anchor(name: string): string {
  return `#${name.toLowerCase()}`;
}

/** A link to the `### name` section of the same document. */
export function link(name: string): string {
  return `[${name}](${anchor(name)})`;
}

/** Values as inline code, comma separated. */
export function quoteList(values: readonly string[]): string {
  return values.map(code).join(', ');
}

/** A Markdown bullet list of `- `key`: what` entries. */
export function bullets(entries: [string, string][]): string {
  return entries.map(([k, what]) => `- ${code(k)}: ${what}`).join('\n');
}

/** A Markdown table: one header row, then one row per entry (cells already Markdown). */
export function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** A fenced JSON block; `indent` as for JSON.stringify (none: one line). */
export function jsonBlock(value: unknown, indent?: number): string {
  return `\`\`\`json\n${JSON.stringify(value, null, indent)}\n\`\`\``;
}

/** Examples on one line when short, as they travel; pretty printed when long. */
export function exampleBlock(value: unknown): string {
  const compact = JSON.stringify(value);
  return jsonBlock(value, compact.length <= 120 ? undefined : 2);
}
