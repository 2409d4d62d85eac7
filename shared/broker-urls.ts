/**
 * Several broker URLs in one setting (`--broker`, CUTTER_BROKER): `mqtt://a:1883,mqtt://b:1883`.
 * A client dials the first and, each time the connection fails or drops, the next one in turn
 * (MQTT.js's `servers` option: its reconnect rotates through the list, mqtt/build/lib/connect/index.js).
 * For a broker backbone with several members (an EMQX cluster, Aedes servers clustered on Redis),
 * and for servers standing by behind one PostgreSQL (controller/leadership.ts).
 */
import { z } from 'zod';

/** At most this many URLs in one setting. */
export const MAX_BROKER_URLS = 16;

/** The URLs of a setting, trimmed, empty parts dropped. */
export function brokerUrls(value: string): string[] {
  return value
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
}

const isUrl = (u: string): boolean => {
  try {
    new URL(u);
    return true;
  } catch {
    return false;
  }
};

/** A broker URL or a comma-separated list of them (each a URL; at most MAX_BROKER_URLS). */
export const BrokerUrlsSchema = z
  .string()
  .max(8_000)
  .refine((v) => {
    const urls = brokerUrls(v);
    return urls.length > 0 && urls.length <= MAX_BROKER_URLS && urls.every(isUrl);
  }, `must be a broker URL (mqtt://host:1883) or up to ${MAX_BROKER_URLS} of them separated by commas`);

/** Default ports of the URL schemes (MQTT: 1883, MQTT over TLS: 8883; WebSocket: 80/443). */
const PORTS: Record<string, number> = { mqtt: 1883, tcp: 1883, mqtts: 8883, ssl: 8883, tls: 8883, ws: 80, wss: 443 };

/** The port a broker URL dials: its own, else its scheme's default (1883 for an unknown scheme). */
export function brokerPort(url: URL): number {
  return url.port ? Number(url.port) : (PORTS[url.protocol.replace(/:$/, '')] ?? 1883);
}

/**
 * MQTT.js's `servers` option for a list of URLs (host, port, protocol per URL; a WebSocket path is
 * the first URL's for all). @throws TypeError for a URL that does not parse (the config check catches it first).
 */
export function serversOption(urls: string[]): {
  servers: { host: string; port: number; protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' }[];
  protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss';
  path?: string;
} {
  const servers = urls.map((u) => {
    const p = new URL(u);
    const protocol = p.protocol.replace(/:$/, '') as 'mqtt' | 'mqtts' | 'ws' | 'wss';
    return { host: p.hostname, port: brokerPort(p), protocol };
  });
  const first = new URL(urls[0]!);
  return { servers, protocol: servers[0]!.protocol, ...(first.pathname && first.pathname !== '/' ? { path: first.pathname } : {}) };
}
