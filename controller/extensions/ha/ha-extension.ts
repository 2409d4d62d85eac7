/**
 * Home Assistant extension: publishes MQTT discovery (one HA device per node, device-based
 * discovery), each node's state and availability, and takes the drain switch's commands.
 *
 * It has its own MQTT client: on the server's broker by default (MQTT 3.1.1, the embedded Aedes
 * speaks nothing else), or on the broker Home Assistant uses (`--ha-broker`, e.g. the Mosquitto
 * add-on) as an MQTT 5 client — HA deprecated MQTT 3.x brokers in 2026.6 and stops accepting them
 * in 2027.1 (home-assistant/core PR #169759), the way Zigbee2MQTT connects to that broker.
 *
 * Behaviour, after Home Assistant's docs (https://www.home-assistant.io/integrations/mqtt/,
 * "Birth and last will messages", "Discovery messages and availability") and Zigbee2MQTT:
 * - everything is retained (QoS 1); the server's availability topic has a last will `offline`;
 * - on every (re)connect, and when HA announces `online` on `<prefix>/status` (after a short
 *   random delay, as HA recommends), all configs, states and availabilities are published again —
 *   a stuck "unavailable" after a broker or HA restart is what this prevents;
 * - a node offline longer than `removeAfterMs` is removed: empty retained config (HA deletes the
 *   device), state and availability cleared; it comes back by itself when the node does.
 * - states are published when something that matters changes (state, drain, tasks, models) at
 *   once, and otherwise (memory, CPU) at most every STATE_MIN_INTERVAL_MS per node.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from '../../../shared/logger.js';
import { connectMqtt, type MqttClient } from '../../../shared/mqtt.js';
import type { NodeView } from '../../../shared/schemas/index.js';
import { haTopics, type HaTopics, topicMatches } from '../../../shared/topics.js';
import { VERSION } from '../../../shared/version.js';
import type { Extension, ExtensionContext } from '../extension.js';
import { haDeviceConfig, haNodeId, haNodeState } from './discovery.js';

/** Memory and CPU figures go out at most this often per node, ms. */
const STATE_MIN_INTERVAL_MS = 10_000;
/** Node changes are gathered and published this often, ms (one registry read per batch). */
const FLUSH_MS = 250;

export interface HaOptions {
  /** HA's discovery prefix (default `homeassistant`). */
  haPrefix: string;
  /** The broker HA uses; absent = the server's own broker. */
  haBroker?: { url: string; username?: string; password?: string; caFile?: string };
  /** Remove a node offline this long from HA, ms; 0 = never. */
  removeAfterMs: number;
}

interface Published {
  config?: string;
  /** What the config is built from (see configKey): it is rebuilt only when this changes. */
  configKey?: string;
  state?: string;
  /** The part of the state that is published at once when it changes. */
  stateKey?: string;
  stateAt: number;
  availability?: string;
}

export class HomeAssistantExtension implements Extension {
  readonly name = 'homeassistant';
  private readonly log: Logger;
  private readonly t: HaTopics;
  private client?: MqttClient;
  private readonly published = new Map<string, Published>();
  /** Nodes whose discovery config was cleared (offline too long). */
  private readonly removed = new Set<string>();
  private readonly dirty = new Set<string>();
  private timer?: NodeJS.Timeout;
  private birthTimer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private stopped = false;

  constructor(
    private readonly ctx: ExtensionContext,
    private readonly opts: HaOptions,
  ) {
    this.log = ctx.log.child({ component: 'homeassistant' });
    this.t = haTopics(ctx.prefix, opts.haPrefix);
  }

