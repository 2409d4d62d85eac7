/**
 * Server extensions (Zigbee2MQTT's `lib/extension/extension.ts` shape): Home Assistant discovery,
 * Prometheus metrics, the dashboard. Each observes the mesh through the controller's event bus
 * (controller/events.ts) and its registry and task store; the controller knows nothing of them.
 */
import type { RunningBroker } from '../../broker/broker.js';
import type { Controller } from '../controller.js';
import type { Logger } from '../../shared/logger.js';

export interface Extension {
  readonly name: string;
  /** Starts the extension. @throws when it cannot (a bad URL, a port in use): the server stops with that message. */
  start(): Promise<void>;
  /** Stops it; never throws. */
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
  prefix: string;
  log: Logger;
}
