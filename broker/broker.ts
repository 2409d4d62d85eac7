/**
 * The embedded MQTT broker: Aedes 1.2 (MQTT 3.1.1) on a TCP listener.
 *
 * Aedes 1.x has no default export and must be created with `Aedes.createBroker()` (protocol-facts
 * §5.6). Retained messages and last wills work out of the box with the in-memory persistence.
 * `drainTimeout` is set so one frozen subscriber cannot stall delivery to everyone (Aedes docs:
 * "Without a timeout, one slow client can block message delivery to all other clients").
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../shared/logger.js';
import { denyPublish, denySubscribe, checkClientId, type AclContext } from './acl.js';
import type { Identity, IdentityStore } from './identities.js';
import { guardSocket } from './packet-guard.js';

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
const CONNACK = { identifierRejected: 2, badCredentials: 4, notAuthorized: 5 } as const;

function refusal(message: string, returnCode: number): Error {
  return Object.assign(new Error(message), { returnCode });
}

export interface BrokerOptions {
  /** Interface to listen on, e.g. `0.0.0.0` or `127.0.0.1`. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  log: Logger;
  /** Largest packet accepted, bytes (checked before it is buffered). */
  maxPacketBytes: number;
  /** Largest first packet (CONNECT), bytes. */
  maxConnectBytes: number;
  /** Most concurrent connections on the public listener. */
  maxConnections: number;
  /** How long delivery waits for a subscriber's socket to drain before that subscriber is cut, ms. */
  drainTimeoutMs: number;
  /** Authentication and authorization; absent = no checks at all (tests of the broker alone). */
  auth?: {
    store: IdentityStore;
    acl: AclContext;
    /** Anonymous connections are let in, with full rights. */
    insecure: boolean;
  };
}

/** Deepest topic accepted: cutter's own are 5 levels, Home Assistant discovery's 5. */
export const MAX_TOPIC_LEVELS = 32;

export interface RunningBroker {
  aedes: Aedes;
  /** Port of the loopback-only listener the controller uses before the public one opens. */
  internalPort: number;
  /**
   * Opens the public listener. Called once the controller is subscribed, so that no event an
   * agent re-sends after a restart reaches a broker with nobody listening for it.
   * @returns the port actually bound.
   * @throws the listen error (e.g. EADDRINUSE) with the address in the message.
   */
  listen(): Promise<number>;
  /** Stops accepting, disconnects every client and closes Aedes. */
  close(): Promise<void>;
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
  const aedes = await Aedes.createBroker({ drainTimeout: opts.drainTimeoutMs, heartbeatInterval: 60_000, maxTopicLevels: MAX_TOPIC_LEVELS, connectTimeout: 10_000 });
  const limits = { maxPacketBytes: opts.maxPacketBytes, maxConnectBytes: opts.maxConnectBytes };
  const handle = (socket: Socket) => {
    // Nagle's algorithm with delayed ACKs adds ~40 ms to each small request/reply round trip.
    socket.setNoDelay(true);
    aedes.handle(
      guardSocket(socket, limits, (reason) => log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'connection cut: packet too large')) as unknown as Socket,
    );
  };
  const internal = createServer(handle);
  const server = createServer(handle);
  server.maxConnections = opts.maxConnections;

  if (opts.auth) {
    const { store, acl, insecure } = opts.auth;
    const who = new WeakMap<object, Identity>();
    aedes.authenticate = (client, username, password, done) => {
      if (!username) {
        if (insecure) {
          who.set(client, { username: 'anonymous', role: 'controller', name: 'anonymous' });
          return done(null, true);
        }
        log.warn({ clientId: client.id }, 'connection refused: no credentials');
        return done(refusal('credentials required', CONNACK.notAuthorized) as never, false);
      }
      const identity = store.verify(username, password?.toString('utf8') ?? '');
      if (!identity) {
        log.warn({ clientId: client.id, username }, 'connection refused: bad credentials');
        return done(refusal('bad username or password', CONNACK.badCredentials) as never, false);
      }
      const badId = checkClientId(identity, client.id);
      if (badId) {
        log.warn({ clientId: client.id, username }, `connection refused: ${badId}`);
        return done(refusal(badId, CONNACK.identifierRejected) as never, false);
      }
      who.set(client, identity);
      done(null, true);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS topics are the broker\'s'));
      const identity = client && who.get(client);
      if (!client || !identity) return done(null);
      const why = denyPublish(identity, client.id, packet.topic, packet.payload as Buffer, acl);
      if (why) {
        log.warn({ username: identity.username, clientId: client.id, topic: packet.topic, why }, 'publish denied');
        return done(new Error(why));
      }
      done(null);
    };
    aedes.authorizeSubscribe = (client, sub, done) => {
      const identity = client && who.get(client);
      if (!identity) return done(null, sub);
      const why = denySubscribe(identity, client.id, sub.topic, acl);
      if (why) {
        log.warn({ username: identity.username, clientId: client.id, topic: sub.topic, why }, 'subscribe denied');
        return done(null, null as never);
      }
      done(null, sub);
    };
  }

  aedes.on('client', (client) => log.debug({ clientId: client.id }, 'client connected'));
  aedes.on('clientDisconnect', (client) => log.debug({ clientId: client.id }, 'client disconnected'));
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'));

  const internalPort = await listenOn(internal, '127.0.0.1', 0);
  return {
    aedes,
    internalPort,
    async listen() {
      const port = await listenOn(server, opts.host, opts.port);
      log.info({ host: opts.host, port }, 'broker listening');
      return port;
    },
    async close() {
      await new Promise<void>((resolve) => {
        let open = 2;
        const done = () => --open === 0 && resolve();
        server.listening ? server.close(done) : done();
        internal.close(done);
        // server.close waits for open sockets; aedes.close ends them.
        aedes.close(() => undefined);
      });
    },
  };
}
