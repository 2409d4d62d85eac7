/**
 * Heartbeat and announcement: what the node tells the mesh about itself. It probes the host
 * (agent/probe.ts) and fingerprints the executors (agent/executors/registry.ts), builds the
 * retained NodeStatus on `cutter/v1/nodes/{node}/status` (shared/schemas/node.ts), its last will,
 * and publishes it every `heartbeatMs` and whenever a task comes or goes.
 *
 * The heartbeat timer is independent of task work: a beat publishes with the last probed capacity
 * and only then refreshes the probes in the background (one refresh at a time), so a slow Docker
 * engine, a hung fingerprint or a loaded machine never delays it; otherwise the controller would
 * take a busy node for a dead one.
 */
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { encode } from '../shared/codec.js';
import type { AgentConfig } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import type { Gpu, NodeState, NodeStatus } from '../shared/schemas/index.js';
import { type Topics, topics } from '../shared/topics.js';
import { VERSION } from '../shared/version.js';
import { WakeInfoCache } from '../shared/wol.js';
import { storageFields } from './volumes/announce.js';
import { mergeCapacity } from './capacity.js';
import type { ExecutorRegistry } from './executors/registry.js';
import { PlacementFacts } from './placement-facts.js';
import type { GpuInventory } from './gpus.js';
import { type HostCapacity, probeGpus, probeHost } from './probe.js';

/**
 * Status changes within this window go out as one status, ms: a node running 8 short tasks would
 * otherwise publish a full retained status for every start and end, each parsed by the controller
 * and every watcher. Short beside a heartbeat, so placement still sees a freed slot at once.
 */
export const ANNOUNCE_COALESCE_MS = 20;

/** How often GPUs are probed again (nvidia-smi is slow; its free memory counts other programs too), ms. */
const GPU_PROBE_MS = 30_000;

/** What the heartbeat needs from the rest of the agent. */
export interface HeartbeatDeps {
  config: AgentConfig;
  /** Random id of this agent process, in every status. */
  runId: string;
  log: Logger;
  executors: ExecutorRegistry;
  /** The attempts running here now, as NodeStatus lists them (memory in bytes). */
  running: () => NodeStatus['running'];
  /** Attempts that ended here whose final event the controller has not acknowledged yet (agent/task-events.ts). */
  finished?: () => NonNullable<NodeStatus['finished']>;
  /**
   * The node's NVIDIA GPUs from nvidia-smi (agent/gpus.ts), refreshed in the background; when it
   * finds some they are announced instead of systeminformation's list. Absent: systeminformation only.
   */
  nvidia?: GpuInventory;
  /** The lending state (agent/lending/lender.ts); undefined while no lending policy is in force. */
  lending?: () => NodeStatus['lending'];
}

/** Builds and publishes the node's status; see the file comment. */
export class Heartbeat {
  private readonly t: Topics;
  private client?: MqttClient;
  private timer?: NodeJS.Timeout;
  private seq = 0;
  private gpus: Gpu[] = [];
  /** When GPUs were last probed, ms epoch: their free memory moves with every program using them. */
  private gpusProbedAt = 0;
  /** The last host probe (refreshed after each beat). */
  private host?: HostCapacity;
  private probing = false;
  /** `draining` once the agent is shutting down: no new placements. */
  private state: Exclude<NodeState, 'offline'> = 'online';
  /** `offline` published (or about to be): no other status goes out. */
  private closed = false;
  /** The coalesced announcement waiting to go out (see ANNOUNCE_COALESCE_MS). */
  private announceTimer?: NodeJS.Timeout;
  /** Stops the executors' watches (a dead Docker engine is announced at once, not at the next probe). */
  private unwatch?: () => void;
  /** Platform, policy, machine id and free disk, for placement (./placement-facts.ts). */
  private readonly placement: PlacementFacts;
  /** The `wake` field, listed from the interfaces once a minute or when the socket's local address changes. */
  private readonly wakeInfo = new WakeInfoCache();

  constructor(private readonly deps: HeartbeatDeps) {
    this.t = topics(deps.config.prefix);
    this.placement = new PlacementFacts(deps.config, (msg) => deps.log.warn(msg));
  }

