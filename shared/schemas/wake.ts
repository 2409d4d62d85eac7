/**
 * Wake-on-LAN relayed through an awake node (issue 17: "the server, or an online agent on the same
 * LAN, sends the magic packet"). The server cannot reach a LAN that is not one of its own networks
 * (routers drop directed broadcasts from other subnets, and a server in a container's bridge
 * network reaches none), so it asks an online agent that announced the same broadcast address as
 * the sleeping node. The agent sends the packet only to a broadcast address of its own networks
 * (shared/wol.ts `isBroadcastAddress`), so the message cannot aim datagrams at an arbitrary host.
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { IPV4_PATTERN, MAC_PATTERN } from './node.js';

/** On `nodes/{relay}/wake` (server → agent, QoS 1, not retained). */
export const WakeCommandSchema = z.object({
  v: z.literal(1),
  /** The sleeping node this packet wakes (for the relay's log). */
  node: IdSchema,
  /** Its MAC, lower-case, `:`-separated. */
  mac: z.string().regex(MAC_PATTERN, 'six lower-case hex pairs joined by :'),
  /** Its LAN's IPv4 broadcast address, as it announced it. */
  broadcast: z.string().regex(IPV4_PATTERN, 'an IPv4 address'),
  /** UDP port (Wake-on-LAN's usual one is 9). */
  port: z.number().int().min(1).max(65535),
});

export type WakeCommand = z.infer<typeof WakeCommandSchema>;
