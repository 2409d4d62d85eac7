/**
 * Wake-on-LAN: the magic packet's bytes and MAC parsing (shared/wol.ts), the address an agent
 * announces, the registry keeping it while the node sleeps, and the "what if it were awake"
 * placement that decides an automatic wake (controller/wake.ts). The one datagram sent here goes
 * to 127.0.0.1 only.
 */
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { NodeRegistry } from '../../controller/registry.js';
import { place } from '../../controller/scheduler/place.js';
import { wokenSnapshot } from '../../controller/wake.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';
import {
  MAGIC_PACKET_BYTES,
  broadcastOf,
  formatMac,
  isBroadcastAddress,
  magicPacket,
  parseMac,
  sendMagicPacket,
  WakeInfoCache,
  wakeInfoFor,
} from '../../shared/wol.js';
import { GiB, NOW, makeStatus, req } from './scheduler-fixtures.js';

/** `os.networkInterfaces()` of a machine with loopback, a wired NIC and a Wi-Fi NIC. */
const IFACES = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [
    {
      address: '192.168.1.20',
      netmask: '255.255.255.0',
      family: 'IPv4',
      mac: 'AA:BB:CC:00:11:22',
      internal: false,
      cidr: '192.168.1.20/24',
    },
    {
      address: 'fd00::2',
      netmask: 'ffff:ffff:ffff:ffff::',
      family: 'IPv6',
      mac: 'aa:bb:cc:00:11:22',
      internal: false,
      cidr: 'fd00::2/64',
      scopeid: 0,
    },
  ],
  wlan0: [
    { address: '10.4.0.7', netmask: '255.255.252.0', family: 'IPv4', mac: '02:fc:00:00:00:09', internal: false, cidr: '10.4.0.7/22' },
  ],
} as unknown as ReturnType<typeof networkInterfaces>;