  /**
   * Starts connecting and returns at once: the broker HA uses may be down now and up later, and
   * the mesh must not wait for it. A refused login is logged (error) and not retried.
   */
  async start(): Promise<void> {
    const external = this.opts.haBroker;
    const url = external?.url ?? this.ctx.brokerUrl;
    // MQTT 5 on any broker but the embedded Aedes (3.1.1 only): HA's own broker, or the external
    // broker the controller uses (`cutter server --broker`), which HA may share.
    const v5 = Boolean(external) || !this.ctx.broker;
    const events = this.ctx.controller.events;
    const offs = [events.on('node', (node) => this.dirty.add(node)), events.on('nodeRemoved', (node) => this.remove(node, 'forgotten'))];
    this.unsubscribe = () => {
      for (const off of offs) off();
    };
    this.timer = setInterval(() => {
      // A timer callback that throws would end the server: an extension's bug must not.
      try {
        this.flush();
      } catch (err) {
        this.log.error({ err }, 'home assistant update failed');
      }
    }, FLUSH_MS);
    this.log.info({ broker: url, mqtt: v5 ? '5' : '3.1.1', haPrefix: this.opts.haPrefix }, 'home assistant discovery on');
    connectMqtt({
      url,
      clientId: `cutter-ha-${this.ctx.prefix.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 64),
      clean: true,
      keepaliveSec: 30,
      protocolVersion: v5 ? 5 : 4,
      username: external ? external.username : this.ctx.username,
      password: external ? external.password : this.ctx.password,
      will: { topic: this.t.bridgeAvailability(), payload: 'offline', qos: 1, retain: true },
      // HA's broker has its own CA (or the system's), not the one of the mesh's broker.
      ...(external ? { tls: { caFile: external.caFile } } : {}),
      log: this.log,
      onClient: (c) => {
        c.on('message', (topic, payload, packet) => {
          try {
            this.onMessage(topic, payload, packet.retain);
          } catch (err) {
            this.log.error({ topic, err }, 'home assistant message handler failed');
          }
        });
        this.client = c;
        // Every (re)connect: the broker may have restarted and lost its retained messages.
        // (clean session: MQTT.js subscribes again by itself after a reconnect.)
        c.on('connect', () => this.safeResync('connected'));
      },
    })
      .then(
        (c) =>
          c
            .subscribeAsync(
              [this.t.haStatus(), this.t.allDrainCommands(), this.t.allLendingCommands('lending'), this.t.allLendingCommands('mode')],
              { qos: 1 },
            )
            .then(() => this.log.info({ broker: url }, 'home assistant broker connected')),
        (err: unknown) => this.log.error({ broker: url, err }, 'home assistant broker refused the connection: discovery is not published'),
      )
      .catch((err: unknown) => this.log.warn({ err }, 'home assistant subscribe failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.birthTimer);
    this.unsubscribe?.();
    const client = this.client;
    if (!client) return;
    // A clean disconnect sends no last will: say it ourselves (not waiting long on a slow broker).
    if (client.connected) {
      await Promise.race([
        client.publishAsync(this.t.bridgeAvailability(), 'offline', { qos: 1, retain: true }).catch(() => undefined),
        new Promise((r) => setTimeout(r, 2_000).unref()),
      ]);
    }
    await client.endAsync(!client.connected).catch(() => undefined);
  }

  private publish(topic: string, payload: string): void {
    this.client?.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (err) this.log.warn({ topic, err }, 'publish failed');
    });
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    const text = payload.toString('utf8').trim();
    if (topic === this.t.haStatus()) {
      if (text !== 'online') return;
      // HA's docs recommend a random delay before re-sending discovery after its birth message.
      clearTimeout(this.birthTimer);
      this.birthTimer = setTimeout(() => this.safeResync('home assistant online'), randomInt(100, 1_000));
      return;
    }
    const lending = this.t.lendingCommandOf(topic);
    if (lending) {
      this.onLendingCommand(lending.node, lending.what, text, retained);
      return;
    }
    if (topicMatches(this.t.allDrainCommands(), topic)) {
      // A retained command would drain the node again after every reconnect: commands are events.
      if (retained) {
        this.log.warn({ topic }, 'ignored a retained drain command (publish it without retain)');
        return;
      }
      const node = this.t.drainCommandNode(topic);
      const command = text.toUpperCase();
      if (!node || (command !== 'ON' && command !== 'OFF')) {
        this.log.warn({ topic, payload: text.slice(0, 100) }, 'dropped invalid drain command: payload must be ON or OFF');
        return;
      }
      void this.ctx.controller.run('home assistant drain', () => {
        try {
          this.ctx.controller.setDrained(node, command === 'ON', 'homeassistant');
        } catch (err) {
          this.log.warn({ node, err }, 'drain command refused');
        }
      });
    }
  }

  /** The lending switch (`ON`/`OFF`) or mode select (`auto`/`always`) of a node: relayed to its agent (issue 17). */
  private onLendingCommand(node: string, what: 'lending' | 'mode', text: string, retained: boolean): void {
    if (retained) {
      this.log.warn({ node, what }, 'ignored a retained lending command (publish it without retain)');
      return;
    }
    const v = what === 'lending' ? text.toUpperCase() : text.toLowerCase();
    const patch =
      what === 'lending'
        ? v === 'ON' || v === 'OFF'
          ? { enabled: v === 'ON' }
          : null
        : v === 'auto' || v === 'always'
          ? { mode: v as 'auto' | 'always' }
          : null;
    if (!patch) {
      this.log.warn(
        { node, what, payload: text.slice(0, 100) },
        `dropped invalid lending command: payload must be ${what === 'lending' ? 'ON or OFF' : 'auto or always'}`,
      );
      return;
    }
    this.ctx.controller
      .setLending(node, patch, 'homeassistant')
      .catch((err: unknown) => this.log.warn({ node, err }, 'lending command refused'));
  }

  private safeResync(why: string): void {
    try {
      this.resync(why);
    } catch (err) {
      this.log.error({ err }, 'republishing discovery failed');
    }
  }

  /** Publishes everything again: server availability, then every node's config, state and availability. */
  private resync(why: string): void {
    if (this.stopped || !this.client?.connected) return;
    this.publish(this.t.bridgeAvailability(), 'online');
    this.published.clear();
    const views = this.ctx.controller.registry.views(Date.now());
    for (const view of views) this.publishNode(view, Date.now(), true);
    this.log.info({ why, nodes: views.length }, 'home assistant discovery published');
  }

  private flush(): void {
    const now = Date.now();
    const views = this.ctx.controller.registry.views(now);
    for (const view of views) {
      if (this.opts.removeAfterMs > 0 && view.state === 'offline' && view.lastSeenAgoMs > this.opts.removeAfterMs) {
        if (!this.removed.has(view.node)) this.remove(view.node, `offline for ${Math.round(view.lastSeenAgoMs / 1000)} s`);
        continue;
      }
      if (this.dirty.has(view.node) || this.removed.has(view.node)) this.publishNode(view, now, false);
      else {
        // Catch up throttled figures.
        const p = this.published.get(view.node);
        if (p && now - p.stateAt >= STATE_MIN_INTERVAL_MS) this.publishNode(view, now, false);
      }
    }
    this.dirty.clear();
  }

  private publishNode(view: NodeView, now: number, force: boolean): void {
    if (!this.client?.connected) return;
    if (this.removed.has(view.node)) {
      if (view.state === 'offline') return;
      this.removed.delete(view.node);
      this.log.info({ node: view.node }, 'node back: home assistant device published again');
    }
    const p = this.published.get(view.node) ?? { stateAt: 0 };
    this.published.set(view.node, p);
    // Heartbeats arrive every second from every node; the config changes rarely, so it is rebuilt
    // only when what it depends on changes.
    const key = configKey(view);
    if (force || key !== p.configKey) {
      const { topic, payload } = haDeviceConfig(view, { prefix: this.ctx.prefix, topics: this.t, version: VERSION });
      const config = JSON.stringify(payload);
      if (force || config !== p.config) this.publish(topic, config);
      p.config = config;
      p.configKey = key;
    }
    // The state after the config: HA subscribes to the state topics once it has the config.
    // What goes out at once when it changes; memory and CPU wait for STATE_MIN_INTERVAL_MS.
    const cap = view.status.capacity;
    const stateKey = `${view.state}|${view.drained}|${view.status.running.length}|${(cap?.ollama?.loaded ?? []).map((m) => m.name).join(',')}|${cap?.gpus.length ?? -1}|${Boolean(cap)}|${lendingKey(view)}`;
    if (force || stateKey !== p.stateKey || now - p.stateAt >= STATE_MIN_INTERVAL_MS) {
      const json = JSON.stringify(haNodeState(view, now));
      if (force || json !== p.state) this.publish(this.t.state(view.node), json);
      p.state = json;
      p.stateKey = stateKey;
      p.stateAt = now;
    }
    const availability = view.state === 'offline' ? 'offline' : 'online';
    if (force || availability !== p.availability) {
      this.publish(this.t.availability(view.node), availability);
      p.availability = availability;
    }
  }

  /**
   * Clears a node's retained discovery config (HA deletes the device), state and availability.
   * While disconnected it only forgets what was published: the next (re)connect publishes the
   * nodes that are left, but cannot clear on a broker what it no longer knows — so it is queued
   * (QoS 1, MQTT.js keeps it until acknowledged) instead of dropped.
   */
  private remove(node: string, why: string): void {
    const topic = this.t.deviceConfig(haNodeId(this.ctx.prefix, node));
    for (const t of [topic, this.t.state(node), this.t.availability(node)]) this.publish(t, '');
    this.published.delete(node);
    this.removed.add(node);
    this.log.info({ node, why }, 'node removed from home assistant');
  }
}

/** Everything haDeviceConfig reads from a view: the agent's version, which GPUs report free memory, whether it has Ollama. */
/** What of a node's lending goes out to HA at once when it changes (state, reason, switch, mode). */
function lendingKey(view: NodeView): string {
  const l = view.status.lending;
  return l ? `${l.state}:${l.reason ?? ''}:${l.policy.enabled}:${l.policy.mode}` : '';
}

function configKey(view: NodeView): string {
  const cap = view.status.capacity;
  return JSON.stringify([
    view.node,
    view.status.version,
    (cap?.gpus ?? []).map((g) => g.memoryFree !== null),
    Boolean(cap?.ollama || view.status.offer?.executors.includes('ollama')),
    Boolean(view.status.lending),
  ]);
}
