/** What a node's status says about its storage (shared/schemas/node.ts `volumes`, `hostPaths`), for placement. */
import type { AgentConfig } from '../../shared/config.js';
import type { NodeStatus } from '../../shared/schemas/index.js';
import { volumesOf } from './config.js';

/** `volumes` (names, when volumes are on) and `hostPaths` (when the policy lists any); fields absent otherwise. */
export function storageFields(config: AgentConfig): Pick<NodeStatus, 'volumes' | 'hostPaths'> {
  const store = volumesOf(config);
  return {
    ...(store ? { volumes: store.names() } : {}),
    ...(config.allowHostPath.length ? { hostPaths: config.allowHostPath.slice(0, 32).map((p) => p.slice(0, 4096)) } : {}),
  };
}
