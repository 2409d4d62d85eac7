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
import { headroomIndex, headroomOrder } from './scheduler/headroom.js';
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
  node: string;
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
  /**
   * The last snapshot's arrays: every node in insertion order (`at`: node → index there) and in
   * headroom order. Replaced, never changed, when entries change; null after a node came or went.
   */
  private view: { nodes: NodeSnapshot[]; ranked: NodeSnapshot[]; at: Map<string, number> } | null = null;
  /** Entries changed since the last snapshot (their `snap` is dropped). */
  private readonly stale = new Set<Entry>();

  constructor(private readonly drained: Set<string> = new Set()) {}

  /** Records a status (MQTT keeps one publisher's messages on a topic in order, so the newest wins). */
  update(status: NodeStatus, now: number): StatusChange {
    let entry = this.nodes.get(status.node);
    const isNew = !entry;
    if (!entry) {
      entry = {
        node: status.node,
        status,
        lastSeenMs: now,
        down: null,
        reservations: new Map(),
        active: new Map(),
        lostAfterMs: status.offer?.lostAfterMs ?? 0,
      };
      this.nodes.set(status.node, entry);
      this.view = null;
    }
    const wasDown = !isNew && entry.down !== null;
    this.invalidate(entry);
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
    this.invalidate(entry);
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
      if (e.snap && now - e.snap.lastSeenMs > HEARD_REFRESH_MS) this.invalidate(e);
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
    if (entry) this.invalidate(entry);
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
    this.invalidate(entry);
  }

  /** Says what a task in flight on `node` (reserved, not yet released) does; ignored for any other task. */
  describe(node: string, taskId: string, work: ActiveWork): void {
    const entry = this.nodes.get(node);
    if (!entry?.active.has(taskId)) return;
    entry.active.set(taskId, work);
    this.invalidate(entry);
  }

  /** Holds `gpus` (UUIDs) on `node` for a task in flight there (reserved, not yet released) until release(). */
  holdGpus(node: string, taskId: string, gpus: string[]): void {
    const entry = this.nodes.get(node);
    const work = entry?.active.get(taskId);
    if (!entry || !work) return;
    entry.active.set(taskId, { ...work, gpus });
    this.invalidate(entry);
  }

  /** Drops a task's reservation and its place in flight (attempt ended or lost). */
  release(node: string, taskId: string): void {
    const entry = this.nodes.get(node);
    if (!entry) return;
    const reserved = entry.reservations.delete(taskId);
    if (entry.active.delete(taskId) || reserved) this.invalidate(entry);
  }

  /** Drops a node entirely (`cutter nodes forget`). @returns whether it was known. */
  remove(node: string): boolean {
    this.drained.delete(node);
    const entry = this.nodes.get(node);
    if (!entry) return false;
    this.stale.delete(entry);
    this.view = null;
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

  /** Drops the scheduler's picture of a node: rebuilt, and moved in headroom order, at the next snapshot. */
  private invalidate(e: Entry): void {
    e.snap = undefined;
    this.stale.add(e);
  }

  /** The node as the scheduler sees it, rebuilt if it changed. A node that is down is passed as offline. */
  private snapOf(e: Entry): NodeSnapshot {
    if (e.snap) return e.snap;
    const status = e.down && e.status.state !== 'offline' ? { ...e.status, state: 'offline' as const, reason: e.down.reason } : e.status;
    e.snap = {
      node: e.node,
      status,
      lastSeenMs: e.lastSeenMs,
      reservedMemory: reservedBytes(e),
      reservedTasks: e.reservations.size,
      drained: this.drained.has(e.node),
      ...inFlightOf(e),
      ...gpusHeldOf(e),
    };
    return e.snap;
  }

  /**
   * Freezes the registry for the scheduler: every node, and the same nodes in headroom order
   * (scheduler/headroom.ts). O(changed nodes × log nodes) plus two array copies: with 1,000
   * nodes, building every node's picture for every placement was most of the scheduler's garbage,
   * and sorting them all each time would cost more than the scan it saves. The arrays of an
   * earlier snapshot are never changed, so it stays as it was.
   */
  snapshot(now: number, policy: ClusterSnapshot['policy']): ClusterSnapshot {
    if (!this.view) {
      const nodes: NodeSnapshot[] = [];
      const at = new Map<string, number>();
      for (const e of this.nodes.values()) {
        at.set(e.node, nodes.length);
        nodes.push(this.snapOf(e));
      }
      this.view = { nodes, ranked: headroomOrder(nodes), at };
    } else if (this.stale.size > 0) {
      const { at } = this.view;
      const nodes = this.view.nodes.slice();
      const ranked = this.view.ranked.slice();
      for (const e of this.stale) {
        const i = at.get(e.node)!;
        const old = nodes[i];
        const fresh = this.snapOf(e);
        nodes[i] = fresh;
        let j = headroomIndex(ranked, old);
        if (ranked[j] !== old) j = ranked.indexOf(old);
        ranked.splice(j, 1);
        ranked.splice(headroomIndex(ranked, fresh), 0, fresh);
      }
      this.view = { nodes, ranked, at };
    }
    this.stale.clear();
    return { now, nodes: this.view.nodes, ranked: this.view.ranked, policy };
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
