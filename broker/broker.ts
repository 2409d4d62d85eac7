/**
 * The embedded MQTT broker: Aedes 1.2 (MQTT 3.1.1) on a TCP listener, plus optional TLS
 * (`mqtts://`) and WebSocket (`ws://`/`wss://`) listeners (broker/listeners.ts). Every listener
 * feeds Aedes through the same packet-size guard and the same authentication and ACL.
 *
 * Aedes 1.x has no default export and must be created with `Aedes.createBroker()` (protocol-facts
 * §5.6). Retained messages and last wills work out of the box with the in-memory persistence.
 * Aedes delivers a message to every subscriber before it goes on, waiting for a subscriber whose
 * socket is full to drain (Aedes docs: "Without a timeout, one slow client can block message
 * delivery to all other clients"). Network clients never make it wait: their writes complete at
 * once and a client with more than `maxQueuedBytes` unsent is cut (packet-guard.ts). Only the
 * controller's own link keeps backpressure, bounded by `drainTimeout`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import { type BrokerOptions, MAX_TOPIC_LEVELS, type RunningBroker } from './broker-types.js';
import { denyPublish, denySubscribe, checkClientId, quarantineOf } from './acl.js';
import { RateLimiter } from '../shared/rate-limit.js';
import type { Identity } from './identities.js';
import { tlsListener, wsListener, type Listener } from './listeners.js';
import { duplexPair } from './in-process.js';
import { guardSocket } from './packet-guard.js';
import { indexRetained, type RetainedPersistence } from './retained-index.js';
import { BrokerLogLimiter } from './log-limiter.js';
import { AgentSessions, remoteAddressOf } from './sessions.js';

/**
 * Bytes a network client may have waiting unsent before it is cut as too slow a reader (it
 * reconnects and, with a persistent session, gets its QoS 1 messages again), bytes.
 */
const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;
/** Largest packet on the controller's internal listener, bytes (MQTT's own ceiling is 256 MiB). */
const INTERNAL_MAX_PACKET_BYTES = 256 * 1024 * 1024 - 1;
/** Failed logins from one address a minute before it is banned, and for how long, ms. */
const AUTH_FAILURES_PER_MINUTE = 20;
const AUTH_BAN_MS = 60_000;

export type { BrokerOptions, BrokerStats, RunningBroker } from './broker-types.js';
export { MAX_TOPIC_LEVELS } from './broker-types.js';

/**
 * Aedes' default in-memory persistence (aedes-persistence 11: a CommonJS function; its types
 * declare an ES default export, which Node gives as the function itself).
 */
const memoryPersistence = aedesPersistence as unknown as () => RetainedPersistence;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
const CONNACK = { identifierRejected: 2, badCredentials: 4, notAuthorized: 5 } as const;

