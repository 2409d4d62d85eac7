/** Fixtures of the placement-facts tests: nodes with labels, platforms, free disk, policy and machine ids, as the wire delivers them. */
import type { NodeSnapshot } from '../../controller/scheduler/snapshot.js';
import { type NodePolicy, NodeStatusSchema, type Platform } from '../../shared/schemas/index.js';

export interface Facts {
  labels?: Record<string, string>;
  /** The agent's own platform (offer.platform). */
  platform?: Platform;
  /** The Docker engine's platform (capacity.docker.platform). */
  dockerPlatform?: Platform;
  /** Free bytes of the data dir (capacity.disk.free). */
  disk?: number;
  /** Free bytes of Docker's root dir (capacity.docker.diskFree). */
  dockerDisk?: number;
  policy?: NodePolicy;
  machineId?: string;
}

export const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
export const ARM64: Platform = { os: 'linux', architecture: 'arm64' };

/** The node with these facts added to its status, parsed again by NodeStatusSchema (so only what the wire takes is used). */
export function withFacts(n: NodeSnapshot, f: Facts): NodeSnapshot {
  const s = structuredClone(n.status);
  if (s.offer) {
    if (f.labels) s.offer.labels = f.labels;
    if (f.platform) s.offer.platform = f.platform;
    if (f.policy) s.offer.policy = f.policy;
    if (f.machineId) s.offer.machineId = f.machineId;
  }
  if (s.capacity) {
    if (f.disk !== undefined) s.capacity.disk = { free: f.disk, total: f.disk * 2 };
    if (f.dockerPlatform) s.capacity.docker.platform = f.dockerPlatform;
    if (f.dockerDisk !== undefined) s.capacity.docker.diskFree = f.dockerDisk;
  }
  return { ...n, status: NodeStatusSchema.parse(s) };
}
