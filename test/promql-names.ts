/**
 * The metric names a PromQL expression reads, by a small tokenizer (enough for the expressions
 * cutter ships in docs/grafana and docs/prometheus; not a PromQL parser): strings, label matchers
 * `{…}`, ranges `[…]`, Grafana variables (`$__rate_interval`, `${x}`), the label lists of
 * `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`, numbers, keywords and function calls
 * (an identifier followed by `(`) are dropped; every identifier left is a metric name.
 * Grammar: https://prometheus.io/docs/prometheus/latest/querying/basics/
 */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
]);

/** @returns the metric names in `expr`, each once, in order of appearance. */
export function promqlMetricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/(^|[^\w:])\d+(\.\d+)?([eE][+-]?\d+)?[smhdwy]?(?![\w:])/g, '$1 ');
  const names: string[] = [];
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const rest = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    if (!names.includes(m[0])) names.push(m[0]);
  }
  return names;
}

/** The metric names a Prometheus text exposition declares (`# TYPE`), histograms with `_bucket`, `_sum` and `_count`. */
export function exportedNames(exposition: string): Set<string> {
  const out = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    out.add(m[1]);
    if (m[2] === 'histogram' || m[2] === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) out.add(m[1] + suffix);
  }
  return out;
}