  /** The status topic of this node. */
  get topic(): string {
    return this.t.nodeStatus(this.deps.config.nodeId);
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The retained last will, fixed at connect time: the broker publishes it when the link drops
   * without a DISCONNECT. It says only that the node is offline (no capacity, offer or running).
   */
  lastWill(): NodeStatus {
    const c = this.deps.config;
    return {
      v: 1,
      node: c.nodeId,
      state: 'offline',
      version: VERSION,
      seq: 0,
      ts: Date.now(),
      heartbeatMs: c.heartbeatMs,
      running: [],
      reason: 'connection lost',
      runId: this.deps.runId,
    };
  }

  /** The first probe, before connecting: GPUs and every executor's fingerprint. Never throws. */
  async probeAll(): Promise<void> {
    const nvidia = this.deps.nvidia;
    // systeminformation runs nvidia-smi too: only asked when nvidia-smi itself found nothing.
    const gpus = async () => ((await nvidia?.refresh())?.gpus.length ? [] : probeGpus());
    [this.gpus] = await Promise.all([gpus(), this.deps.executors.refresh()]);
    this.gpusProbedAt = Date.now();
    await this.placement.refresh();
  }

  /** Gives the client statuses go out on (before it connects). */
  attach(client: MqttClient): void {
    this.client = client;
  }

  /** Publishes once, then every `config.heartbeatMs`. Does nothing once closed. */
  async start(): Promise<void> {
    if (this.closed) return;
    this.unwatch ??= this.deps.executors.watch(() => this.announce());
    await this.beat();
    if (this.closed) return;
    this.timer = setInterval(() => void this.beat(), this.deps.config.heartbeatMs);
  }

  /**
   * One heartbeat: publishes the status with the last probed capacity, touches the health file,
   * then refreshes the probes in the background. Never throws (failures are logged).
   */
  async beat(): Promise<void> {
    if (this.closed) return;
    try {
      await this.publishNow();
      // For container healthchecks: the file's mtime is the last heartbeat the broker took.
      const file = this.deps.config.healthFile;
      if (file)
        await writeFile(file, `${Date.now()}\n`).catch((err: unknown) => this.deps.log.warn({ err }, 'cannot write the health file'));
    } catch (err) {
      this.deps.log.warn({ err }, 'heartbeat failed');
    }
    void this.refresh();
  }

  /**
   * Publishes the status soon (a task came or went: within ANNOUNCE_COALESCE_MS, one status for
   * every change in that window) with the last probed capacity; the probes are left to the beat,
   * so starting a task costs no systeminformation or Ollama round trip.
   */
  announce(): void {
    if (this.closed || this.announceTimer) return;
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined;
      if (this.closed) return;
      this.publishNow().catch((err) => this.deps.log.warn({ err }, 'status update failed'));
    }, ANNOUNCE_COALESCE_MS);
  }

  /** From now on the node says `draining` (no new placements); `publishNow()` tells the mesh at once. */
  drain(): void {
    this.state = 'draining';
  }

  /**
   * Publishes the status now (`online` or `draining`) with the last probed capacity.
   * @throws the client's error when the broker does not take it.
   */
  publishNow(): Promise<void> {
    return this.publish(this.state);
  }

  /** Stops the timer; after this only `offline()` publishes. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    this.unwatch?.();
  }

  /** Publishes the retained `offline` status with `reason` (the agent is leaving). Call after `close()`. */
  offline(reason: string): Promise<void> {
    return this.publish('offline', reason);
  }

  /** Re-probes the host, the executors and (every GPU_PROBE_MS) the GPUs, one refresh at a time. */
  private async refresh(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      this.deps.nvidia?.refreshIfDue();
      const regpu = Date.now() - this.gpusProbedAt > GPU_PROBE_MS && this.gpus.length > 0 && !this.deps.nvidia?.current.gpus.length;
      const [host, , gpus] = await Promise.all([probeHost(), this.deps.executors.refresh(), regpu ? probeGpus() : undefined]);
      this.host = host;
      await this.placement.refresh();
      if (gpus) {
        this.gpus = gpus;
        this.gpusProbedAt = Date.now();
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'capacity probe failed');
    } finally {
      this.probing = false;
    }
  }

  /**
   * Publishes the status (QoS 1, retained).
   * @throws the client's error when the broker does not take it.
   */
  private async publish(state: NodeState, reason?: string): Promise<void> {
    const host = (this.host ??= await probeHost());
    // A beat that was probing while the agent went offline must not overwrite the retained `offline`.
    if (this.closed && state !== 'offline') return;
    const { config, executors } = this.deps;
    const status: NodeStatus = {
      v: 1,
      node: config.nodeId,
      state,
      version: VERSION,
      seq: ++this.seq,
      ts: Date.now(),
      heartbeatMs: config.heartbeatMs,
      hostname: hostname(),
      runId: this.deps.runId,
      capacity: { ...mergeCapacity(host, this.announcedGpus(), executors.fingerprints()), ...this.nvidiaField() },
      offer: {
        maxMemory: config.maxMemory === undefined ? null : Math.min(config.maxMemory, host.memoryTotal),
        maxTasks: config.maxTasks,
        executors: executors.offered(),
        labels: config.labels,
        lostAfterMs: config.lostAfterMs,
      },
      running: this.deps.running(),
      ...this.wakeField(),
      ...(reason ? { reason } : {}),
      ...finishedField(this.deps.finished?.() ?? []),
      ...storageFields(config),
      ...lendingField(this.deps.lending?.()),
    };
    this.placement.addTo(status);
    await this.client!.publishAsync(this.topic, encode(status), { qos: 1, retain: true });
  }

  /** The GPUs to announce: nvidia-smi's when it found some (with UUIDs: assignable), else systeminformation's. */
  private announcedGpus(): Gpu[] {
    const nvidia = this.deps.nvidia?.current.gpus;
    return nvidia?.length ? nvidia : this.gpus;
  }

  /** `capacity.nvidia`: how the NVIDIA probe went (absent without an inventory). */
  private nvidiaField(): Pick<NonNullable<NodeStatus['capacity']>, 'nvidia'> {
    const p = this.deps.nvidia?.current;
    return p ? { nvidia: { state: p.state, ...(p.error ? { error: p.error.slice(0, 500) } : {}) } } : {};
  }

  /**
   * The `wake` field (Wake-on-LAN, shared/wol.ts): the MAC and broadcast address of the interface
   * the MQTT socket leaves from; absent when unknown (no non-internal IPv4 interface).
   */
  private wakeField(): Pick<NodeStatus, 'wake'> {
    const local = (this.client?.stream as { localAddress?: string } | undefined)?.localAddress;
    const wake = this.wakeInfo.get(local);
    return wake ? { wake } : {};
  }
}

/** The `lending` field of a status: absent without a lending policy (older controllers see the status as before). */
function lendingField(lending: NodeStatus['lending']): Pick<NodeStatus, 'lending'> {
  return lending ? { lending } : {};
}

/** The `finished` field of a status: absent when empty (older controllers and tests see the status as before). */
function finishedField(list: NonNullable<NodeStatus['finished']>): Pick<NodeStatus, 'finished'> {
  return list.length > 0 ? { finished: list } : {};
}
