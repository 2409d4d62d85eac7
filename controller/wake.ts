/**
 * Wake-on-LAN from the server: `cutter nodes wake NODE` (request op `node.wake`) and, opt-in
 * (`cutter server --wake-on-lan`), automatic wake of a sleeping node that queued work needs.
 *
 * The decision is the scheduler's own: a queued task that fits no node now (`place()` against the
 * registry's snapshot says no) but that `place()` would put on an offline node if that node were
 * online with the capacity it last announced, wakes that node — at most once per node per
 * `cooldownMs`. Nothing is reserved: the task stays queued and is placed by the next pass after
 * the woken node's status arrives, like any other (so the woken node gets it unless another node
 * freed up first). The scheduler stays pure; this module only builds the "what if" snapshot.
 *
 * Where the packet goes (shared/wol.ts has the packet facts): the node's announced broadcast
 * address on UDP port 9, unless the request (`--address`/`--port`) or the server config
 * (`wakeAddress`/`wakePort`) say otherwise. The server sends to an announced address only when it
 * is the broadcast address of one of the server's own networks (or 255.255.255.255): an agent token
 * cannot make the server send datagrams to an arbitrary host (SECURITY.md). Otherwise (and always
 * with `via: 'agent'`) an online node that announced the same broadcast address, so is on the same
 * LAN, is asked to send it (WakeCommand on `nodes/{relay}/wake`, shared/schemas/wake.ts); its agent
 * too sends only to a broadcast address of its own networks.
 */
import { encode } from '../shared/codec.js';
import { CutterError, errorMessage } from '../shared/errors.js';
import type { WakeCommand, WakeInfo } from '../shared/schemas/index.js';
import { formatDuration } from '../shared/units.js';
import { isBroadcastAddress, MAGIC_PACKET_BYTES, sendMagicPacket, WOL_DEFAULT_PORT } from '../shared/wol.js';
import type { ControllerContext } from './context.js';
import type { Sleeper } from './registry.js';
import { admitOf } from './scheduler/node-fit.js';
import { place } from './scheduler/place.js';
import type { ClusterSnapshot, NodeSnapshot, PlacementRequest } from './scheduler/snapshot.js';
import type { TaskRecord } from './task-record.js';

/** Wake-on-LAN settings of the server (shared/config/server.ts `wakeOnLan`, `wakeAddress`, `wakePort`, `wakeCooldownMs`). */
export interface WakeOptions {
  /** Wake sleeping nodes that queued work needs (off by default). */
  auto: boolean;
  /** Send every packet here instead of the node's broadcast address (tests: 127.0.0.1). */
  address?: string;
  /** UDP port; default 9. */
  port?: number;
  /** At most one automatic packet per node per this many ms. */
  cooldownMs: number;
  /** `auto` (default): the server sends on its own networks, an awake agent on the node's LAN otherwise; `agent`: always such an agent. */
  via?: 'auto' | 'agent';
}

/** What `node.wake` answers (shared/schemas/request.ts WakeResultSchema). */
export interface WakeSent {
  node: string;
  mac: string;
  address: string;
  port: number;
  bytes: number;
  broadcast: boolean;
  /** The awake node whose agent was asked to send it; absent when the server sent it. */
  via?: string;
}

/** The audit log's words for a packet sent (or handed to a relay node). */
function sentDetail(sent: WakeSent): string {
  return `magic packet for ${sent.mac} to ${sent.address}:${sent.port}${sent.via ? ` by node ${sent.via}` : ''}`;
}

/** How often queued work is checked against sleeping nodes while `auto` is on, ms (also after every change of a task's waiting reason). */
const CHECK_EVERY_MS = 5_000;

/** The scheduler's request for a task (as controller/placement.ts builds it). */
function requestOf(record: TaskRecord): PlacementRequest {
  const spec = record.spec;
  const s = record.state;
  return {
    kind: s.kind,
    requirements: s.requirements,
    ollama: spec.kind === 'ollama' ? { op: spec.op, model: spec.model, pull: spec.pull } : undefined,
    admit: admitOf(spec),
  };
}

/**
 * The snapshot with `sleeper` as if it were online now, with the capacity and offer it last
 * announced and nothing running or reserved (what ran there was lost when it went down).
 */
