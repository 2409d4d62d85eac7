/**
 * Server extensions (Zigbee2MQTT's `lib/extension/extension.ts` shape): every optional part of the
 * server — Home Assistant discovery, Prometheus metrics, the dashboard and its HTTP listener, the
 * file-transfer audit, the port proxy, the Ollama-compatible API. Each observes the mesh through
 * the controller's event bus (controller/events.ts), its registry and task store, or its own MQTT
 * client; the controller knows nothing of them. controller/server.ts builds the list from the
 * config (controller/extensions/index.ts) and starts and stops them in order.
 */
import type { Duplex } from 'node:stream';
import type { RunningBroker } from '../../broker/broker.js';
import type { AuditLog } from '../../shared/audit.js';
import type { VerifyToken } from './http-auth.js';
import type { Logger } from '../../shared/logger.js';
import type { Controller } from '../controller.js';

export interface Extension {
  readonly name: string;
  /** Names of extensions this one serves or reads (the HTTP listener needs metrics and the dashboard): skipped when one of them failed. */
  readonly requires?: readonly string[];
  /**
   * Start only once the embedded broker accepts outside clients (the Ollama-compatible API, the
   * last part started, as before the extensions); the others start before, so they see every node.
   */
  readonly afterListen?: boolean;
  /**
   * Starts the extension.
   * @throws when it cannot (a bad URL, a port in use): the server logs it with its stack and runs on without it.
   */
  start(): Promise<void>;
  /** Stops it; also called after a failed start, so it must cope with a half-started state. Should not throw (a throw is logged). */
  stop(): Promise<void>;
}

/** What every extension gets from the server. */
export interface ExtensionContext {
  controller: Controller;
  /** The embedded broker; absent with an external broker (`cutter server --broker`). */
  broker?: RunningBroker;
  /** URL and credentials of the broker the controller uses (the embedded broker's loopback listener, or the external one). */
  brokerUrl: string;
  username?: string;
  password?: string;
  /** The embedded broker's in-process link (no socket on the path); absent with an external broker. */
  streamBuilder?: () => Duplex;
  /** The audit log (embedded broker only: with an external broker the server does not see connections). */
  audit?: AuditLog;
  /** The identity a client id authenticated as on the embedded broker, or undefined. */
  whoIs(clientId: string): string | undefined;
  /** Exempts this MQTT client id from the per-identity submit rate limit (a gateway that submits for many users). */
  exemptFromRateLimit(clientId: string): void;
  prefix: string;
  log: Logger;
  /** Checks a token (the embedded broker's IdentityStore.verify); absent with an external broker. */
  verifyToken?: VerifyToken;
  /** `--insecure`: HTTP surfaces beyond loopback need no token. */
  insecure?: boolean;
}
