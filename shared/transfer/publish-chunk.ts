/** Publishing a chunk frame without hanging on a connection that dies meanwhile. */
import type { MqttClient } from '../mqtt.js';

/**
 * Publishes `frame` at QoS 0.
 * @returns true once MQTT.js has written it; false at once while disconnected, or when the
 *   connection closes before the write completes (MQTT.js may then never call back). The chunk
 *   may or may not have left: the receiver's offset, asked for again, decides what is resent.
 */
export function publishChunk(client: MqttClient, topic: string, frame: Buffer): Promise<boolean> {
  if (!client.connected) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onClose = () => resolve(false);
    client.once('close', onClose);
    client.publish(topic, frame, { qos: 0 }, (err) => {
      client.off('close', onClose);
      resolve(!err);
    });
  });
}
