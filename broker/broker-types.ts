/**
 * The embedded broker's options, its running handle and its counters (broker/broker.ts builds
 * them): the shapes the server and the extensions hold it by.
 */
import type { Duplex } from 'node:stream';
import type { Aedes } from 'aedes';
import type { AuditLog } from '../shared/audit.js';
import type { Logger } from '../shared/logger.js';
import type { AclContext } from './acl.js';
import type { ClusterParts } from './cluster.js';
import type { IdentityStore } from './identities.js';
import type { Listener, TlsSettings, WsSettings } from './listeners.js';

export interface BrokerOptions {
  /** Interface to listen on, e.g. `0.0.0.0` or `127.0.0.1`. */
  host: string;
  /** Redis-backed message bus and persistence (broker/cluster.ts): absent = one in-memory instance. */
  cluster?: ClusterParts;
  /** TCP port; 0 picks a free one. */
  port: number;
  log: Logger;
  /** Largest packet accepted, bytes (checked before it is buffered). */
  maxPacketBytes: number;
  /** Largest first packet (CONNECT), bytes. */
  maxConnectBytes: number;
  /** Most concurrent connections on each public listener. */
  maxConnections: number;
  /** Also listen for `mqtts://` (same host) with this certificate. */
  tls?: TlsSettings;
  /** Also listen for MQTT over WebSocket (same host, path `/mqtt`). */
  ws?: WsSettings;
  /**
   * With `tls`, still open the plain TCP listener (and a plain `ws://` one): off by default, so a
   * TLS-configured broker accepts no password in the clear.
   */
  plainListener?: boolean;
  /** How long delivery waits for a subscriber's socket to drain before that subscriber is cut, ms. */
  drainTimeoutMs: number;
  /** Bytes a network client may have waiting unsent before it is cut as too slow a reader (default 32 MiB; packet-guard.ts). */
  maxQueuedBytes?: number;
  /** Authentication and authorization; absent = no checks at all (tests of the broker alone). */
  auth?: {
    store: IdentityStore;
    acl: AclContext;
    /** Anonymous connections are let in, with full rights. */
    insecure: boolean;
    /** Where refusals and denials are recorded. */
    audit?: AuditLog;
    /** Requests one client may publish a minute (bursts of a 30th of it, at least 10) before it is cut. */
    requestsPerMinute: number;
  };
}

/** Deepest topic accepted: cutter's own are 5 levels, Home Assistant discovery's 5. */
export const MAX_TOPIC_LEVELS = 32;

export interface RunningBroker {
  /** The username a connected client id authenticated as (undefined: unknown or anonymous). */
  identityOf(clientId: string): string | undefined;
  /**
   * The remote address of the connected client with this id (IPv4-mapped addresses unwrapped), as
   * the broker sees it: what the port proxy dials for a node (controller/port-proxy.ts). Undefined
   * when not connected.
   */
  addressOf(clientId: string): string | undefined;
  aedes: Aedes;
  /**
   * A new in-process connection to the broker (no socket): the stream an MQTT.js client in this
   * process dials through (`connectMqtt({ streamBuilder })`). Authenticated like any client.
   */
  connectInProcess(): Duplex;
  /** Port of the loopback-only listener the controller uses before the public one opens. */
  internalPort: number;
  /** Ports bound by `listen()`, by scheme (`mqtt`, and `mqtts`/`ws`/`wss` when configured). */
  ports: Partial<Record<Listener['scheme'], number>>;
  /**
   * Opens the public listeners (TCP, and TLS/WebSocket when configured). Called once the controller is subscribed, so that no event an
   * agent re-sends after a restart reaches a broker with nobody listening for it.
   * @returns the plain TCP port actually bound, or with TLS and no plain listener the first one bound (all are in `ports`).
   * @throws the listen error (e.g. EADDRINUSE) with the address in the message.
   */
  listen(): Promise<number>;
  /** Stops accepting, disconnects every client and closes Aedes. */
  close(): Promise<void>;
  /** Counters since start, for `/metrics` (controller/extensions/metrics.ts). */
  stats(): BrokerStats;
}

/** What the broker counted since it started. */
export interface BrokerStats {
  /** Clients connected now. */
  clients: number;
  /** PUBLISH packets received from clients (not the broker's own `$SYS` messages). */
  messagesIn: number;
  /** PUBLISH packets delivered to subscribers (one per subscriber). */
  messagesOut: number;
  /** Payload bytes of `messagesIn`. */
  bytesIn: number;
}
