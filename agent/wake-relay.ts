/**
 * Wake-on-LAN for another node on this node's LAN (issue 17: "the server, or an online agent on the
 * same LAN, sends the magic packet"): the server asks with a WakeCommand on `nodes/{this node}/wake`
 * (shared/schemas/wake.ts; only the server may publish there, broker/acl.ts) when the sleeping
 * node's LAN is not one of the server's networks, or when it runs with `--wake-via agent`.
 *
 * The packet goes only to a broadcast address of this machine's own networks (shared/wol.ts
 * `isBroadcastAddress`), so the message cannot aim datagrams at an arbitrary host; `--wake-address`
 * and `--wake-port` send it elsewhere instead (tests aim it at 127.0.0.1). Fire and forget, like
 * every magic packet: the server learns that it worked when the node's agent comes online.
 */
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { WakeCommand } from '../shared/schemas/index.js';
import { isBroadcastAddress, sendMagicPacket } from '../shared/wol.js';

export interface WakeRelayOptions {
  /** Send to this IPv4 address instead of the command's broadcast address (agent `--wake-address`). */
  address?: string;
  /** Send to this UDP port instead of the command's (agent `--wake-port`). */
  port?: number;
  log: Logger;
}

export class WakeRelay {
  constructor(private readonly opts: WakeRelayOptions) {}

  /** Sends the packet `command` asks for, or logs why not; never throws. */
  async handle(command: WakeCommand): Promise<void> {
    const { log } = this.opts;
    const address = this.opts.address ?? command.broadcast;
    const port = this.opts.port ?? command.port;
    const broadcast = isBroadcastAddress(address);
    const ids = { for: command.node, mac: command.mac, address, port };
    if (this.opts.address === undefined && !broadcast) {
      log.warn(ids, "Wake-on-LAN: not sending a magic packet for another node: its broadcast address is not on this machine's networks");
      return;
    }
    try {
      await sendMagicPacket(command.mac, { address, port, broadcast });
      log.info(ids, 'Wake-on-LAN: sent a magic packet for a node on this LAN');
    } catch (err) {
      log.warn({ ...ids, err: errorMessage(err) }, 'Wake-on-LAN: cannot send a magic packet for a node on this LAN');
    }
  }
}
