/**
 * Wake-on-LAN: the magic packet and its sender, and the IPv4 arithmetic both ends need (an agent
 * announces the broadcast address of its interface; the server checks an address against its own).
 *
 * Protocol facts (AMD, "Magic Packet Technology" white paper, publication 20213, 1995 — the
 * origin of the format; as summarised with sources in /work/shared/reference/nodes-gpus-lending-facts.md
 * §6: routerhax.com's Wake-on-LAN generator, dorkbrain.com's "Magic Packet / Wake-on-LAN
 * construction", Wikipedia "Wake-on-LAN"): the payload is 6 bytes of 0xFF followed by the target's
 * 48-bit MAC repeated 16 times, 102 bytes; the NIC scans any frame for that pattern, so it travels
 * as a UDP datagram, usually to port 9, sent to the subnet's directed broadcast address (routers
 * drop directed broadcasts from other subnets by default) or to 255.255.255.255 (one interface).
 * Node's `dgram`: `setBroadcast(true)` only after bind (before, it throws EBADF; verified there).
 */
import { networkInterfaces } from 'node:os';
import { CutterError } from './errors.js';
import { IPV4_PATTERN } from './schemas/node.js';

/** Bytes of a magic packet without a SecureOn password: 6 + 16 × 6. */
export const MAGIC_PACKET_BYTES = 102;
/** The UDP port magic packets usually go to (the "discard" port). */
export const WOL_DEFAULT_PORT = 9;
/** The limited broadcast address: every host on the interface's link, never routed. */
export const LIMITED_BROADCAST = '255.255.255.255';

/**
 * Parses a MAC address written as six hex pairs separated by `:` or `-`, or as 12 hex digits.
 * @param text e.g. `02:FC:00:00:00:01`, `02-fc-00-00-00-01`, `02fc00000001`.
 * @returns the 6 bytes.
 * @throws CutterError INVALID_REQUEST when it is not a MAC, or is all zeros (a loopback or virtual
 *   interface's placeholder: no NIC has it) or a multicast address (low bit of the first byte set).
 */
export function parseMac(text: string): Buffer {
  const t = text.trim();
  const hex = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(t) ? t.replace(/[:-]/g, '') : /^[0-9a-fA-F]{12}$/.test(t) ? t : null;
  if (!hex) throw new CutterError('INVALID_REQUEST', `"${text}" is not a MAC address: write six hex pairs, e.g. 02:fc:00:00:00:01`);
  const mac = Buffer.from(hex, 'hex');
  if (mac.every((b) => b === 0)) throw new CutterError('INVALID_REQUEST', `${text} is the all-zero MAC: no network card has it`);
  if ((mac[0]! & 1) === 1) throw new CutterError('INVALID_REQUEST', `${text} is a multicast MAC: a network card's own MAC is unicast`);
  return mac;
}

/** A MAC's 6 bytes as cutter writes it (`02:fc:00:00:00:01`). */
export function formatMac(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * The magic packet for a MAC: 6 × 0xFF, then the MAC 16 times (AMD "Magic Packet Technology").
 * @param mac as `parseMac` reads it.
 * @returns MAGIC_PACKET_BYTES (102) bytes.
 * @throws CutterError INVALID_REQUEST for a MAC `parseMac` refuses.
 */
export function magicPacket(mac: string): Buffer {
  const bytes = parseMac(mac);
  const packet = Buffer.alloc(MAGIC_PACKET_BYTES, 0xff);
  for (let i = 0; i < 16; i++) bytes.copy(packet, 6 + i * 6);
  return packet;
}

/** An IPv4 dotted quad as an unsigned 32-bit number. */
function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

/** An unsigned 32-bit number as a dotted quad. */
function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/**
 * The directed broadcast address of an IPv4 subnet: `address | ~netmask`
 * (192.0.2.2 / 255.255.255.0 → 192.0.2.255, as `ip addr` shows it after `brd`).
 * @throws CutterError INVALID_REQUEST when either is not a dotted-quad IPv4 address.
 */
export function broadcastOf(address: string, netmask: string): string {
  if (!IPV4_PATTERN.test(address) || !IPV4_PATTERN.test(netmask))
    throw new CutterError('INVALID_REQUEST', `${address}/${netmask} is not an IPv4 address and netmask`);
  return intToIpv4((ipv4ToInt(address) | ~ipv4ToInt(netmask)) >>> 0);
}

/** One IPv4 address of an interface, as `os.networkInterfaces()` lists it. */
export interface Ipv4Interface {
  address: string;
  netmask: string;
  mac: string;
  internal: boolean;
  family: string | number;
}

/** The IPv4, non-internal addresses of `os.networkInterfaces()`, with a real (non-zero) MAC. */
export function externalIpv4(interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): Ipv4Interface[] {
  const out: Ipv4Interface[] = [];
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      // Node 18.0-18.3 said `family: 4`; later versions say 'IPv4'.
      const v4 = a.family === 'IPv4' || (a.family as unknown) === 4;
      if (v4 && !a.internal && a.mac !== '00:00:00:00:00:00') out.push(a as Ipv4Interface);
    }
  }
  return out;
}

/**
 * Whether `address` is a broadcast address as seen from this machine: the limited broadcast, or
 * the directed broadcast of one of its own IPv4 subnets.
 * @param interfaces default: `os.networkInterfaces()` (tests pass their own).
 */
