/**
 * The one place a scheduler rejection (shared/schemas/rejection.ts) becomes words. Called only
 * where a reason is shown: CLI output, a queued task's waiting reason, the Ollama API's error
 * text, logs. Nothing parses these words back: code that needs to know why reads `code`.
 */
import type { Rejection, RejectionCode } from './schemas/index.js';
import { formatBytes, formatDuration } from './units.js';

/** How a placement-file rule reads: `placement rule 2 (minSize 12.0 GiB → notebook)`. */
export function describeRule(rule: NonNullable<Rejection['rule']>): string {
  const what = [
    rule.model ? `model ${rule.model}` : '',
    rule.minSize !== undefined ? `minSize ${formatBytes(rule.minSize)}` : '',
    rule.maxSize !== undefined ? `maxSize ${formatBytes(rule.maxSize)}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `placement rule ${rule.index + 1} (${what} → ${rule.nodes.join(', ')})`;
}

const withDetail = (words: string, detail: string | undefined) => (detail ? `${words} (${detail})` : words);

/**
 * Why a node cannot take a task, in words a person can act on (without the node's name), e.g.
 * `needs 1.0 GiB memory, has 64.0 MiB free (offers 8.0 GiB, 3.1 GiB available, 0 B held by tasks)`.
 */
export function formatRejection(r: Rejection): string {
  const words: Record<RejectionCode, () => string> = {
    'unknown-node': () => 'unknown node',
    offline: () => withDetail('offline', r.detail),
    draining: () => 'draining: takes no new tasks',
    drained: () => 'drained (cutter nodes resume to undo)',
    'stale-heartbeat': () => `stale: no heartbeat for ${formatDuration(r.silentMs ?? 0)}`,
    unannounced: () => 'has not announced its capacity yet',
    'no-docker': () => withDetail('no Docker engine', r.detail),
    'no-ollama': () => withDetail('no Ollama server', r.detail),
    'no-exec': () => 'does not run exec tasks (start its agent with --allow-exec)',
    'exec-limits': () =>
      `${withDetail('cannot enforce the limits of exec tasks', r.detail)}: run its agent as root with cgroups mounted, or drop --memory/--cpus`,
    'exec-tty': () => `${withDetail('cannot give exec tasks a TTY', r.detail)}: drop -t, or run it on a node that can`,
    'max-tasks': () => `busy: ${r.running} of at most ${r.max} tasks running`,
    cpus: () => `needs ${r.needed} CPUs, has ${r.free}`,
    memory: () =>
      `needs ${formatBytes(r.needed ?? 0)} memory, has ${formatBytes(r.free ?? 0)} free ` +
      `(offers ${formatBytes(r.offered ?? 0)}, ${formatBytes(r.available ?? 0)} available, ${formatBytes(r.held ?? 0)} held by tasks)`,
    'model-missing': () => `does not have model ${r.model}`,
    'model-too-big': () =>
      `${r.onDisk ? 'has' : 'would pull'} model ${r.model} (${formatBytes(r.needed ?? 0)}) but has ${formatBytes(r.free ?? 0)} free memory` +
      `${r.gpuFree ? ` and ${formatBytes(r.gpuFree)} free on its GPU` : ''} to load it`,
    'placement-rule': () => `${r.rule ? describeRule(r.rule) : 'a placement rule'} sends ${r.model} elsewhere`,
    constraint: () =>
      `constraint ${r.wanted} not met: ${r.has === undefined ? 'the node has no such label' : `its label is ${r.wanted?.split(/!?=/)[0]}=${r.has}`} (cutter agent --label key=value)`,
    platform: () => withDetail(`needs platform ${r.wanted}, the node is ${r.has ?? 'of an unknown platform'}`, r.detail),
    disk: () =>
      withDetail(`needs ${formatBytes(r.needed ?? 0)} free disk${r.free === undefined ? '' : `, has ${formatBytes(r.free)}`}`, r.detail),
    policy: () => `its policy refuses the task: ${r.detail ?? 'a rule of the node'}`,
    gpus: () => formatGpuRejection(r),
    volume: () => withDetail('lacks what the task mounts', r.detail),
    lending: () => `not lending now: ${r.detail ?? 'closed by its lending policy'} (cutter nodes policy NODE to change it)`,
  };
  return words[r.code]();
}

/** Several rejections on one line: `a: reason; b: reason` (each through formatRejection). */
export function formatRejections(rs: readonly Rejection[]): string {
  return rs.map((r) => `${r.node}: ${formatRejection(r)}`).join('; ');
}

/**
 * A short, bounded label per rejection code for metrics (`memory`, `offline`, …: the
 * `cutter_rejections_total` label values), so label cardinality stays small.
 */
export function rejectionLabel(code: RejectionCode): string {
  const labels: Record<RejectionCode, string> = {
    'unknown-node': 'pinned',
    offline: 'offline',
    draining: 'draining',
    drained: 'draining',
    'stale-heartbeat': 'stale',
    unannounced: 'unannounced',
    'no-docker': 'executor',
    'no-ollama': 'model',
    'no-exec': 'executor',
    'exec-limits': 'executor',
    'exec-tty': 'executor',
    'max-tasks': 'tasks',
    cpus: 'cpu',
    memory: 'memory',
    'model-missing': 'model',
    'model-too-big': 'model',
    'placement-rule': 'model',
    constraint: 'constraint',
    platform: 'platform',
    disk: 'disk',
    policy: 'policy',
    gpus: 'gpu',
    volume: 'volume',
    lending: 'lending',
  };
  return labels[code];
}

/**
 * A `gpus` rejection in words, e.g. `needs 1 GPU with 20.0 GiB free VRAM, has 0 of 2 free (1 held
 * by tasks, most free VRAM 7.0 GiB)`, or the node's reason for having none (`detail`).
 */
function formatGpuRejection(r: Rejection): string {
  const n = r.needed ?? 0;
  const each = r.gpuMemory ? ` with ${formatBytes(r.gpuMemory)} free VRAM${n > 1 ? ' each' : ''}` : '';
  const want = `needs ${n === 0 ? 'all its GPUs' : `${n} GPU${n === 1 ? '' : 's'}`}${each}`;
  if (!r.gpuTotal) return `${want}, has no GPU cutter can assign${r.detail ? ` (${r.detail})` : ' (no NVIDIA GPU found by nvidia-smi)'}`;
  if (r.detail) return `${want}: ${r.detail}`;
  const extra = [
    r.gpusHeld ? `${r.gpusHeld} held by tasks` : '',
    r.gpuMemory && r.gpuFree !== undefined ? `most free VRAM ${formatBytes(r.gpuFree)}` : '',
  ].filter(Boolean);
  return `${want}, has ${r.free ?? 0} of ${r.gpuTotal} free${extra.length ? ` (${extra.join(', ')})` : ''}`;
}