export function wokenSnapshot(base: ClusterSnapshot, sleeper: Sleeper): ClusterSnapshot {
  const woken: NodeSnapshot = {
    node: sleeper.node,
    status: { ...sleeper.announced, state: 'online', running: [] },
    lastSeenMs: base.now,
    reservedMemory: 0,
    reservedTasks: 0,
    drained: sleeper.drained,
  };
  return { ...base, nodes: base.nodes.map((n) => (n.node === sleeper.node ? woken : n)) };
}

export class Waker {
  /** node → when the last packet went to it, ms epoch (controller clock). */
  private readonly sentAt = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private unlisten?: () => void;
  private pending = false;

  constructor(
    private readonly ctx: ControllerContext,
    private readonly opts: WakeOptions,
  ) {}

  /** Starts the automatic wake when `auto` is on (a check after each new waiting reason, and every CHECK_EVERY_MS). */
  start(): void {
    if (!this.opts.auto) return;
    this.unlisten = this.ctx.events.on('rejected', () => this.soon());
    this.timer = setInterval(() => this.soon(), Math.min(CHECK_EVERY_MS, this.opts.cooldownMs));
    this.timer.unref();
    this.ctx.log.info({ address: this.opts.address, port: this.opts.port ?? WOL_DEFAULT_PORT }, 'Wake-on-LAN: automatic wake is on');
  }

  stop(): void {
    clearInterval(this.timer);
    this.unlisten?.();
  }

  /**
   * Sends a magic packet for a known, offline node with a MAC known (`cutter nodes wake`).
   * @param override `address` (IPv4) and `port` (1-65535) instead of the server's or the node's.
   * @param who identity for the audit log.
   * @throws CutterError NOT_FOUND for an unknown node; INVALID_REQUEST for a node that is online,
   *   one with no MAC known, or one on a LAN that neither this server nor an online node is on;
   *   WAKE_FAILED when the datagram cannot be sent; NO_CONTROLLER when a relay cannot be asked.
   */
  async wakeNode(node: string, override: { address?: string; port?: number }, who: string): Promise<WakeSent> {
    const { ctx } = this;
    const view = ctx.registry.views(ctx.now()).find((n) => n.node === node);
    if (!view) throw new CutterError('NOT_FOUND', `no node ${node}: \`cutter nodes list\` shows the nodes this server knows`);
    if (view.state !== 'offline')
      throw new CutterError('INVALID_REQUEST', `node ${node} is ${view.state}: it is awake, nothing to wake (wake is for an offline node)`);
    const wake = ctx.registry.wakeOf(node);
    if (!wake)
      throw new CutterError(
        'INVALID_REQUEST',
        `no MAC address is known for node ${node}: its agent never announced one (an agent older than Wake-on-LAN, or one with no non-internal IPv4 interface); start it once with a current cutter while it is awake`,
      );
    try {
      const sent = await this.send(node, wake, override);
      ctx.audit.record({
        who,
        action: 'wake',
        outcome: 'ok',
        node,
        detail: sentDetail(sent),
      });
      return sent;
    } catch (err) {
      ctx.audit.record({ who, action: 'wake', outcome: 'failed', node, detail: errorMessage(err) });
      throw err;
    }
  }

  /** Runs a check soon, once, in the controller's queue. */
  private soon(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(
      () =>
        void this.ctx.serial('wake-on-lan', () => {
          this.pending = false;
          return this.check();
        }),
    );
  }

  /** Wakes each sleeping node (outside its cooldown) that a queued task fits while nothing awake does. */
  private async check(): Promise<void> {
    const { ctx } = this;
    const now = ctx.now();
    const sleepers = ctx.registry
      .sleepers()
      .filter((s) => !s.drained && now - (this.sentAt.get(s.node) ?? Number.NEGATIVE_INFINITY) >= this.opts.cooldownMs);
    if (sleepers.length === 0) return;
    const queued = ctx.tasks.queued().filter((r) => r.notBefore <= now);
    if (queued.length === 0) return;
    const base = { ...ctx.registry.snapshot(now, ctx.opts.policy), modelRules: ctx.opts.modelRules };
    // One answer per distinct request (a thousand identical queued tasks ask once).
    const requests = new Map<string, { req: PlacementRequest; taskId: string }>();
    for (const r of queued) {
      const req = requestOf(r);
      const key = JSON.stringify(req);
      if (!requests.has(key) && !place(req, base).ok) requests.set(key, { req, taskId: r.state.taskId });
    }
    for (const sleeper of sleepers) {
      const snapshot = wokenSnapshot(base, sleeper);
      for (const { req, taskId } of requests.values()) {
        const p = place(req, snapshot);
        if (!p.ok || p.node !== sleeper.node) continue;
        this.sentAt.set(sleeper.node, now);
        await this.autoWake(sleeper, taskId);
        break;
      }
    }
  }

