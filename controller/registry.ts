/**
 * The node registry: every node's last NodeStatus, when the controller last heard from it (its
 * own clock), whether the controller considers it down (and since when, and why), whether it was
 * drained with `cutter nodes drain`, and the memory reservations held for tasks placed there.
 *
 * A reservation lives from placement until the node's heartbeat lists the task (its memory is
 * then counted from the heartbeat) or the task's attempt ends — live capacity is always a little
 * stale, and two tasks must not be sent to the same last free gigabytes.
 *
 * Besides, every attempt placed on a node counts as in flight there until it ends (placement →
 * release, whatever the heartbeats say), with the Ollama model it serves: the snapshot hands the
 * scheduler the ones the last heartbeat does not list and the per-model counts, so a burst of
 * requests between two heartbeats is spread by what is really in flight.
 */
import type { NodeStatus, NodeView, WakeInfo } from '../shared/schemas/index.js';
import { compareIds } from '../shared/topics.js';
import { canonicalModel } from '../shared/ollama.js';
import type { ClusterSnapshot, ModelWork, NodeSnapshot } from './scheduler/snapshot.js';

/** What an attempt in flight on a node does, as far as placement cares. */
export interface ActiveWork {
  /** The Ollama model it serves (ollama tasks only). */
  model?: string;
  /** It may pull the model first (op `pull`, or `pull: true`). */
  pulls?: boolean;
  /** UUIDs of the GPUs handed to it (held until it ends). */
  gpus?: string[];
}

interface Entry {
  status: NodeStatus;
  lastSeenMs: number;
  /** Set while the controller considers the node down: since when (ms epoch) and why. */
  down: { since: number; reason: string } | null;
  /** taskId → bytes */
  reservations: Map<string, number>;
  /** taskId → what it does: attempts placed here and not ended (placement → release). */
  active: Map<string, ActiveWork>;
  /** The node's lost-after window from its last status that carried an offer (a last will does not), ms. */
  lostAfterMs: number;
  /** The node as the scheduler last saw it; dropped on any change, rebuilt on the next snapshot. */
  snap?: NodeSnapshot;
  /** The last status that announced capacity: kept while the node is offline (a last will has none), for Wake-on-LAN. */
  announced?: NodeStatus;
  /** The last MAC and broadcast address the node announced, kept while it is offline (controller/wake.ts). */
  wake?: WakeInfo;
}

/** An offline node that could be woken: its last announced status (capacity, offer) and how to wake it. */
export interface Sleeper {
  node: string;
  wake: WakeInfo;
  announced: NodeStatus;
  /** Drained with `cutter nodes drain`. */
  drained: boolean;
}

/** Bytes held by a node's reservations. */
function reservedBytes(e: Entry): number {
  let sum = 0;
  for (const m of e.reservations.values()) sum += m;
  return sum;
}

/** The entry's in-flight attempts as the snapshot carries them (NodeSnapshot `unlisted`, `models`). */
function inFlightOf(e: Entry): Pick<NodeSnapshot, 'unlisted' | 'models'> {
  if (e.active.size === 0) return {};
  const listed = new Set(e.status.running.map((t) => t.taskId));
  let unlisted = 0;
  const models: Record<string, ModelWork> = {};
  for (const [taskId, w] of e.active) {
    if (!listed.has(taskId)) unlisted++;
    if (w.model === undefined) continue;
    const m = (models[canonicalModel(w.model)] ??= { count: 0, pulling: 0 });
    m.count++;
    if (w.pulls) m.pulling++;
  }
  return { unlisted, models };
}

/** The NodeSnapshot `gpusHeld` of an entry: GPUs of every attempt in flight there. */
function gpusHeldOf(e: Entry): Pick<NodeSnapshot, 'gpusHeld'> {
  const held: string[] = [];
  for (const w of e.active.values()) if (w.gpus) held.push(...w.gpus);
  return held.length > 0 ? { gpusHeld: held } : {};
}

