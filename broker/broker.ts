/**
 * The embedded MQTT broker: Aedes 1.2 (MQTT 3.1.1) on a TCP listener.
 *
 * Aedes 1.x has no default export and must be created with `Aedes.createBroker()` (protocol-facts
 * §5.6). Retained messages and last wills work out of the box with the in-memory persistence.
 * `drainTimeout` is set so one frozen subscriber cannot stall delivery to everyone (Aedes docs:
 * "Without a timeout, one slow client can block message delivery to all other clients").
 */
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../shared/logger.js';

export interface BrokerOptions {
  /** Interface to listen on, e.g. `0.0.0.0` or `127.0.0.1`. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  log: Logger;
}

export interface RunningBroker {
  aedes: Aedes;
  /** The port actually bound. */
  port: number;
  /** Stops accepting, disconnects every client and closes Aedes. */
  close(): Promise<void>;
}

/**
 * Starts the broker and resolves once it listens.
 * @throws the listen error (e.g. EADDRINUSE) with the address in the message.
 */
export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const log = opts.log.child({ component: 'broker' });
  const aedes = await Aedes.createBroker({ drainTimeout: 10_000, heartbeatInterval: 60_000 });
  // Nagle's algorithm with delayed ACKs adds ~40 ms to each small request/reply round trip.
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });

  aedes.on('client', (client) => log.debug({ clientId: client.id }, 'client connected'));
  aedes.on('clientDisconnect', (client) => log.debug({ clientId: client.id }, 'client disconnected'));
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`broker cannot listen on ${opts.host}:${opts.port}: ${err.message}`)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  log.info({ host: opts.host, port }, 'broker listening');

  return {
    aedes,
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // server.close waits for open sockets; aedes.close ends them.
        aedes.close(() => undefined);
      });
    },
  };
}
