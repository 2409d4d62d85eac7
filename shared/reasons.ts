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
    volume: () => withDetail('lacks what the task mounts', r.detail),
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
    'max-tasks': 'tasks',
    cpus: 'cpu',
    memory: 'memory',
    'model-missing': 'model',
    'model-too-big': 'model',
    'placement-rule': 'model',
    volume: 'volume',
  };
  return labels[code];
}
