/**
 * The operations files shipped in docs/ (issue 19): the Grafana dashboard
 * (docs/grafana/cutter-dashboard.json, importable: a Prometheus datasource input, the panels an
 * operator looks for) and the Prometheus alert rules (docs/prometheus/cutter-alerts.yml: node down,
 * queue growing, tasks failing, broker clients dropping). Every PromQL expression in both names
 * only metrics that a real server's /metrics exports; with promtool on the PATH the rules pass
 * `promtool check rules` too.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EMBEDDED_BROKER_ONLY, ON_MOSQUITTO, ROOT, freePort, startServer, type Daemon } from '../harness.js';
import { exportedNames, promqlMetricNames } from '../promql-names.js';
import { needs } from '../services.js';

type Panel = { id: number; title: string; type: string; datasource?: { uid: string }; targets?: { expr: string }[] };
type Rule = { alert: string; expr: string; for: string; annotations: { summary: string; description: string } };

const DASHBOARD = join(ROOT, 'docs/grafana/cutter-dashboard.json');
const RULES = join(ROOT, 'docs/prometheus/cutter-alerts.yml');
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  __inputs: { name: string; pluginId: string }[];
  panels: Panel[];
  uid: string;
};
const rules = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const expressions = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
  ...rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
];

describe('the PromQL tokenizer', () => {
  it('keeps metric names and drops functions, labels, ranges, keywords, numbers and variables', () => {
    expect(
      promqlMetricNames(
        'sum by (le, kind) (rate(cutter_task_run_seconds_bucket{kind="ollama",state=~"a|b"}[$__rate_interval])) / clamp_min(x_total offset 5m, 1e-9) > 0.25 and on(node) up_2 == bool 3',
      ),
    ).toEqual(['cutter_task_run_seconds_bucket', 'x_total', 'up_2']);
    expect(promqlMetricNames('count(cutter_node_up == 0) or vector(0)')).toEqual(['cutter_node_up']);
  });
});

describe('Grafana dashboard and Prometheus alert rules', () => {
  let server: Daemon;
  let exposition = '';

  beforeAll(async () => {
    const port = await freePort();
    ({ daemon: server } = await startServer(['--http-port', String(port)]));
    exposition = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the dashboard imports into Grafana and shows what an operator looks for', () => {
    expect(dashboard.uid).toBe('cutter-mesh');
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' })]);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) expect(p.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
    const titles = dashboard.panels.map((p) => p.title);
    for (const want of [
      'Nodes online',
      'Memory offered vs host, per node',
      'Queue depth',
      'Task outcomes per second',
      'Ollama requests per second',
      'Ollama latency',
      'Broker clients',
    ])
      expect(titles).toContain(want);
  });

  it('the rules alert on node down, queue growing, tasks failing and broker clients dropping, each saying what to do', () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['CutterNodeDown', 'CutterQueueGrowing', 'CutterTasksFailing', 'CutterBrokerClientsDropping']),
    );
    for (const r of rules) {
      expect(r.for, r.alert).toMatch(/^\d+m$/);
      expect(r.annotations.description, r.alert).toMatch(/cutter|node|server/);
    }
  });

  // On Mosquitto the broker's own metrics (clients, messages) are Mosquitto's, not on cutter's /metrics:
  // the shipped dashboard and rules describe the embedded broker.
  it.skipIf(ON_MOSQUITTO)(
    `every expression names only metrics that /metrics exports${ON_MOSQUITTO ? ` [${EMBEDDED_BROKER_ONLY}]` : ''}`,
    () => {
      const exported = exportedNames(exposition);
      expect(exported.has('cutter_queue_length')).toBe(true);
      const used = new Set<string>();
      const unknown: string[] = [];
      for (const { where, expr } of expressions) {
        const names = promqlMetricNames(expr);
        expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
        for (const n of names) {
          used.add(n);
          if (!exported.has(n)) unknown.push(`${where}: ${n}`);
        }
      }
      expect(unknown).toEqual([]);
      // The metrics the issue names are all charted or alerted on.
      for (const n of [
        'cutter_node_up',
        'cutter_node_memory_offered_bytes',
        'cutter_node_memory_total_bytes',
        'cutter_queue_length',
        'cutter_task_run_seconds_count',
        'cutter_broker_clients',
      ])
        expect(used.has(n), n).toBe(true);
    },
  );

  const promtool = needs('promtool');
  it.skipIf(promtool.skip)(`promtool accepts the rules${promtool.tag}`, () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 5 rules found/);
  });
});
