/**
 * MQTT clients of the server's own parts beside the controller (file-transfer audit, port proxy):
 * the controller's credentials, a clean session, routes set before CONNACK, and — on the embedded
 * broker — its in-process link instead of a loopback socket.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/logger.js';
import { MessageRouter, connectMqtt, type MqttClient } from '../shared/mqtt.js';

/** How a server part reaches the mesh's broker. */
export interface ServerConnection {
  url: string;
  username?: string;
  password?: string;
  /** The embedded broker's in-process link (absent with an external broker). */
  streamBuilder?: () => Duplex;
}

/**
 * Connects `cutter-controller-{name}-{random}`, lets `routes` register its handlers on a router
 * before the first message can arrive, and subscribes them.
 * @throws CutterError BROKER_UNREACHABLE (see connectMqtt).
 */
export async function connectServerClient(
  name: string,
  conn: ServerConnection,
  log: Logger,
  routes: (router: MessageRouter) => void,
): Promise<MqttClient> {
  let router!: MessageRouter;
  const client = await connectMqtt({
    url: conn.url,
    streamBuilder: conn.streamBuilder,
    clientId: `cutter-controller-${name}-${randomBytes(4).toString('hex')}`,
    clean: true,
    username: conn.username,
    password: conn.password,
    log,
    onClient: (c) => {
      router = new MessageRouter(c, log);
      routes(router);
    },
  });
  await router.subscribeAll();
  return client;
}
