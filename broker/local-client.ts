/**
 * An MQTT client of the embedded broker for code in the broker's own process (the controller and
 * the server's extensions), speaking to Aedes through its programmatic API instead of MQTT packets
 * over an in-process stream: `aedes.publish(packet, done)` to publish (retained messages stored,
 * offline sessions queued, as for any client's PUBLISH), `aedes.subscribe(filter, deliver, done)`
 * (its MQEmitter) to receive, and the persistence's retained messages replayed at each subscribe, as
 * Aedes's SUBSCRIBE handler does (aedes 1.2 lib/handlers/subscribe.js `createRetainedStreamCombi`).
 *
 * Why: over the stream, every message between the controller and the broker was serialised by one
 * side's MQTT packet writer and parsed by the other's, with a PUBACK back for each QoS 1 one and an
 * in-flight copy kept for the controller's session; that was about a fifth of the embedded server's
 * CPU in the placement benchmark (bench/profile.md, "The in-process link without MQTT packets").
 * Nothing is lost by it: the two share a process, so a message cannot be dropped between them, and
 * a will or a persistent session would outlive nothing.
 *
 * It offers the part of MQTT.js's `MqttClient` that cutter uses (`publish`/`publishAsync`,
 * `subscribe`/`subscribeAsync`, `unsubscribe`/`unsubscribeAsync`, `end`/`endAsync`, `connected`,
 * the `connect`, `message`, `close` and `end` events, `handleMessage`), with MQTT.js's shapes.
 * Messages are handed to `message` listeners in order, after the code that published them has
 * run (a microtask later), as a socket would: a request's reply never arrives inside its publish.
 * A live message arrives with `retain` false, a replayed retained one with `retain` true (MQTT
 * 3.1.1 §3.3.1.3). One message matching several of the client's filters arrives once.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';

/** A PUBLISH as Aedes's API takes and delivers it (aedes-packet; the fields cutter reads). */
export interface LocalPacket {
  cmd: 'publish';
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
}

/** The part of an Aedes broker a local client uses (aedes 1.2 `publish`, `subscribe`, `unsubscribe`, `persistence`, `mq`). */
export interface LocalBrokerApi {
  publish(packet: LocalPacket & { brokerId: string; brokerCounter: number }, done: (err?: Error | null) => void): void;
  /** Aedes's MQEmitter: every message routed, by anyone, passes its `emit`. */
  mq: { emit(packet: { brokerId?: string | null; brokerCounter?: number }, cb?: () => void): unknown };
  subscribe(topic: string, deliver: (packet: LocalPacket, cb: () => void) => void, done: () => void): void;
  unsubscribe(topic: string, deliver: (packet: LocalPacket, cb: () => void) => void, done: () => void): void;
  persistence: { createRetainedStreamCombi(patterns: string[]): Readable };
}

/** What a local client reports to its broker: to count messages in its stats. */
export interface LocalClientHooks {
  /** A message published by the client. */
  published?(packet: LocalPacket): void;
  /** A message handed to the client. */
  delivered?(): void;
  /** The client ended. */
  ended?(client: LocalClient): void;
}

type Callback = (err?: Error | null, ...rest: unknown[]) => void;

/** Per broker: what each local client (by its brokerId) does when one of its messages is routed. */
const routedHooks = new WeakMap<LocalBrokerApi, Map<string, (counter: number) => void>>();

/** The hooks of `broker`, wrapping its MQEmitter's `emit` the first time. */
function routed(broker: LocalBrokerApi): Map<string, (counter: number) => void> {
  let hooks = routedHooks.get(broker);
  if (hooks) return hooks;
  const known = new Map<string, (counter: number) => void>();
  const emit = broker.mq.emit.bind(broker.mq);
  broker.mq.emit = (packet, cb) => {
    const result = emit(packet, cb);
    if (packet.brokerId && packet.brokerCounter !== undefined) known.get(packet.brokerId)?.(packet.brokerCounter);
    return result;
  };
  routedHooks.set(broker, known);
  hooks = known;
  return hooks;
}
type Filters = string | string[] | Record<string, { qos: number }>;

/** Topic filters of a subscribe or unsubscribe, in MQTT.js's three shapes. */
function filterList(filters: Filters): string[] {
  if (typeof filters === 'string') return [filters];
  if (Array.isArray(filters)) return filters;
  return Object.keys(filters);
}

