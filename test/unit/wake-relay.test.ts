/**
 * Wake-on-LAN through an awake node (issue 17) on the wire and at the edges: the `nodes/{node}/wake`
 * topic and who may use it (only the server publishes, an agent reads only its own), the
 * WakeCommand schema's bounds, and the agent's rule that it sends only to a broadcast address of its
 * own networks unless its `--wake-address` says where (a real UDP socket on 127.0.0.1 receives it).
 */
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { WakeRelay } from '../../agent/wake-relay.js';
import { type AclContext, denyPublish, denySubscribe } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { WakeCommandSchema } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';

const t = topics();
const ctx: AclContext = { t, haPrefix: 'homeassistant' };
const agent: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
const admin: Identity = { username: 'admin:me', role: 'admin', name: 'me' };
const observer: Identity = { username: 'observer:ha', role: 'observer', name: 'ha' };
const controller: Identity = { username: 'controller', role: 'controller', name: 'controller' };
const MAC = '02:fc:00:00:00:01';
const command = { v: 1 as const, node: 'sleeper', mac: MAC, broadcast: '192.0.2.255', port: 9 };
const payload = Buffer.from(JSON.stringify(command));

describe('the relayed wake topic', () => {
  it('is built and parsed in shared/topics.ts', () => {
    expect(t.nodeWake('nb')).toBe('cutter/v1/nodes/nb/wake');
    expect(t.parse('cutter/v1/nodes/nb/wake')).toEqual({ kind: 'nodeWake', node: 'nb' });
    expect(t.parse('cutter/v1/nodes/nb/wake/now')).toBeNull();
  });

  it('is published only by the server, and an agent reads only its own', () => {
    expect(denyPublish(controller, 'cutter-controller', t.nodeWake('nb'), payload, ctx)).toBeNull();
    expect(denyPublish(admin, 'cli-1', t.nodeWake('nb'), payload, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeWake('nb'), payload, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeWake('other'), payload, ctx)).not.toBeNull();
    expect(denyPublish(observer, 'o', t.nodeWake('nb'), payload, ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeWake('nb'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeWake('other'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeWake('+'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'o', 'cutter/v1/nodes/+/wake', ctx)).not.toBeNull();
  });

  it('carries a node id, a MAC, an IPv4 broadcast address and a UDP port, nothing looser', () => {
    expect(WakeCommandSchema.parse(command)).toEqual(command);
    for (const bad of [
      { ...command, mac: '02:FC:00:00:00:01' },
      { ...command, mac: '02fc00000001' },
      { ...command, broadcast: 'lan.example' },
      { ...command, broadcast: '300.1.1.1' },
      { ...command, port: 0 },
      { ...command, port: 65_536 },
      { ...command, node: '../x' },
      { ...command, v: 2 },
    ])
      expect(WakeCommandSchema.safeParse(bad).success).toBe(false);
  });
});

describe("the agent's relay", () => {
  const logged: { msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line)) });

  it('sends nothing to an address that is not a broadcast address of its own networks', async () => {
    const sink = createSocket('udp4');
    const got: Buffer[] = [];
    sink.on('message', (m) => got.push(m));
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
    const port = (sink.address() as AddressInfo).port;
    try {
      // 127.0.0.1 is no network's broadcast address: refused, and said so.
      await new WakeRelay({ log }).handle({ ...command, broadcast: '127.0.0.1', port });
      expect(logged.at(-1)?.msg).toMatch(
        /not sending a magic packet for another node: its broadcast address is not on this machine's networks/,
      );
      // With --wake-address the agent's owner says where: sent there, to the port the server named.
      await new WakeRelay({ log, address: '127.0.0.1' }).handle({ ...command, port });
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.length).toBe(1);
      expect(
        got[0]!.equals(Buffer.concat([Buffer.alloc(6, 0xff), ...Array.from({ length: 16 }, () => Buffer.from('02fc00000001', 'hex'))])),
      ).toBe(true);
      expect(logged.at(-1)).toMatchObject({
        msg: 'Wake-on-LAN: sent a magic packet for a node on this LAN',
        for: 'sleeper',
        address: '127.0.0.1',
        port,
      });
    } finally {
      sink.close();
    }
  });
});