  /** Sends the automatic packet for `sleeper`, woken for `taskId`: logged and audited, a failure only logged. */
  private async autoWake(sleeper: Sleeper, taskId: string): Promise<void> {
    const { ctx } = this;
    const node = sleeper.node;
    try {
      const sent = await this.send(node, sleeper.wake, {});
      ctx.log.info({ ...sent, taskId }, 'Wake-on-LAN: woke a sleeping node for queued work');
      ctx.audit.record({
        who: 'controller',
        action: 'wake',
        outcome: 'ok',
        node,
        taskId,
        detail: `${sentDetail(sent)}; next at most in ${formatDuration(this.opts.cooldownMs)}`,
      });
    } catch (err) {
      ctx.log.warn({ node, taskId, err: errorMessage(err) }, 'Wake-on-LAN: cannot wake a sleeping node for queued work');
      ctx.audit.record({ who: 'controller', action: 'wake', outcome: 'failed', node, taskId, detail: errorMessage(err) });
    }
  }

  /**
   * Sends the packet for `wake.mac` to the override, else the server's `wakeAddress`, else the
   * node's broadcast address when it is one of this server's networks' (and `via` allows), else
   * asks an awake node on that LAN (`relay`); notes the time.
   */
  private async send(node: string, wake: WakeInfo, override: { address?: string; port?: number }): Promise<WakeSent> {
    const address = override.address ?? this.opts.address ?? wake.broadcast;
    const port = override.port ?? this.opts.port ?? WOL_DEFAULT_PORT;
    const broadcast = isBroadcastAddress(address);
    const fromNode = override.address === undefined && this.opts.address === undefined;
    if (fromNode && (!broadcast || this.opts.via === 'agent')) return this.relay(node, wake, port);
    const packet = await sendMagicPacket(wake.mac, { address, port, broadcast });
    this.sentAt.set(node, this.ctx.now());
    this.ctx.log.info({ node, mac: wake.mac, address, port }, 'Wake-on-LAN: magic packet sent');
    return { node, mac: wake.mac, address, port, bytes: packet.length, broadcast };
  }

  /**
   * Asks an online node that announced `wake.broadcast` (so is on the sleeping node's LAN) to send
   * the packet (WakeCommand on `nodes/{relay}/wake`, QoS 1); the first such node by name.
   * @throws CutterError INVALID_REQUEST when no online node is on that LAN, NO_CONTROLLER when not connected.
   */
  private async relay(node: string, wake: WakeInfo, port: number): Promise<WakeSent> {
    const { ctx } = this;
    const relay = ctx.registry
      .views(ctx.now())
      .filter((v) => v.state === 'online' && v.node !== node && v.wake?.broadcast === wake.broadcast)
      .map((v) => v.node)
      .sort()[0];
    if (!relay)
      throw new CutterError(
        'INVALID_REQUEST',
        this.opts.via === 'agent'
          ? `no online node announced node ${node}'s broadcast address ${wake.broadcast}, so none is on its LAN to send the packet, and this server sends none itself (--wake-via agent): start an agent on that LAN, or pass --address with an address that reaches its network`
          : `node ${node}'s broadcast address ${wake.broadcast} is not on any network of this server (routers drop directed broadcasts from other subnets) and no online node announced it, so none is on its LAN to send the packet: start an agent on that LAN, or pass --address with an address that reaches its network`,
      );
    const client = ctx.client;
    if (!client) throw new CutterError('NO_CONTROLLER', 'the controller is not connected to its broker yet');
    const command: WakeCommand = { v: 1, node, mac: wake.mac, broadcast: wake.broadcast, port };
    await client.publishAsync(ctx.t.nodeWake(relay), encode(command), { qos: 1 });
    this.sentAt.set(node, ctx.now());
    ctx.log.info(
      { node, mac: wake.mac, via: relay, broadcast: wake.broadcast, port },
      'Wake-on-LAN: asked a node on its LAN to send the magic packet',
    );
    return { node, mac: wake.mac, address: wake.broadcast, port, bytes: MAGIC_PACKET_BYTES, broadcast: true, via: relay };
  }
}