/** An in-process client of the embedded broker (see the file comment). Create with `RunningBroker.localClient`. */
export class LocalClient extends EventEmitter {
  connected = false;
  readonly options: { clientId: string };
  private readonly subs = new Map<string, (packet: LocalPacket, cb: () => void) => void>();
  /** Messages handed over but not yet emitted, and where the next one to emit is. */
  private queue: { topic: string; payload: Buffer; packet: LocalPacket }[] = [];
  private head = 0;
  private draining = false;
  /** The last live message handed to this client: MQEmitter hands one message to each matching filter in turn. */
  private last: LocalPacket | null = null;
  private ended = false;
  /**
   * Publishes wait here and go to the broker one at a time, each once the one before is routed.
   * Aedes stamps every message with its broker id and a counter, and a subscriber's connection
   * drops any message whose counter is not above the last it was handed from that id (aedes
   * lib/client.js `dedupe`, meant for overlapping subscriptions); a retained message takes more
   * promise steps to reach routing than one that is not (storeRetained), so publishes issued
   * together were routed out of order and some were dropped for subscribers of both kinds. Aedes
   * handles one packet of a connection at a time; this keeps that order without waiting for the
   * deliveries as it does. Each client stamps its own id and counter.
   */
  private readonly outbox: { packet: LocalPacket & { brokerId: string; brokerCounter: number }; cb?: Callback }[] = [];
  private outboxHead = 0;
  /** Counter of the message at the broker, not yet routed; null when none is. */
  private sending: number | null = null;
  private counter = 0;
  private readonly brokerId: string;

  constructor(
    private readonly broker: LocalBrokerApi,
    clientId: string,
    private readonly hooks: LocalClientHooks = {},
  ) {
    super();
    this.options = { clientId };
    this.brokerId = `local:${clientId}:${randomBytes(4).toString('hex')}`;
    routed(broker).set(this.brokerId, (counter) => {
      if (counter === this.sending) queueMicrotask(() => this.sendNext(counter));
    });
    // Connected on the next turn, so that listeners added after creation hear it, as with MQTT.js.
    setImmediate(() => {
      if (this.ended) return;
      this.connected = true;
      this.emit('connect', { cmd: 'connack', returnCode: 0, sessionPresent: false });
    });
  }

