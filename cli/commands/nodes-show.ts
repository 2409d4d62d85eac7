/**
 * `cutter nodes show NODE [--json]`: one node in detail — state, memory, CPU, executors, labels,
 * running tasks, and its GPUs (index, UUID, model, free/total VRAM, use, temperature, the task
 * holding it) as the agent announced them (agent/gpus.ts). Also the short GPU cell of `nodes list`.
 */
import type { Command } from 'commander';
import { CutterError } from '../../shared/errors.js';
import { NodeListResultSchema, type NodeView } from '../../shared/schemas/index.js';
import { formatBytes } from '../../shared/units.js';
import { describeLending } from '../../shared/lending.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';

/**
 * The GPUs in the NOTE cell of `nodes list`: `` (none), `GPUs: 2 × NVIDIA RTX 4090`, or `GPUs: 3`
 * of mixed models; `, 1 held` when tasks hold some.
 */
export function gpuSummary(n: NodeView): string {
  const gpus = n.status.capacity?.gpus ?? [];
  if (gpus.length === 0) return '';
  const models = new Set(gpus.map((g) => g.model));
  const what = `GPUs: ${models.size === 1 ? `${gpus.length} × ${gpus[0].model}` : gpus.length}`;
  const held = new Set(n.status.running.flatMap((t) => t.gpus ?? [])).size;
  return held ? `${what}, ${held} held` : what;
}

const orDash = (v: number | null | undefined, fmt: (v: number) => string) => (v === null || v === undefined ? '-' : fmt(v));

/** The GPU table of one node: which task holds each GPU comes from the node's running list. */
export function gpuTable(n: NodeView): string {
  const holder = new Map<string, string>();
  for (const t of n.status.running) for (const g of t.gpus ?? []) holder.set(g, t.taskId);
  const rows = (n.status.capacity?.gpus ?? []).map((g) => [
    orDash(g.index, String),
    g.uuid ?? '-',
    g.model.startsWith(g.vendor) ? g.model : `${g.vendor} ${g.model}`,
    `${orDash(g.memoryFree, formatBytes)} / ${orDash(g.memoryTotal, formatBytes)}`,
    orDash(g.utilizationPercent, (v) => `${v}%`),
    orDash(g.temperatureC, (v) => `${v}°C`),
    (g.uuid && holder.get(g.uuid)) || '',
  ]);
  return table(['INDEX', 'UUID', 'MODEL', 'VRAM FREE/TOTAL', 'USE', 'TEMP', 'TASK'], rows);
}

/** The text of `nodes show`. */
function describe(n: NodeView): string {
  const s = n.status;
  const cap = s.capacity;
  const lines = [
    `node:       ${n.node}${s.hostname ? ` (${s.hostname})` : ''}`,
    `state:      ${n.state}${n.offlineReason ? ` (${n.offlineReason})` : n.drained ? ' (drained)' : ''}`,
    `agent:      ${s.version}, heartbeat ${ago(n.lastSeenAgoMs)}`,
    `memory:     ${cap ? `${formatBytes(cap.memory.available)} available of ${formatBytes(cap.memory.total)}` : '-'}`,
    `cpu:        ${cap ? `${cap.cpu.cores} cores, ${cap.cpu.loadPercent.toFixed(0)}% load` : '-'}`,
    `executors:  ${s.offer?.executors.join(', ') || '-'}`,
    `labels:     ${
      Object.entries(s.offer?.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '-'
    }`,
    `tasks:      ${s.running.length}${s.offer ? ` of at most ${s.offer.maxTasks}` : ''}${s.running.length ? `: ${s.running.map((t) => t.taskId).join(', ')}` : ''}`,
  ];
  if (s.lending) lines.push(`lending:    ${describeLending(s.lending)} (cutter nodes policy ${n.node})`);
  if (cap?.docker.gpuError) lines.push(`docker gpu: ${cap.docker.gpuError}`);
  const gpus = cap?.gpus ?? [];
  if (gpus.length === 0) lines.push(`gpus:       none${cap?.nvidia?.error ? ` (${cap.nvidia.error})` : ''}`);
  else lines.push(`gpus:       ${gpus.length}${gpus[0].driverVersion ? ` (driver ${gpus[0].driverVersion})` : ''}`, gpuTable(n));
  return `${lines.join('\n')}\n`;
}

/** Adds `show` to the `nodes` command. */
export function registerNodesShow(nodes: Command): void {
  withClientOptions(
    nodes.command('show').argument('<node>', 'node id').description('one node in detail: capacity, executors, labels, tasks, GPUs'),
  ).action((node: string, flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes: list } = await client.request({ op: 'node.list' }, NodeListResultSchema);
      const n = list.find((v) => v.node === node);
      if (!n)
        throw new CutterError(
          'NOT_FOUND',
          `no node ${node}${list.length ? ` (known: ${list.map((v) => v.node).join(', ')})` : ': no nodes have joined'}`,
        );
      if (flags.json) printJson(n);
      else process.stdout.write(describe(n));
      return 0;
    }),
  );
}
