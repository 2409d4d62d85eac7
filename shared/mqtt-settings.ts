/**
 * Process-wide MQTT client settings, in a module of their own so that the CLI's entry can set them
 * without loading MQTT.js (shared/mqtt.ts reads them when it connects).
 */

/** Whether clients of this process use mqtt-packet's number cache (see `usePacketNumberCache`). */
let numberCache = true;

/**
 * Chooses, for the whole process, whether MQTT.js writes packet ids and lengths from mqtt-packet's
 * cache: 65,536 small Buffers made on the first packet written (~125 ms of CPU and the garbage
 * after it), which pays off only in a process that writes many packets (the server, whose
 * embedded broker shares the setting: it is mqtt-packet's module-wide `cacheNumbers`). The CLI
 * and the agent turn it off. Call before the first connect; MQTT.js never turns it back on.
 */
export function usePacketNumberCache(on: boolean): void {
  numberCache = on;
}

/** The choice made by `usePacketNumberCache` (default true, MQTT.js's own default). */
export function packetNumberCache(): boolean {
  return numberCache;
}
