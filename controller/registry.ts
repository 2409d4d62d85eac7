/**
 * The node registry: every node's last retained NodeStatus, when the controller last heard from
 * it (its own clock), and the memory reservations it holds for tasks placed there.
 *
 * A reservation lives from placement until the node's heartbeat lists the task as running (its
 * memory is then counted from the heartbeat) or the task ends — live capacity is always a little
 * stale, and two tasks must not be sent to the same last free gigabytes.
 */
import type { NodeStatus, NodeView } from '../shared/schemas/index.js';
import { compareIds } from '../shared/topics.js';
import { STALE_AFTER_HEARTBEATS, type ClusterSnapshot, type NodeSnapshot } from './scheduler/snapshot.js';

interface Entry {
  status: NodeStatus;
  lastSeenMs: number;
  /** taskId → bytes */
  reservations: Map<string, number>;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, Entry>();

  /**
   * Records a status (MQTT keeps one publisher's messages on a topic in order, so the newest wins).
   * @returns the node's previous state, or null when it was unknown.
   */
  update(status: NodeStatus, now: number): NodeStatus['state'] | null {
    const entry = this.nodes.get(status.node);
    if (!entry) {
      this.nodes.set(status.node, { status, lastSeenMs: now, reservations: new Map() });
      return null;
    }
    const previous = entry.status.state;
    entry.status = status;
    entry.lastSeenMs = now;
    for (const t of status.running) entry.reservations.delete(t.taskId);
    return previous;
  }

  /** Holds `memory` bytes on `node` for `taskId` until its heartbeat lists the task or release(). */
  reserve(node: string, taskId: string, memory: number): void {
    this.nodes.get(node)?.reservations.set(taskId, memory);
  }

  /** Drops a task's reservation (task ended, failed, lost). */
  release(node: string, taskId: string): void {
    this.nodes.get(node)?.reservations.delete(taskId);
  }

  get(node: string): NodeStatus | undefined {
    return this.nodes.get(node)?.status;
  }

  /** Freezes the registry for the scheduler. */
  snapshot(now: number, policy: ClusterSnapshot['policy']): ClusterSnapshot {
    const nodes: NodeSnapshot[] = [];
    for (const [node, e] of this.nodes) {
      let reservedMemory = 0;
      for (const m of e.reservations.values()) reservedMemory += m;
      nodes.push({ node, status: e.status, lastSeenMs: e.lastSeenMs, reservedMemory, reservedTasks: e.reservations.size });
    }
    return { now, nodes, policy };
  }

  /** Nodes for `cutter nodes list`, sorted by id; `stale` when online but silent too long. */
  views(now: number): NodeView[] {
    return [...this.nodes.entries()]
      .sort(([a], [b]) => compareIds(a, b))
      .map(([node, e]) => {
        const silent = now - e.lastSeenMs;
        const stale = e.status.state !== 'offline' && silent > e.status.heartbeatMs * STALE_AFTER_HEARTBEATS;
        let reservedMemory = 0;
        for (const m of e.reservations.values()) reservedMemory += m;
        return { node, state: stale ? 'stale' : e.status.state, lastSeenAgoMs: Math.max(0, silent), reservedMemory, status: e.status };
      });
  }
}
