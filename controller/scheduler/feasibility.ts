/**
 * Feasibility checks, after Nomad's `scheduler/feasible.go`: each check either passes or rejects
 * the node with a reason a person can act on. Pure functions of a NodeSnapshot.
 */
import { formatBytes, formatDuration } from '../../shared/units.js';
import { STALE_AFTER_HEARTBEATS, type NodeSnapshot, type PlacementRequest } from './snapshot.js';

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

/** Returns null when the node can take the task now, else why not. */
export function rejectReason(n: NodeSnapshot, req: PlacementRequest, now: number): string | null {
  const s = n.status;
  if (s.state === 'offline') return `offline${s.reason ? ` (${s.reason})` : ''}`;
  if (s.state === 'draining') return 'draining: takes no new tasks';
  if (n.drained) return 'drained (cutter nodes resume to undo)';
  const silentFor = now - n.lastSeenMs;
  if (silentFor > s.heartbeatMs * STALE_AFTER_HEARTBEATS) return `stale: no heartbeat for ${formatDuration(silentFor)}`;
  if (!s.capacity || !s.offer) return 'has not announced its capacity yet';

  if (!s.offer.executors.includes(req.kind)) {
    if (req.kind === 'docker') return `no Docker engine${s.capacity.docker.error ? ` (${s.capacity.docker.error})` : ''}`;
    if (req.kind === 'ollama') return `no Ollama server${s.capacity.ollama?.error ? ` (${s.capacity.ollama.error})` : ''}`;
    return 'does not run exec tasks (start its agent with --allow-exec)';
  }
  const busy = s.running.length + n.reservedTasks;
  if (busy >= s.offer.maxTasks) return `busy: ${busy} of at most ${s.offer.maxTasks} tasks running`;

  const cpus = req.requirements.cpus;
  if (cpus > s.capacity.cpu.cores) return `needs ${cpus} CPUs, has ${s.capacity.cpu.cores}`;

  const need = req.requirements.memory;
  const free = freeMemory(n);
  if (need > free) {
    const offered = s.offer.maxMemory ?? s.capacity.memory.total;
    const held = committedMemory(n) + n.reservedMemory;
    return (
      `needs ${formatBytes(need)} memory, has ${formatBytes(free)} free ` +
      `(offers ${formatBytes(offered)}, ${formatBytes(s.capacity.memory.available)} available, ${formatBytes(held)} held by tasks)`
    );
  }
  return null;
}
