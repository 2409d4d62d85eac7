/**
 * Feasibility checks, after Nomad's `scheduler/feasible.go`: each check either passes or rejects
 * the node with a reason as data (shared/reasons.ts puts it into words). Pure functions of a NodeSnapshot.
 */
import type { Rejection } from '../../shared/schemas/index.js';
import { nodeFitReason } from './node-fit.js';
import { STALE_AFTER_HEARTBEATS, type NodeSnapshot, type PlacementRequest } from './snapshot.js';
import { gpuRejection } from './gpus.js';
import { describeLending } from '../../shared/lending.js';

/** Bytes committed to the tasks the node's heartbeat lists as running. */
function committedMemory(n: NodeSnapshot): number {
  return n.status.running.reduce((sum, t) => sum + t.memory, 0);
}

/** Bytes the node can still commit to tasks: the lesser of live MemAvailable and its offer, minus what is held. */
export function freeMemory(n: NodeSnapshot): number {
  const cap = n.status.capacity;
  if (!cap) return 0;
  const committed = committedMemory(n);
  const offered = n.status.offer?.maxMemory ?? cap.memory.total;
  const byOffer = offered - committed - n.reservedMemory;
  const byLive = cap.memory.available - n.reservedMemory;
  return Math.max(0, Math.min(byOffer, byLive));
}

/**
 * Tasks running or placed on the node: what its heartbeat lists plus what the controller placed
 * there since that the heartbeat does not list (reservations, and attempts not yet ended by the
 * controller's own records, whichever is more).
 */
export function tasksHeld(n: NodeSnapshot): number {
  return n.status.running.length + Math.max(n.reservedTasks, n.unlisted ?? 0);
}

/** A rejection without its node (place() adds it). */
export type NodeRejection = Omit<Rejection, 'node'>;

/** Returns null when the node can take the task now, else why not (a code and its numbers, see shared/schemas/rejection.ts). */
export function rejectReason(n: NodeSnapshot, req: PlacementRequest, now: number): NodeRejection | null {
  const s = n.status;
  if (s.state === 'offline') return { code: 'offline', ...(s.reason ? { detail: s.reason } : {}) };
  if (s.state === 'draining') return { code: 'draining' };
  if (n.drained) return { code: 'drained' };
  const silentFor = now - n.lastSeenMs;
  if (silentFor > s.heartbeatMs * STALE_AFTER_HEARTBEATS) return { code: 'stale-heartbeat', silentMs: Math.round(silentFor) };
  if (!s.capacity || !s.offer) return { code: 'unannounced' };
  // Issue 17: a node whose lending policy closes it (owner back, on battery, outside its windows) takes nothing new.
  if (s.lending && s.lending.state !== 'lending') return { code: 'lending', detail: describeLending(s.lending) };

  if (!s.offer.executors.includes(req.kind)) {
    if (req.kind === 'docker') return { code: 'no-docker', ...(s.capacity.docker.error ? { detail: s.capacity.docker.error } : {}) };
    if (req.kind === 'ollama') return { code: 'no-ollama', ...(s.capacity.ollama?.error ? { detail: s.capacity.ollama.error } : {}) };
    return { code: 'no-exec' };
  }
  if (req.execLimits) {
    const can = s.capacity.exec?.limits;
    const missing = [req.execLimits.memory && !can?.memory ? 'memory' : '', req.execLimits.cpus && !can?.cpus ? 'CPU' : ''].filter(Boolean);
    if (missing.length > 0) {
      const why = can ? (s.capacity.exec?.why ?? 'no cgroup for them') : 'its agent does not say it can (an older agent)';
      return { code: 'exec-limits', detail: `${missing.join(' and ')} limit: ${why}` };
    }
  }
  if (req.execTty && !s.capacity.exec?.tty) {
    const why =
      s.capacity.exec?.tty === false ? 'node-pty is not installed with its agent' : 'its agent does not say it can (an older agent)';
    return { code: 'exec-tty', detail: why };
  }
  const unfit = nodeFitReason(n, req);
  if (unfit) return unfit;
  const storage = storageRejection(s, req);
  if (storage) return storage;
  const busy = tasksHeld(n);
  if (busy >= s.offer.maxTasks) return { code: 'max-tasks', running: busy, max: s.offer.maxTasks };

  const cpus = req.requirements.cpus;
  if (cpus > s.capacity.cpu.cores) return { code: 'cpus', needed: cpus, free: s.capacity.cpu.cores };

  const need = req.requirements.memory;
  const free = freeMemory(n);
  if (need > free) {
    return {
      code: 'memory',
      needed: need,
      free,
      offered: s.offer.maxMemory ?? s.capacity.memory.total,
      available: s.capacity.memory.available,
      held: committedMemory(n) + n.reservedMemory,
    };
  }
  const gpus = gpuRejection(n, req);
  if (gpus) return gpus;
  return null;
}

/**
 * `volume` when the task mounts a volume the node does not announce (NodeStatus `volumes`) or a
 * host path outside every directory of its `hostPaths` policy; null otherwise.
 */
export function storageRejection(s: NodeSnapshot['status'], req: PlacementRequest): NodeRejection | null {
  if (req.volumes?.length) {
    if (!s.volumes)
      return { code: 'volume', detail: `no volumes announced (volumes off, or an older agent); the task needs ${req.volumes.join(', ')}` };
    const missing = req.volumes.filter((v) => !s.volumes!.includes(v));
    if (missing.length) return { code: 'volume', detail: `no volume ${missing.join(', ')}: cutter volume create NODE:${missing[0]}` };
  }
  const within = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  const refused = (req.hostPaths ?? []).filter((p) => !(s.hostPaths ?? []).some((d) => within(p, d)));
  if (refused.length)
    return { code: 'volume', detail: `its policy does not allow host path ${refused.join(', ')} (agent --allow-host-path)` };
  return null;
}