/** What an incoming status changed. */
export interface StatusChange {
  /** The node was unknown before. */
  isNew: boolean;
  /** The node was down and is up again. */
  cameBack: boolean;
  /** The node says it is offline now (clean stop or last will) and was not down before. */
  wentDown: boolean;
}

/** How far behind the scheduler's copy of a node's lastSeenMs may fall before it is rebuilt, ms. */
const HEARD_REFRESH_MS = 50;

export class NodeRegistry {
  private readonly nodes = new Map<string, Entry>();

  constructor(private readonly drained: Set<string> = new Set()) {}

  /** Records a status (MQTT keeps one publisher's messages on a topic in order, so the newest wins). */
  update(status: NodeStatus, now: number): StatusChange {
    let entry = this.nodes.get(status.node);
    const isNew = !entry;
    if (!entry) {
      entry = {
        status,
        lastSeenMs: now,
        down: null,
        reservations: new Map(),
        active: new Map(),
        lostAfterMs: status.offer?.lostAfterMs ?? 0,
      };
      this.nodes.set(status.node, entry);
    }
    const wasDown = !isNew && entry.down !== null;
    entry.snap = undefined;
    entry.status = status;
    entry.lastSeenMs = now;
    if (status.offer) entry.lostAfterMs = status.offer.lostAfterMs;
    // A clean stop's `offline` still carries capacity (a last will does not): after a server restart
    // the retained one is all there is to go by.
    if (status.capacity && status.offer) entry.announced = status;
    if (status.wake) entry.wake = status.wake;
    for (const t of status.running) entry.reservations.delete(t.taskId);
    if (status.state === 'offline') {
      const wentDown = !wasDown;
      entry.down ??= { since: now, reason: status.reason ?? 'offline' };
      return { isNew, cameBack: false, wentDown };
    }
    entry.down = null;
    return { isNew, cameBack: wasDown, wentDown: false };
  }

  /**
   * Marks a node down (heartbeats stopped) if it is not already.
   * @returns true when this changed it.
   */
  markDown(node: string, reason: string, now: number): boolean {
    const entry = this.nodes.get(node);
    if (!entry || entry.down) return false;
    entry.snap = undefined;
    entry.down = { since: now, reason };
    return true;
  }

  /**
   * Notes that word from a node the controller considers up (a status or a task event) has
   * arrived, at `now` (ms epoch), before it waits its turn in the controller's queue: silence is
   * judged by when the node spoke, not by when a busy controller got to it (a backlog must not
   * make live nodes look dead).
   */
  heard(node: string, now: number): void {
    const e = this.nodes.get(node);
    if (e && !e.down && now > e.lastSeenMs) {
      e.lastSeenMs = now;
      // The scheduler's picture of the node carries lastSeenMs too (stale-heartbeat check): rebuilt
      // when it is behind by more than a fraction of any heartbeat interval, not on every message.
      if (e.snap && now - e.snap.lastSeenMs > HEARD_REFRESH_MS) e.snap = undefined;
    }
  }

  /** Nodes the controller considers up whose last word is older than `silentFor(status)` ms. */
  silentNodes(now: number, silentFor: (s: NodeStatus) => number): { node: string; silentMs: number }[] {
    const out: { node: string; silentMs: number }[] = [];
    for (const [node, e] of this.nodes) {
      const silentMs = now - e.lastSeenMs;
      if (!e.down && silentMs > silentFor(e.status)) out.push({ node, silentMs });
    }
    return out;
  }

  /** The node's lost-after window, ms (0 for a node never heard from). */
  lostAfterMs(node: string): number {
    return this.nodes.get(node)?.lostAfterMs ?? 0;
  }

  isDown(node: string): boolean {
    const e = this.nodes.get(node);
    return !e || e.down !== null;
  }

  setDrained(node: string, drained: boolean): void {
    if (drained) this.drained.add(node);
    else this.drained.delete(node);
    const entry = this.nodes.get(node);
    if (entry) entry.snap = undefined;
  }

