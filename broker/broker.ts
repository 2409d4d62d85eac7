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
import { guardSocket } from './packet-guard.js';

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
