/**
 * Wake-on-LAN with real processes: agents announce their MAC, the server sends the magic packet
 * for a sleeping node — by hand (`cutter nodes wake`) and, with `--wake-on-lan`, for queued work
 * that only that node fits — and a woken node gets the work. Every packet goes to 127.0.0.1 (the
 * server's `--wake-address`, or `--address`), to a UDP socket this test binds; never to a LAN.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { externalIpv4 } from '../../shared/wol.js';
import { cli, type Daemon, startAgent, startServer } from '../harness.js';
import { nodeView, showTask, t, until } from './recovery-helpers.js';

/** The agent announces the MAC of a non-internal IPv4 interface: a machine with none has nothing to announce. */
const NO_NIC = externalIpv4().length === 0;
const SKIP_NO_NIC = ' [skipped: needs a non-internal IPv4 interface (the agent announces its MAC; nothing is sent to it)]';

/** A UDP socket on 127.0.0.1 that keeps every datagram it receives. */
async function udpSink(): Promise<{ socket: Socket; port: number; got: Buffer[] }> {
  const socket = createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: (socket.address() as AddressInfo).port, got };
}

/** The magic packet for a `aa:bb:…` MAC, built here from the facts (6 × 0xFF, then the MAC 16 times), not by cutter's code. */
function expectedPacket(mac: string): Buffer {
  const m = Buffer.from(mac.replaceAll(':', ''), 'hex');
  return Buffer.concat([Buffer.alloc(6, 0xff), ...Array.from({ length: 16 }, () => m)]);
}

/** The MAC and broadcast address a node announced, as `cutter nodes list --json` shows them once it has. */
async function announcedWake(url: string, node: string): Promise<{ mac: string; broadcast: string }> {
  return until(async () => ((await nodeView(url, node)) as { wake?: { mac: string; broadcast: string } } | undefined)?.wake);
}

