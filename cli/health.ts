/**
 * Node health for `cutter nodes status`, as a pure function of a node's view: `fail` makes the
 * command exit non-zero (for cron and scripts), `warn` is shown but does not.
 *
 * fail: offline (the controller counts a node whose heartbeats stopped for 2.5 intervals as
 *       offline, so a frozen node is caught too); no capacity announced.
 * warn: drained or draining; Docker engine not reachable (unless the node runs without the docker
 *       executor on purpose); Ollama not reachable while the node looks for it; under 5% memory
 *       available; agent version not the CLI's.
 */
import type { NodeView } from '../shared/schemas/index.js';

export type HealthLevel = 'ok' | 'warn' | 'fail';

export interface NodeHealth {
  level: HealthLevel;
  /** One short phrase per problem, worst first. */
  problems: string[];
}

/** Memory available below this fraction of the total is a warning. */
const LOW_MEMORY_FRACTION = 0.05;

/** Judges one node. `cliVersion` is compared with the agent's version. */
export function nodeHealth(view: NodeView, cliVersion: string): NodeHealth {
  const fail: string[] = [];
  const warn: string[] = [];
  const s = view.status;
  if (view.state === 'offline') fail.push(`offline${view.offlineReason ? ` (${view.offlineReason})` : ''}`);
  if (view.state !== 'offline' && !s.capacity) fail.push('has not announced its capacity');
  if (view.drained) warn.push('drained');
  else if (view.state === 'draining') warn.push('draining');
  const cap = s.capacity;
  if (cap && view.state !== 'offline') {
    if (!cap.docker.available && !/disabled/.test(cap.docker.error ?? '')) warn.push(`docker: ${cap.docker.error ?? 'not reachable'}`);
    if (cap.ollama && !cap.ollama.available && cap.ollama.error) warn.push(`ollama: ${cap.ollama.error}`);
    if (cap.memory.total > 0 && cap.memory.available / cap.memory.total < LOW_MEMORY_FRACTION) warn.push('under 5% memory available');
  }
  if (s.version !== cliVersion && view.state !== 'offline') warn.push(`agent ${s.version}, cli ${cliVersion}`);
  return { level: fail.length ? 'fail' : warn.length ? 'warn' : 'ok', problems: [...fail, ...warn] };
}