describe('magic packet', () => {
  it('is 6 × 0xFF then the MAC 16 times: 102 bytes', () => {
    const p = magicPacket('02:fc:00:00:00:01');
    expect(p.length).toBe(102);
    expect(MAGIC_PACKET_BYTES).toBe(102);
    expect([...p.subarray(0, 6)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (let i = 0; i < 16; i++) expect([...p.subarray(6 + i * 6, 12 + i * 6)]).toEqual([0x02, 0xfc, 0x00, 0x00, 0x00, 0x01]);
    expect(p.toString('hex')).toBe(`ffffffffffff${'02fc00000001'.repeat(16)}`);
  });

  it('reads a MAC with colons, dashes or none, in either case', () => {
    for (const text of ['AA:BB:CC:00:11:22', 'aa-bb-cc-00-11-22', 'aabbcc001122', ' aa:bb:cc:00:11:22 '])
      expect(formatMac(parseMac(text))).toBe('aa:bb:cc:00:11:22');
  });

  it('refuses what is not a unicast MAC, saying why', () => {
    expect(() => parseMac('aa:bb:cc:00:11')).toThrow(/not a MAC address: write six hex pairs/);
    expect(() => parseMac('aa:bb:cc:00:11:zz')).toThrow(/not a MAC address/);
    expect(() => parseMac('aa:bb-cc:00:11:22:33')).toThrow(/not a MAC address/);
    expect(() => parseMac('00:00:00:00:00:00')).toThrow(/all-zero MAC/);
    expect(() => parseMac('01:00:5e:00:00:01')).toThrow(/multicast MAC/);
    expect(() => magicPacket('nope')).toThrow(/not a MAC address/);
  });
});

describe('addresses', () => {
  it('computes the directed broadcast as address | ~netmask', () => {
    expect(broadcastOf('192.0.2.2', '255.255.255.0')).toBe('192.0.2.255');
    expect(broadcastOf('10.4.0.7', '255.255.252.0')).toBe('10.4.3.255');
    expect(broadcastOf('172.16.5.4', '255.240.0.0')).toBe('172.31.255.255');
    expect(() => broadcastOf('fd00::2', '255.255.255.0')).toThrow(/not an IPv4 address/);
  });

  it("announces the interface the broker socket leaves from, else the first non-internal one, never loopback's", () => {
    expect(wakeInfoFor('10.4.0.7', IFACES)).toEqual({ mac: '02:fc:00:00:00:09', broadcast: '10.4.3.255' });
    expect(wakeInfoFor('::ffff:10.4.0.7', IFACES)).toEqual({ mac: '02:fc:00:00:00:09', broadcast: '10.4.3.255' });
    // Over loopback (broker on this machine) or unknown: the first real interface.
    expect(wakeInfoFor('127.0.0.1', IFACES)).toEqual({ mac: 'aa:bb:cc:00:11:22', broadcast: '192.168.1.255' });
    expect(wakeInfoFor(undefined, IFACES)).toEqual({ mac: 'aa:bb:cc:00:11:22', broadcast: '192.168.1.255' });
    expect(wakeInfoFor('127.0.0.1', { lo: IFACES.lo } as ReturnType<typeof networkInterfaces>)).toBeUndefined();
  });

  it("lists the interfaces for the heartbeat's wake field once a minute, or when the broker socket's address changes", () => {
    let now = 0;
    let listed = 0;
    let ifaces = IFACES;
    const cache = new WakeInfoCache(
      60_000,
      () => now,
      () => (listed++, ifaces),
    );
    expect(cache.get('10.4.0.7')).toEqual({ mac: '02:fc:00:00:00:09', broadcast: '10.4.3.255' });
    now = 59_000;
    ifaces = { lo: IFACES.lo } as ReturnType<typeof networkInterfaces>; // the interfaces went away
    expect(cache.get('10.4.0.7')).toEqual({ mac: '02:fc:00:00:00:09', broadcast: '10.4.3.255' });
    expect(listed).toBe(1);
    // A reconnect from another address asks at once; so does the same address after the TTL.
    ifaces = IFACES;
    expect(cache.get('192.168.1.20')).toEqual({ mac: 'aa:bb:cc:00:11:22', broadcast: '192.168.1.255' });
    expect(listed).toBe(2);
    ifaces = { lo: IFACES.lo } as ReturnType<typeof networkInterfaces>;
    now = 119_000;
    expect(cache.get('192.168.1.20')).toBeUndefined();
    expect(listed).toBe(3);
  });

  it("takes only the limited broadcast and its own subnets' broadcasts for broadcast addresses", () => {
    expect(isBroadcastAddress('255.255.255.255', IFACES)).toBe(true);
    expect(isBroadcastAddress('192.168.1.255', IFACES)).toBe(true);
    expect(isBroadcastAddress('10.4.3.255', IFACES)).toBe(true);
    expect(isBroadcastAddress('192.168.2.255', IFACES)).toBe(false);
    expect(isBroadcastAddress('127.0.0.1', IFACES)).toBe(false);
  });
});

describe('sendMagicPacket', () => {
  it('sends the 102 bytes as one UDP datagram to 127.0.0.1', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const got = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    try {
      const sent = await sendMagicPacket('aa:bb:cc:00:11:22', { address: '127.0.0.1', port: (socket.address() as AddressInfo).port });
      expect((await got).equals(sent)).toBe(true);
      expect(sent.toString('hex')).toBe(`ffffffffffff${'aabbcc001122'.repeat(16)}`);
    } finally {
      socket.close();
    }
  });

  it('refuses a bad address or port before sending', async () => {
    await expect(sendMagicPacket('aa:bb:cc:00:11:22', { address: 'lan', port: 9 })).rejects.toThrow(/not an IPv4 address/);
    await expect(sendMagicPacket('aa:bb:cc:00:11:22', { address: '127.0.0.1', port: 70_000 })).rejects.toThrow(/not a UDP port/);
  });
});

describe('a sleeping node', () => {
  const wake = { mac: 'aa:bb:cc:00:11:22', broadcast: '192.168.1.255' };

  it('keeps its MAC and last capacity in the registry after its last will', () => {
    const r = new NodeRegistry();
    r.update(NodeStatusSchema.parse({ ...makeStatus('nb', { available: 24 * GiB }), wake }), NOW - 5_000);
    r.update(makeStatus('nb', { state: 'offline', reason: 'connection lost', bare: true }), NOW);
    expect(r.get('nb')?.wake).toBeUndefined();
    expect(r.wakeOf('nb')).toEqual(wake);
    const [s] = r.sleepers();
    expect(s?.node).toBe('nb');
    expect(s?.announced.capacity?.memory.available).toBe(24 * GiB);
    expect(r.views(NOW)[0]?.wake).toEqual(wake);
    // Awake again: no longer a sleeper.
    r.update(NodeStatusSchema.parse({ ...makeStatus('nb'), wake }), NOW + 1);
    expect(r.sleepers()).toEqual([]);
  });

  it("after a server restart, takes a clean stop's retained offline status (capacity, MAC) as a sleeper; a bare last will is none", () => {
    const r = new NodeRegistry();
    r.update(NodeStatusSchema.parse({ ...makeStatus('nb', { state: 'offline', reason: 'agent stopped' }), wake }), NOW);
    r.update(makeStatus('pi', { state: 'offline', reason: 'connection lost', bare: true }), NOW);
    expect(r.sleepers().map((s) => s.node)).toEqual(['nb']);
  });

  it('is the placement for a task nothing awake fits only when considered awake with its last capacity', () => {
    const r = new NodeRegistry();
    r.update(makeStatus('pi', { total: 1 * GiB, available: 1 * GiB }), NOW);
    r.update(NodeStatusSchema.parse({ ...makeStatus('nb', { available: 24 * GiB }), wake }), NOW - 5_000);
    r.update(makeStatus('nb', { state: 'offline', bare: true }), NOW);
    const base = r.snapshot(NOW, 'spread');
    const big = req(8 * GiB);
    const small = req(256 * 1024 ** 2);
    expect(place(big, base).ok).toBe(false);
    const woken = wokenSnapshot(base, r.sleepers()[0]!);
    expect(place(big, woken)).toMatchObject({ ok: true, node: 'nb' });
    expect(place(req(64 * GiB), woken).ok).toBe(false);
    // A task the awake node takes needs no wake.
    expect(place(small, base)).toMatchObject({ ok: true, node: 'pi' });
    // The base snapshot is left as it was.
    expect(base.nodes.find((n) => n.node === 'nb')?.status.state).toBe('offline');
  });
});
