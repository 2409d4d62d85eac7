/**
 * Parses Prometheus text exposition format with the Prometheus project's own Python client
 * (`prometheus_client.parser.text_string_to_metric_families`, Debian's python3-prometheus-client;
 * .ci/run installs it). The npm parser (parse-prometheus-text-format 1.1.1) drops the labels, sum
 * and count of labelled histograms, so it cannot check cutter's histograms.
 */
import { spawnSync } from 'node:child_process';
import { pythonWithPrometheusParser } from './services.js';

export interface PromFamily {
  name: string;
  /** counter, gauge, histogram, … */
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** The python3 on the PATH that has the parser (test/services.ts; tests skip through `needs('prometheusParser')`). */
const PYTHON = pythonWithPrometheusParser() ?? 'python3';
const SCRIPT = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]})
print(json.dumps(out))
`;

/** @throws Error with the parser's message when the text is not valid exposition format. */
export function parsePrometheus(text: string): PromFamily[] {
  const r = spawnSync(PYTHON, ['-c', SCRIPT], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`prometheus_client could not parse the metrics: ${r.stderr}`);
  return JSON.parse(r.stdout) as PromFamily[];
}