export function isBroadcastAddress(address: string, interfaces?: ReturnType<typeof networkInterfaces>): boolean {
  if (address === LIMITED_BROADCAST) return true;
  return externalIpv4(interfaces).some((a) => broadcastOf(a.address, a.netmask) === address);
}

/** Where a magic packet goes. */
export interface WakeTarget {
  /** IPv4 address: a broadcast address, or (tests, routed setups) a unicast one. */
  address: string;
  /** UDP port, 1-65535 (usually 9, WOL_DEFAULT_PORT). */
  port: number;
  /** Set SO_BROADCAST; default: whether `isBroadcastAddress(address)`. */
  broadcast?: boolean;
}

/**
 * Sends one magic packet for `mac` as a UDP datagram from an ephemeral port.
 * @returns the packet sent (102 bytes).
 * @throws CutterError INVALID_REQUEST for a bad MAC, address or port; WAKE_FAILED when the
 *   datagram cannot be sent (no route, EACCES for a broadcast not allowed here …), with the OS's reason.
 */
export async function sendMagicPacket(mac: string, target: WakeTarget): Promise<Buffer> {
  const packet = magicPacket(mac);
  if (!IPV4_PATTERN.test(target.address))
    throw new CutterError('INVALID_REQUEST', `"${target.address}" is not an IPv4 address: Wake-on-LAN goes to an IPv4 broadcast address`);
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65_535)
    throw new CutterError('INVALID_REQUEST', `${target.port} is not a UDP port (1-65535; Wake-on-LAN usually uses 9)`);
  const broadcast = target.broadcast ?? isBroadcastAddress(target.address);
  // dgram loads here, on the first wake: every agent imports this file for its heartbeat's wake info.
  const { createSocket } = await import('node:dgram');
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        try {
          if (broadcast) socket.setBroadcast(true); // only after bind: before, EBADF
          socket.send(packet, target.port, target.address, (err) => (err ? reject(err) : resolve()));
        } catch (err) {
          reject(err);
        }
      });
    });
  } catch (err) {
    throw new CutterError(
      'WAKE_FAILED',
      `cannot send the magic packet to ${target.address}:${target.port}: ${(err as Error).message}: check the address is one this machine can send to`,
    );
  } finally {
    socket.close();
  }
  return packet;
}

/**
 * What an agent announces for Wake-on-LAN (NodeStatus `wake`): the MAC and directed broadcast
 * address of the IPv4 interface whose address `localAddress` is (the MQTT socket's own end, so
 * the interface that faces the broker), else of the first non-internal IPv4 interface.
 * @param localAddress the socket's `localAddress` (`::ffff:` prefix allowed); undefined when unknown.
 * @param interfaces default: `os.networkInterfaces()`.
 * @returns undefined when the machine has no non-internal IPv4 interface with a real MAC (or the
 *   connection is over loopback and there is none): nothing to announce.
 */
export function wakeInfoFor(
  localAddress: string | undefined,
  interfaces?: ReturnType<typeof networkInterfaces>,
): { mac: string; broadcast: string } | undefined {
  const list = externalIpv4(interfaces);
  const local = localAddress?.replace(/^::ffff:/, '');
  const a = list.find((i) => i.address === local) ?? list[0];
  if (!a) return undefined;
  try {
    return { mac: formatMac(parseMac(a.mac)), broadcast: broadcastOf(a.address, a.netmask) };
  } catch {
    return undefined; // a MAC parseMac refuses (multicast): nothing a magic packet could wake
  }
}

/** How long `WakeInfoCache` keeps an answer for one local address, ms. */
export const WAKE_INFO_TTL_MS = 60_000;

/**
 * `wakeInfoFor()` of the heartbeat, remembered per local address for `ttlMs`.
 *
 * Each call lists the interfaces (`os.networkInterfaces()`: getifaddrs(3) and an object per
 * address) and parses a MAC: about 0.1-1 ms at one beat a second, where the code stays cold, and
 * a good part of an idle agent's CPU (bench/profile.md, "An idle agent's CPU and peak"). The interface
 * facing the broker changes with the socket's local address (a reconnect after the network
 * changed), which is the key; a new MAC or netmask on the same address shows within `ttlMs`.
 */
export class WakeInfoCache {
  private key: string | undefined = undefined;
  private value: ReturnType<typeof wakeInfoFor> = undefined;
  private at = -Infinity;

  /**
   * @param ttlMs longest age of an answer, ms.
   * @param now clock, ms (tests pass their own).
   * @param list the interfaces (tests pass their own).
   */
  constructor(
    private readonly ttlMs = WAKE_INFO_TTL_MS,
    private readonly now: () => number = () => performance.now(),
    private readonly list: () => ReturnType<typeof networkInterfaces> = networkInterfaces,
  ) {}

  /** `wakeInfoFor(localAddress)`, from the last answer when it is for the same address and younger than the TTL. */
  get(localAddress: string | undefined): ReturnType<typeof wakeInfoFor> {
    const t = this.now();
    if (localAddress !== this.key || t - this.at >= this.ttlMs) {
      this.value = wakeInfoFor(localAddress, this.list());
      this.key = localAddress;
      this.at = t;
    }
    return this.value;
  }
}