  /** Publishes (retained when `opts.retain`); `cb` runs once the broker has stored and routed it. */
  publish(topic: string, message: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean } | Callback, cb?: Callback): this {
    if (typeof opts === 'function') [cb, opts] = [opts, undefined];
    if (this.ended) {
      cb?.(new Error('client disconnecting'));
      return this;
    }
    const packet = {
      cmd: 'publish' as const,
      topic,
      payload: typeof message === 'string' ? Buffer.from(message) : message,
      qos: opts?.qos ?? 0,
      retain: opts?.retain ?? false,
      dup: false,
      brokerId: this.brokerId,
      brokerCounter: ++this.counter,
    };
    this.hooks.published?.(packet);
    this.outbox.push({ packet, cb });
    if (this.sending === null) this.sendNext(null);
    return this;
  }

  /** Hands the next waiting publish to the broker, once the one with counter `after` is routed (or failed). */
  private sendNext(after: number | null): void {
    if (this.sending !== after) return;
    const next = this.outbox[this.outboxHead];
    if (!next) {
      this.outbox.length = 0;
      this.outboxHead = 0;
      this.sending = null;
      return;
    }
    this.outbox[this.outboxHead++] = undefined as never;
    // Under steady load the outbox may never empty: drop the sent part now and then.
    if (this.outboxHead >= 1024 && this.outboxHead * 2 >= this.outbox.length) {
      this.outbox.splice(0, this.outboxHead);
      this.outboxHead = 0;
    }
    const counter = next.packet.brokerCounter;
    this.sending = counter;
    this.broker.publish(next.packet, (err) => {
      // Not routed (a refused topic, a failed retained store): the next one goes all the same.
      if (this.sending === counter) this.sendNext(counter);
      next.cb?.(err ?? undefined);
    });
  }

  publishAsync(topic: string, message: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<void> {
    return new Promise((resolve, reject) => this.publish(topic, message, opts, (err) => (err ? reject(err) : resolve())));
  }

  /** Subscribes to each filter not yet subscribed, then replays the retained messages of those filters. */
  subscribe(filters: Filters, opts?: { qos?: number } | Callback, cb?: Callback): this {
    if (typeof opts === 'function') [cb, opts] = [opts, undefined];
    const list = filterList(filters);
    const qosOf = (f: string) => (typeof filters === 'object' && !Array.isArray(filters) ? filters[f].qos : (opts?.qos ?? 0));
    const granted = list.map((topic) => ({ topic, qos: qosOf(topic) }));
    if (this.ended) {
      cb?.(new Error('client disconnecting'));
      return this;
    }
    const fresh = list.filter((f) => !this.subs.has(f));
    let pending = fresh.length;
    const subscribed = () => {
      if (--pending > 0) return;
      this.replayRetained(fresh, () => cb?.(null, granted));
    };
    if (fresh.length === 0) queueMicrotask(() => cb?.(null, granted));
    for (const filter of fresh) {
      const deliver = (packet: LocalPacket, done: () => void) => {
        done();
        if (packet === this.last || this.ended) return; // the same message for another of our filters
        this.last = packet;
        this.enqueue(packet.topic, packet.payload, { ...packet, retain: false });
      };
      this.subs.set(filter, deliver);
      this.broker.subscribe(filter, deliver, subscribed);
    }
    return this;
  }

  subscribeAsync(filters: Filters, opts?: { qos?: number }): Promise<{ topic: string; qos: number }[]> {
    return new Promise((resolve, reject) =>
      this.subscribe(filters, opts, (err, granted) => (err ? reject(err) : resolve(granted as { topic: string; qos: number }[]))),
    );
  }

  unsubscribe(filters: string | string[], opts?: Record<string, unknown> | Callback, cb?: Callback): this {
    if (typeof opts === 'function') cb = opts;
    const list = filterList(filters).filter((f) => this.subs.has(f));
    let pending = list.length;
    if (pending === 0) queueMicrotask(() => cb?.(null));
    for (const filter of list) {
      const deliver = this.subs.get(filter)!;
      this.subs.delete(filter);
      this.broker.unsubscribe(filter, deliver, () => {
        if (--pending === 0) cb?.(null);
      });
    }
    return this;
  }

  unsubscribeAsync(filters: string | string[]): Promise<void> {
    return new Promise((resolve, reject) => this.unsubscribe(filters, {}, (err) => (err ? reject(err) : resolve())));
  }

  /** Drops every subscription and says `close` and `end`. Messages not yet emitted are dropped. */
  end(force?: boolean | Callback, opts?: Record<string, unknown> | Callback, cb?: Callback): this {
    const done = [force, opts, cb].find((a): a is Callback => typeof a === 'function');
    if (this.ended) {
      if (done) queueMicrotask(() => done());
      return this;
    }
    this.ended = true;
    this.connected = false;
    for (const [filter, deliver] of this.subs) this.broker.unsubscribe(filter, deliver, () => undefined);
    this.subs.clear();
    this.queue = [];
    this.head = 0;
    this.hooks.ended?.(this);
    routed(this.broker).delete(this.brokerId);
    queueMicrotask(() => {
      this.emit('close');
      this.emit('end');
      done?.();
    });
    return this;
  }

  endAsync(force?: boolean): Promise<void> {
    return new Promise((resolve) => this.end(force, {}, () => resolve()));
  }

  /**
   * MQTT.js's hook after a message's `message` event, whose callback sends the PUBACK
   * (shared/mqtt.ts MessageRouter wraps it). Nothing is acknowledged here: it only calls back.
   */
  handleMessage(_packet: LocalPacket, callback: (err?: Error) => void): void {
    callback();
  }

  /** Hands the retained messages of `filters` to this client, flagged retained, then calls `done`. */
  private replayRetained(filters: string[], done: () => void): void {
    if (filters.length === 0) {
      done();
      return;
    }
    const stream = this.broker.persistence.createRetainedStreamCombi(filters);
    stream.on('data', (p: LocalPacket) => {
      if (!this.ended) this.enqueue(p.topic, p.payload, { ...p, cmd: 'publish', retain: true, dup: false });
    });
    stream.once('end', done);
    stream.once('error', done);
  }

  private enqueue(topic: string, payload: Buffer, packet: LocalPacket): void {
    this.hooks.delivered?.();
    this.queue.push({ topic, payload, packet });
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => this.drain());
  }

  /** Emits what was handed over, in order; a throwing listener does not stop the rest. */
  private drain(): void {
    try {
      while (this.head < this.queue.length) {
        const m = this.queue[this.head++];
        this.emit('message', m.topic, m.payload, m.packet);
      }
    } finally {
      if (this.head < this.queue.length) queueMicrotask(() => this.drain());
      else {
        this.queue = [];
        this.head = 0;
        this.draining = false;
      }
    }
  }
}
