/**
 * The node's announced capacity (NodeStatus `capacity`, shared/schemas/node.ts): what the host
 * has (agent/probe.ts) plus what each executor's fingerprint adds (docker its engine, ollama its
 * server's models). The wire format is fixed by the schema; this only assembles it.
 */
import type { Capacity, Gpu } from '../shared/schemas/index.js';
import type { Fingerprint } from './executors/executor.js';
import type { HostCapacity } from './probe.js';

/**
 * `capacity.docker` when no executor reports an engine: the schema requires the field (agents
 * before executors announced their own part always sent it), so a node without a working docker
 * executor says it has none.
 */
export const NO_DOCKER: Capacity['docker'] = { available: false, error: 'no docker executor on this node' };

/**
 * Merges the host's capacity with the executors' parts, in order (a later part of the same key
 * wins; each kind owns its own key, so none collide in practice). Fingerprints without a
 * capacity part (exec, or one that failed) add nothing.
 * @param host cores, load (%), memory (bytes)
 * @param gpus as last probed (memory in bytes)
 */
export function mergeCapacity(host: HostCapacity, gpus: Gpu[], fingerprints: Fingerprint[]): Capacity {
  const parts = Object.assign({}, ...fingerprints.map((f) => f.capacity ?? {}));
  return {
    cpu: { cores: host.cores, loadPercent: host.loadPercent },
    memory: { total: host.memoryTotal, available: host.memoryAvailable },
    gpus,
    docker: NO_DOCKER,
    ...parts,
  };
}