/** The server's audit log entries for Wake-on-LAN (`"action": "wake"`), oldest first. */
function wakeAudit(dataDir: string): Record<string, unknown>[] {
  return readFileSync(join(dataDir, 'audit.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((a) => a.action === 'wake');
}

/** `cutter nodes wake NODE --json` that succeeds with nothing on stderr: its JSON. */
async function wakeJson(url: string, node: string): Promise<unknown> {
  const r = await cli(['nodes', 'wake', node, '--json'], { broker: url });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}
const offline = (url: string, node: string) => until(async () => (await nodeView(url, node))?.state === 'offline');

const daemons: Daemon[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(daemons.splice(0).map((d) => d.stop('SIGKILL')));
});

describe.skipIf(NO_NIC)(`Wake-on-LAN${NO_NIC ? SKIP_NO_NIC : ''}`, () => {
  it('cutter nodes wake sends the magic packet for the MAC the killed agent announced, and refuses what it cannot wake', async () => {
    const sink = await udpSink();
    sockets.push(sink.socket);
    const { daemon: server, url, dataDir } = await startServer(['--wake-address', '127.0.0.1', '--wake-port', String(sink.port)]);
    daemons.push(server);
    const agent = await startAgent(url, 'sleeper');
    daemons.push(agent);
    const wake = await announcedWake(url, 'sleeper');
    expect(wake.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    // The MAC of a real interface of this machine (the agent reaches the broker over loopback: the first non-internal one).
    expect(externalIpv4().map((i) => i.mac.toLowerCase())).toContain(wake.mac);

    // Awake: nothing to wake.
    const awake = await cli(['nodes', 'wake', 'sleeper'], { broker: url });
    expect(awake.code).toBe(1);
    expect(awake.stderr).toMatch(/node sleeper is online: it is awake/);

    await agent.stop('SIGKILL');
    await offline(url, 'sleeper');
    expect(await wakeJson(url, 'sleeper')).toEqual({
      node: 'sleeper',
      mac: wake.mac,
      address: '127.0.0.1',
      port: sink.port,
      bytes: 102,
      broadcast: false,
    });
    await until(() => sink.got.length === 1);
    expect(sink.got[0]!.length).toBe(102);
    expect(sink.got[0]!.equals(expectedPacket(wake.mac))).toBe(true);

    // --address / --port override the server's target.
    const other = await udpSink();
    sockets.push(other.socket);
    const o = await cli(['nodes', 'wake', 'sleeper', '--address', '127.0.0.1', '--port', String(other.port)], { broker: url });
    expect(o.code).toBe(0);
    expect(o.stdout).toBe(
      `magic packet for sleeper (${wake.mac}) sent to 127.0.0.1:${other.port}; it joins when its agent starts (\`cutter nodes list\`)\n`,
    );
    await until(() => other.got.length === 1);
    expect(other.got[0]!.equals(expectedPacket(wake.mac))).toBe(true);

    // Unknown node; a node that never announced a MAC (an older agent: only a status without `wake`).
    const unknown = await cli(['nodes', 'wake', 'nosuch', '--json'], { broker: url });
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', message: expect.stringMatching(/no node nosuch/) } });
    const old = await mqtt.connectAsync(url, { clientId: 'wol-test-old-agent' });
    await old.publishAsync(
      t.nodeStatus('oldagent'),
      JSON.stringify({ v: 1, node: 'oldagent', state: 'offline', version: '0.0.1', seq: 0, ts: Date.now(), heartbeatMs: 500, running: [] }),
      { qos: 1, retain: true },
    );
    await old.endAsync();
    await until(async () => (await nodeView(url, 'oldagent'))?.state === 'offline');
    const noMac = await cli(['nodes', 'wake', 'oldagent'], { broker: url });
    expect(noMac.code).toBe(1);
    expect(noMac.stderr).toMatch(/no MAC address is known for node oldagent: its agent never announced one/);
    const badPort = await cli(['nodes', 'wake', 'sleeper', '--port', '70000'], { broker: url });
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).toMatch(/--port 70000 is not a UDP port/);
    expect(badPort.stderr).not.toMatch(/\n\s+at /); // no stack trace

    // Nothing else reached the first socket, and the two sends are audited.
    expect(sink.got.length).toBe(1);
    const wakes = wakeAudit(dataDir);
    expect(wakes.map((a) => [a.outcome, a.node, a.detail])).toEqual([
      ['ok', 'sleeper', `magic packet for ${wake.mac} to 127.0.0.1:${sink.port}`],
      ['ok', 'sleeper', `magic packet for ${wake.mac} to 127.0.0.1:${other.port}`],
    ]);
  });

  it('with --wake-on-lan wakes the sleeping node a queued task needs, and the woken node runs it', async () => {
    const sink = await udpSink();
    sockets.push(sink.socket);
    const {
      daemon: server,
      url,
      dataDir,
    } = await startServer(['--wake-on-lan', '--wake-address', '127.0.0.1', '--wake-port', String(sink.port)]);
    daemons.push(server);
    const small = await startAgent(url, 'small', ['--allow-exec', '--max-memory', '128m']);
    daemons.push(small);
    let big = await startAgent(url, 'big', ['--allow-exec']);
    daemons.push(big);
    const wake = await announcedWake(url, 'big');
    await big.stop('SIGTERM');
    await offline(url, 'big');
    expect(sink.got).toEqual([]); // nothing queued yet: nothing to wake for

    const submitted = await cli(['run', '-d', '--memory', '512m', 'exec', '--', 'echo', 'woken'], { broker: url });
    expect(submitted.code).toBe(0);
    const id = submitted.stdout.trim();
    await until(() => sink.got.length >= 1);
    expect(sink.got[0]!.equals(expectedPacket(wake.mac))).toBe(true);
    expect((await showTask(url, id)).state).toBe('queued');
    expect(wakeAudit(dataDir)).toContainEqual(
      expect.objectContaining({ who: 'controller', action: 'wake', outcome: 'ok', node: 'big', taskId: id }),
    );

    // The node "wakes": its agent starts again with the same node id and gets the work.
    big = await startAgent(url, 'big', ['--allow-exec']);
    daemons.push(big);
    const done = await until(async () => {
      const s = await showTask(url, id);
      return s.state === 'succeeded' ? s : null;
    });
    expect(done.node).toBe('big');
    const logs = await cli(['logs', id], { broker: url });
    expect(logs.stdout).toBe('woken\n');
  });

  it("with --wake-via agent an awake agent on the sleeping node's LAN sends the packet, and with none awake the refusal says what to do", async () => {
    const sink = await udpSink();
    sockets.push(sink.socket);
    // The server sends no packet itself; the relaying agent's --wake-address aims its packets at this test's socket.
    const { daemon: server, url, dataDir } = await startServer(['--wake-via', 'agent']);
    daemons.push(server);
    const sleeper = await startAgent(url, 'sleeper');
    daemons.push(sleeper);
    const relay = await startAgent(url, 'relay', ['--wake-address', '127.0.0.1', '--wake-port', String(sink.port)]);
    daemons.push(relay);
    const wake = await announcedWake(url, 'sleeper');
    // Same machine, same LAN: the relay announced the same broadcast address.
    expect((await announcedWake(url, 'relay')).broadcast).toBe(wake.broadcast);
    await sleeper.stop('SIGKILL');
    await offline(url, 'sleeper');

    expect(await wakeJson(url, 'sleeper')).toEqual({
      node: 'sleeper',
      mac: wake.mac,
      address: wake.broadcast,
      port: 9,
      bytes: 102,
      broadcast: true,
      via: 'relay',
    });
    await until(() => sink.got.length === 1);
    expect(sink.got[0]!.equals(expectedPacket(wake.mac))).toBe(true);
    const sent = await relay.waitForMsg('Wake-on-LAN: sent a magic packet for a node on this LAN');
    expect(sent).toMatchObject({ for: 'sleeper', mac: wake.mac, address: '127.0.0.1', port: sink.port });
    const human = await cli(['nodes', 'wake', 'sleeper'], { broker: url });
    expect(human.stdout).toBe(
      `magic packet for sleeper (${wake.mac}) handed to node relay, on its LAN, to send to ${wake.broadcast}:9; it joins when its agent starts (\`cutter nodes list\`)\n`,
    );
    await until(() => sink.got.length === 2);

    // No node awake on that LAN: refused, naming what to do; nothing is sent.
    await relay.stop('SIGKILL');
    await offline(url, 'relay');
    const none = await cli(['nodes', 'wake', 'sleeper'], { broker: url });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no online node announced node sleeper's broadcast address .* start an agent on that LAN/);
    const wakes = wakeAudit(dataDir);
    expect(wakes.map((a) => a.outcome)).toEqual(['ok', 'ok', 'failed']);
    expect(wakes[0]!.detail).toBe(`magic packet for ${wake.mac} to ${wake.broadcast}:9 by node relay`);
    expect(sink.got.length).toBe(2);
  });

  it('without --wake-on-lan sends nothing for queued work a sleeping node would fit', async () => {
    const sink = await udpSink();
    const marker = await udpSink();
    sockets.push(sink.socket, marker.socket);
    const { daemon: server, url } = await startServer(['--wake-address', '127.0.0.1', '--wake-port', String(sink.port)]);
    daemons.push(server);
    const big = await startAgent(url, 'big', ['--allow-exec']);
    daemons.push(big);
    const wake = await announcedWake(url, 'big');
    await big.stop('SIGTERM');
    await offline(url, 'big');
    const submitted = await cli(['run', '-d', '--memory', '512m', 'exec', '--', 'echo', 'never'], { broker: url });
    expect(submitted.code).toBe(0);
    expect((await showTask(url, submitted.stdout.trim())).state).toBe('queued');
    // The controller handles its work in order: a wake decided for that submit would have gone out
    // before this request is answered. The answer's packet goes to the other socket.
    const byHand = await cli(['nodes', 'wake', 'big', '--port', String(marker.port)], { broker: url });
    expect(byHand.code).toBe(0);
    await until(() => marker.got.length === 1);
    expect(marker.got[0]!.equals(expectedPacket(wake.mac))).toBe(true);
    // Loopback datagrams are queued in the order they are sent: one from this test now lands after
    // anything the server sent before it answered.
    const probe = createSocket('udp4');
    await new Promise<void>((resolve, reject) =>
      probe.send(Buffer.from('end'), sink.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
    probe.close();
    await until(() => sink.got.length >= 1);
    expect(sink.got.map((b) => b.toString('latin1'))).toEqual(['end']);
  });
});