  /**
   * Holds `memory` bytes on `node` for `taskId` until its heartbeat lists the task or release(),
   * and counts the task in flight there until release().
   */
  reserve(node: string, taskId: string, memory: number): void {
    const entry = this.nodes.get(node);
    if (!entry) return;
    entry.reservations.set(taskId, memory);
    if (!entry.active.has(taskId)) entry.active.set(taskId, {});
    entry.snap = undefined;
  }

  /** Says what a task in flight on `node` (reserved, not yet released) does; ignored for any other task. */
  describe(node: string, taskId: string, work: ActiveWork): void {
    const entry = this.nodes.get(node);
    if (!entry?.active.has(taskId)) return;
    entry.active.set(taskId, work);
    entry.snap = undefined;
  }

  /** Holds `gpus` (UUIDs) on `node` for a task in flight there (reserved, not yet released) until release(). */
  holdGpus(node: string, taskId: string, gpus: string[]): void {
    const entry = this.nodes.get(node);
    const work = entry?.active.get(taskId);
    if (!entry || !work) return;
    entry.active.set(taskId, { ...work, gpus });
    entry.snap = undefined;
  }

  /** Drops a task's reservation and its place in flight (attempt ended or lost). */
  release(node: string, taskId: string): void {
    const entry = this.nodes.get(node);
    if (!entry) return;
    const reserved = entry.reservations.delete(taskId);
    if (entry.active.delete(taskId) || reserved) entry.snap = undefined;
  }

  /** Drops a node entirely (`cutter nodes forget`). @returns whether it was known. */
  remove(node: string): boolean {
    this.drained.delete(node);
    return this.nodes.delete(node);
  }

  get(node: string): NodeStatus | undefined {
    return this.nodes.get(node)?.status;
  }

  /** The last MAC and broadcast address `node` announced (kept while it is offline), or undefined. */
  wakeOf(node: string): WakeInfo | undefined {
    return this.nodes.get(node)?.wake;
  }

  /** Nodes the controller considers down that announced a MAC and capacity before (Wake-on-LAN candidates), by id. */
  sleepers(): Sleeper[] {
    const out: Sleeper[] = [];
    for (const [node, e] of this.nodes)
      if (e.down && e.wake && e.announced) out.push({ node, wake: e.wake, announced: e.announced, drained: this.drained.has(node) });
    return out.sort((a, b) => compareIds(a.node, b.node));
  }

  /** Freezes the registry for the scheduler. A node that is down is passed as offline. */
  snapshot(now: number, policy: ClusterSnapshot['policy']): ClusterSnapshot {
    // A node's entry is rebuilt only after it changed (a heartbeat, a reservation, a drain): with
    // 1,000 nodes, building every one for every placement was most of the scheduler's garbage.
    // Entries are replaced, never changed, so an earlier snapshot stays as it was.
    const nodes: NodeSnapshot[] = [];
    for (const [node, e] of this.nodes) {
      if (!e.snap) {
        const status =
          e.down && e.status.state !== 'offline' ? { ...e.status, state: 'offline' as const, reason: e.down.reason } : e.status;
        e.snap = {
          node,
          status,
          lastSeenMs: e.lastSeenMs,
          reservedMemory: reservedBytes(e),
          reservedTasks: e.reservations.size,
          drained: this.drained.has(node),
          ...inFlightOf(e),
          ...gpusHeldOf(e),
        };
      }
      nodes.push(e.snap);
    }
    return { now, nodes, policy };
  }

  /** Nodes for `cutter nodes list`, sorted by id. */
  views(now: number): NodeView[] {
    return [...this.nodes.entries()]
      .sort(([a], [b]) => compareIds(a, b))
      .map(([node, e]) => {
        const reservedMemory = reservedBytes(e);
        const drained = this.drained.has(node);
        const state = e.down ? 'offline' : drained || e.status.state === 'draining' ? 'draining' : 'online';
        return {
          node,
          state,
          drained,
          offlineReason: e.down?.reason ?? null,
          lastSeenAgoMs: Math.max(0, now - e.lastSeenMs),
          reservedMemory,
          status: e.status,
          ...(e.wake ? { wake: e.wake } : {}),
        };
      });
  }
}