function refusal(message: string, returnCode: number): Error {
  return Object.assign(new Error(message), { returnCode });
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`broker cannot listen on ${host}:${port}: ${err.message}`)));
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/** Creates the broker with its internal loopback listener; the public one opens with `listen()`. */
export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const log = opts.log.child({ component: 'broker' });
  const aedes = await Aedes.createBroker({
    drainTimeout: opts.drainTimeoutMs,
    heartbeatInterval: 60_000,
    maxTopicLevels: MAX_TOPIC_LEVELS,
    connectTimeout: 10_000,
    // One instance: Aedes' own in-memory persistence, its retained messages indexed by topic (./retained-index.ts).
    ...(opts.cluster
      ? { mq: opts.cluster.mq, persistence: opts.cluster.persistence }
      : { persistence: indexRetained(memoryPersistence()) }),
  });
  const limits = {
    maxPacketBytes: opts.maxPacketBytes,
    maxConnectBytes: opts.maxConnectBytes,
    maxQueuedBytes: opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
  };
  const guarded = (packetLimits: typeof limits) => (socket: Socket) => {
    // Nagle's algorithm with delayed ACKs adds ~40 ms to each small request/reply round trip.
    socket.setNoDelay(true);
    aedes.handle(
      guardSocket(
        socket,
        packetLimits,
        (reason) => log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'connection cut: packet too large'),
        (reason) => log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'connection cut: reader too slow'),
      ) as unknown as Socket,
    );
  };
  const handle = guarded(limits);
  // A WebSocket stream is a Duplex, not a net.Socket, but guardSocket only uses what every Duplex
  // has (write/pause/resume/end/destroy and the data/end/close/error/drain events).
  const handleStream = (stream: Duplex, req: Parameters<Aedes['handle']>[1], remote: string | undefined) => {
    aedes.handle(
      guardSocket(
        stream as unknown as Socket,
        limits,
        (reason) => log.warn({ remote, reason }, 'connection cut: packet too large'),
        (reason) => log.warn({ remote, reason }, 'connection cut: reader too slow'),
      ) as unknown as Socket,
      req,
    );
  };
  // The controller's own listener (loopback, controller identity only) takes its larger replies, e.g. a long task list.
  // The controller's own link keeps backpressure (maxQueuedBytes 0): its reader is the controller itself.
  const internal = createServer(
    guarded({ ...limits, maxPacketBytes: Math.max(limits.maxPacketBytes, INTERNAL_MAX_PACKET_BYTES), maxQueuedBytes: 0 }),
  );
  const server = createServer(handle);
  // Servers are built (and certificate files read) now, so a bad file fails the start at once.
  // With TLS, nothing listens in the clear unless asked for (--plain-listener): a token sent over
  // plain TCP or ws:// is readable by anyone on the path.
  const plain = !opts.tls || opts.plainListener === true;
  const listeners: Listener[] = plain ? [{ scheme: 'mqtt', port: opts.port, server }] : [];
  if (opts.tls) listeners.push(tlsListener(opts.tls, handle, log));
  if (opts.ws && (opts.ws.tls || plain)) listeners.push(wsListener(opts.ws, opts.tls, opts.maxPacketBytes, handleStream, log));
  else if (opts.ws)
    log.warn({ port: opts.ws.port }, 'plain ws:// listener not opened: TLS is configured (--ws-tls, or --plain-listener to allow it)');
  if (opts.tls && !plain) log.info({ port: opts.port }, 'plain TCP listener not opened: TLS is configured (--plain-listener to allow it)');
  if (opts.tls && opts.plainListener)
    log.warn({ port: opts.port }, '--plain-listener: tokens also travel in the clear on the plain listener');
  for (const l of listeners) l.server.maxConnections = opts.maxConnections;
  const ports: RunningBroker['ports'] = {};

  let identityOf: RunningBroker['identityOf'] = () => undefined;
  if (opts.auth) {
    const { store, acl, insecure } = opts.auth;
    const who = new WeakMap<object, Identity>();
    identityOf = (clientId) => {
      const client = (aedes as unknown as { clients: Record<string, object> }).clients[clientId];
      const id = client && who.get(client);
      return id && id.username !== 'anonymous' ? id.username : undefined;
    };
    const audit = opts.auth.audit;
    const sessions = new AgentSessions(aedes);
    const warnings = new BrokerLogLimiter();
    const requestRate = new RateLimiter(opts.auth.requestsPerMinute, Math.max(10, Math.ceil(opts.auth.requestsPerMinute / 30)));
    // Reconnect storms and password guessing: an address with too many failed logins waits.
    const failures = new RateLimiter(AUTH_FAILURES_PER_MINUTE);
    const bannedUntil = new Map<string, number>();
    const addressOf = (client: { conn?: unknown }) =>
      String((client.conn as { remoteAddress?: string } | undefined)?.remoteAddress ?? 'unknown');
    const failed = (client: { conn?: unknown; id: string }) => {
      const address = addressOf(client);
      if (failures.take(address) > 0 && !bannedUntil.has(address)) {
        bannedUntil.set(address, Date.now() + AUTH_BAN_MS);
        log.warn({ address, banMs: AUTH_BAN_MS }, 'address banned: too many failed logins');
        audit?.record({
          who: address,
          action: 'connect.refused',
          outcome: 'banned',
          detail: `over ${AUTH_FAILURES_PER_MINUTE} failed logins a minute; banned for ${AUTH_BAN_MS / 1000} s`,
        });
      }
    };
    aedes.preConnect = (client, _packet, done) => {
      const address = addressOf(client);
      const until = bannedUntil.get(address);
      if (until !== undefined && until > Date.now())
        return done(refusal('banned for too many failed logins', CONNACK.notAuthorized) as never, false);
      if (until !== undefined) bannedUntil.delete(address);
      done(null, true);
    };
    const authenticate = async (
      client: Parameters<NonNullable<typeof aedes.authenticate>>[0],
      username: string | undefined,
      password: Buffer | undefined,
      done: Parameters<NonNullable<typeof aedes.authenticate>>[3],
    ) => {
      if (!username) {
        if (insecure) {
          who.set(client, { username: 'anonymous', role: 'controller', name: 'anonymous' });
          return done(null, true);
        }
        log.warn({ clientId: client.id }, 'connection refused: no credentials');
        failed(client);
        audit?.record({ who: client.id, action: 'connect.refused', outcome: 'denied', detail: 'no credentials' });
        return done(refusal('credentials required', CONNACK.notAuthorized) as never, false);
      }
      const identity = await store.verifyAsync(username, password?.toString('utf8') ?? '');
      if (!identity) {
        log.warn({ clientId: client.id, username }, 'connection refused: bad credentials');
        failed(client);
        audit?.record({ who: username, action: 'connect.refused', outcome: 'denied', detail: `bad credentials (client id ${client.id})` });
        return done(refusal('bad username or password', CONNACK.badCredentials) as never, false);
      }
      const badId = checkClientId(identity, client.id);
      if (badId) {
        log.warn({ clientId: client.id, username }, `connection refused: ${badId}`);
        audit?.record({ who: username, action: 'connect.refused', outcome: 'denied', detail: badId });
        return done(refusal(badId, CONNACK.identifierRejected) as never, false);
      }
      const agentNode = identity.role === 'agent' ? identity.name : client.id.startsWith('cutter-agent-') ? client.id.slice(13) : null;
      if (agentNode !== null) {
        const admission = sessions.admit(client as never, agentNode);
        if ('refuse' in admission) {
          const suppressed = warnings.take('node-in-use');
          if (suppressed !== null) {
            log.warn(
              { clientId: client.id, node: agentNode, newcomer: addressOf(client), suppressed },
              `connection refused: ${admission.refuse}`,
            );
            audit?.record({
              who: username,
              action: 'connect.refused',
              outcome: 'denied',
              detail: `${admission.refuse} (from ${addressOf(client)})`,
            });
          }
          return done(refusal(admission.refuse, CONNACK.identifierRejected) as never, false);
        }
        if (admission.takeover) log.warn({ clientId: client.id, node: agentNode }, `agent session taken over: ${admission.takeover}`);
      }
      who.set(client, identity);
      done(null, true);
    };
    // Aedes calls this from a setImmediate without a catch: a throw here would end the server.
    // Aedes ignores the answer for a client that closed meanwhile (lib/handlers/connect.js).
    aedes.authenticate = (client, username, password, done) => {
      authenticate(client, username, password, done).catch((err) => {
        log.error({ clientId: client.id, err }, 'authentication failed');
        done(refusal('authentication failed', CONNACK.notAuthorized) as never, false);
      });
    };

    aedes.authorizePublish = (client, packet, done) => {
      if (packet.topic.startsWith('$SYS/')) return done(new Error("$SYS topics are the broker's"));
      const identity = client && who.get(client);
      if (!client || !identity) return done(null);
      // A client flooding the controller with requests is cut, before the controller pays for them.
      if (identity.role !== 'controller' || identity.name === 'anonymous') {
        if (acl.t.idFrom(packet.topic, 'requests') !== null && requestRate.take(client.id) > 0) {
          log.warn({ username: identity.username, clientId: client.id, perMinute: requestRate.perMinute }, 'client cut: too many requests');
          audit?.record({
            who: identity.name === 'anonymous' ? client.id : identity.username,
            action: 'rate.limited',
            outcome: 'disconnected',
            topic: packet.topic,
            detail: `over ${requestRate.perMinute} requests per minute`,
          });
          return done(new Error('too many requests'));
        }
      }
      const why = denyPublish(identity, client.id, packet.topic, packet.payload as Buffer, acl);
      if (why) {
        log.warn({ username: identity.username, clientId: client.id, topic: packet.topic, why }, 'publish denied');
        audit?.record({ who: identity.username, action: 'publish.denied', outcome: 'denied', topic: packet.topic, detail: why });
        return done(new Error(why));
      }
      const q = quarantineOf(identity, packet.topic, packet.payload as Buffer, acl);
      if (q) {
        // Stateful: a correct agent behind the controller's state may send it; re-routed, never a
        // disconnect (an error here would close the connection, and MQTT.js would resend it forever).
        const suppressed = warnings.take(`quarantine/${q.what}`);
        if (suppressed !== null) {
          log.warn(
            { username: identity.username, clientId: client.id, topic: packet.topic, why: q.why, suppressed },
            'publish quarantined',
          );
          audit?.record({
            who: identity.username,
            action: 'publish.denied',
            outcome: 'quarantined',
            topic: packet.topic,
            detail: `${q.why}${suppressed ? ` (${suppressed} more not logged)` : ''}`,
          });
        }
        packet.topic = acl.t.quarantine(identity.name, q.what, q.task);
        packet.retain = false;
      }
      done(null);
    };
    aedes.authorizeSubscribe = (client, sub, done) => {
      const identity = client && who.get(client);
      if (!identity) return done(null, sub);
      const why = denySubscribe(identity, client.id, sub.topic, acl);
      if (why) {
        log.warn({ username: identity.username, clientId: client.id, topic: sub.topic, why }, 'subscribe denied');
        audit?.record({ who: identity.username, action: 'subscribe.denied', outcome: 'denied', topic: sub.topic, detail: why });
        return done(null, null as never);
      }
      done(null, sub);
    };
  }

  const counters = { messagesIn: 0, messagesOut: 0, bytesIn: 0 };
  aedes.on('publish', (packet, client) => {
    if (!client) return;
    counters.messagesIn++;
    counters.bytesIn += packet.payload?.length ?? 0;
  });
  // Called once per delivery to each subscriber (Aedes' forwarding hook); it only counts.
  aedes.authorizeForward = (_client, packet) => {
    counters.messagesOut++;
    return packet;
  };
  aedes.on('client', (client) => log.debug({ clientId: client.id }, 'client connected'));
  aedes.on('clientDisconnect', (client) => log.debug({ clientId: client.id }, 'client disconnected'));
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err }, 'client error'));
  aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err }, 'connection error'));

  const internalPort = await listenOn(internal, '127.0.0.1', 0);
  const connectInProcess = () => {
    const [client, server] = duplexPair();
    Object.assign(server, { remoteAddress: 'in-process', remotePort: 0 });
    aedes.handle(server as unknown as Socket);
    return client;
  };
  return {
    aedes,
    internalPort,
    connectInProcess,
    ports,
    identityOf: (clientId) => identityOf(clientId),
    addressOf: (clientId) => remoteAddressOf((aedes as unknown as { clients: Record<string, { conn?: unknown }> }).clients[clientId]),
    stats: () => ({ clients: aedes.connectedClients, ...counters }),
    async listen() {
      const bound = await Promise.all(listeners.map((l) => listenOn(l.server, opts.host, l.port)));
      // Logged once every listener is bound: whoever waits for the first line can dial any of them.
      listeners.forEach((l, i) => {
        ports[l.scheme] = bound[i];
        log.info({ scheme: l.scheme, host: opts.host, port: bound[i], ...(l.path ? { path: l.path } : {}) }, 'broker listening');
      });
      return bound[0] ?? 0;
    },
    async close() {
      await new Promise<void>((resolve) => {
        let open = listeners.length + 1;
        const done = () => --open === 0 && resolve();
        for (const l of listeners) {
          l.server.listening ? l.server.close(done) : done();
          l.close?.();
        }
        internal.close(done);
        // server.close waits for open sockets; aedes.close ends them.
        aedes.close(() => undefined);
      });
      await opts.cluster?.close();
    },
  };
}
