/**
 * Lending on the wire and at the edges (issue 17): the policy topic and who may use it (only
 * admins and the server set it, an agent reads only its own), Home Assistant's lending sensor,
 * switch and select, and the owner's sources read from test doubles (power supplies, logind).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { idleFromSessions, parseShowSession, readOnBattery } from '../../agent/lending/sources.js';
import { type AclContext, denyPublish, denySubscribe } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { haDeviceConfig, haNodeState } from '../../controller/extensions/ha/discovery.js';
import { LendingPolicySchema } from '../../shared/lending.js';
import { HaDeviceConfigSchema, HaNodeStateSchema, LendingSetSchema, type NodeView } from '../../shared/schemas/index.js';
import { haTopics, topics } from '../../shared/topics.js';
import { tempDir } from '../harness.js';

const t = topics();
const ctx: AclContext = { t, haPrefix: 'homeassistant' };
const agent: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
const admin: Identity = { username: 'admin:me', role: 'admin', name: 'me' };
const observer: Identity = { username: 'observer:ha', role: 'observer', name: 'ha' };
const mcp: Identity = { username: 'mcp:ai', role: 'mcp', name: 'ai' };
const set = Buffer.from(JSON.stringify({ v: 1, id: 'x1', patch: { enabled: false } }));

describe('the lending policy topic', () => {
  it('is built and parsed in shared/topics.ts', () => {
    expect(t.nodeLendingSet('nb')).toBe('cutter/v1/nodes/nb/lending/set');
    expect(t.parse('cutter/v1/nodes/nb/lending/set')).toEqual({ kind: 'nodeLendingSet', node: 'nb' });
    expect(t.parse('cutter/v1/nodes/nb/lending/get')).toBeNull();
    const ha = haTopics('cutter', 'homeassistant');
    expect(ha.lendingCommandOf(ha.lendingCommand('nb', 'mode'))).toEqual({ node: 'nb', what: 'mode' });
    expect(ha.lendingCommandOf('cutter/v1/ha/nodes/nb/drain/set')).toBeNull();
  });

  it('may be set only by admins (and the server), and an agent reads only its own', () => {
    expect(denyPublish(admin, 'cli-1', t.nodeLendingSet('nb'), set, ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeLendingSet('nb'), set, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeLendingSet('other'), set, ctx)).not.toBeNull();
    expect(denyPublish(observer, 'o', t.nodeLendingSet('nb'), set, ctx)).not.toBeNull();
    expect(denyPublish(mcp, 'm', t.nodeLendingSet('nb'), set, ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeLendingSet('nb'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeLendingSet('other'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeLendingSet('+'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'o', 'cutter/v1/nodes/+/lending/+', ctx)).not.toBeNull();
    // Home Assistant's lending switch and select: admin tokens only, like the drain switch.
    const ha = haTopics('cutter', 'homeassistant');
    expect(denyPublish(admin, 'ha', ha.lendingCommand('nb', 'lending'), Buffer.from('OFF'), ctx)).toBeNull();
    expect(denyPublish(observer, 'ha', ha.lendingCommand('nb', 'mode'), Buffer.from('always'), ctx)).not.toBeNull();
  });

  it('carries a bounded patch', () => {
    expect(LendingSetSchema.safeParse(JSON.parse(set.toString())).success).toBe(true);
    expect(LendingSetSchema.safeParse({ v: 1, id: 'x', patch: { maxOwnerCpuPercent: 300 } }).success).toBe(false);
    expect(LendingSetSchema.safeParse({ v: 1, id: 'x'.repeat(65), patch: {} }).success).toBe(false);
    expect(LendingSetSchema.safeParse({ v: 1, id: 'x', patch: { windows: Array(17).fill('sat *') } }).success).toBe(false);
  });
});

describe('Home Assistant', () => {
  const view = (lending?: NodeView['status']['lending']): NodeView => ({
    node: 'nb',
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 0,
    reservedMemory: 0,
    status: {
      v: 1,
      node: 'nb',
      state: 'online',
      version: '1',
      seq: 1,
      ts: 0,
      heartbeatMs: 1000,
      running: [],
      ...(lending ? { lending } : {}),
    },
  });
  const ctxHa = { prefix: 'cutter', topics: haTopics('cutter', 'homeassistant'), version: '9' };
  const lending = {
    state: 'suspended' as const,
    reason: 'on battery',
    since: 0,
    policy: LendingPolicySchema.parse({ acOnly: true }),
    sampleMs: 5_000,
  };

  it('has a lending sensor, a switch and a mode select for a node with a policy, none without', () => {
    const { payload } = haDeviceConfig(view(lending), ctxHa);
    expect(HaDeviceConfigSchema.safeParse(payload).success).toBe(true);
    expect(payload.cmps.lending_enabled).toMatchObject({ p: 'switch', command_topic: 'cutter/v1/ha/nodes/nb/lending/set', pl_on: 'ON' });
    expect(payload.cmps.lending_mode).toMatchObject({
      p: 'select',
      command_topic: 'cutter/v1/ha/nodes/nb/mode/set',
      options: ['auto', 'always'],
    });
    expect(payload.cmps.lending).toMatchObject({ p: 'sensor', val_tpl: '{{ value_json.lending }}' });
    const state = haNodeState(view(lending), 0);
    expect(HaNodeStateSchema.parse(state)).toMatchObject({ lending: 'suspended: on battery', lending_enabled: true, lending_mode: 'auto' });
    expect(Object.keys(haDeviceConfig(view(), ctxHa).payload.cmps)).not.toContain('lending_enabled');
  });
});

describe("the owner's sources, read from doubles", () => {
  const supply = (dir: string, name: string, files: Record<string, string>) => {
    mkdirSync(join(dir, name));
    for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, name, f), `${v}\n`);
  };

  it('reads AC and battery from a directory shaped like /sys/class/power_supply', async () => {
    const dir = tempDir('cutter-ps-');
    supply(dir, 'AC', { type: 'Mains', online: '1' });
    supply(dir, 'BAT0', { type: 'Battery', status: 'Charging', scope: 'System' });
    supply(dir, 'hid-mouse', { type: 'Battery', status: 'Discharging', scope: 'Device' });
    expect(await readOnBattery(dir)).toBe(false); // a wireless mouse's battery is not the machine's
    writeFileSync(join(dir, 'AC', 'online'), '0\n');
    expect(await readOnBattery(dir)).toBe(true);
    expect(await readOnBattery(tempDir('cutter-ps-empty-'))).toBe(false); // a desktop or VM: no supplies, mains
    expect(await readOnBattery('/nonexistent/power')).toBe(false);
  });

  it("reads logind's sessions: an active graphical one is 0 s idle, a TTY counts from its IdleSinceHint", () => {
    const text =
      'IdleHint=no\nIdleSinceHint=0\nClass=user\nType=wayland\n\nIdleHint=yes\nIdleSinceHint=1000000000\nClass=greeter\nType=x11\n';
    const sessions = parseShowSession(text);
    expect(sessions).toHaveLength(2);
    expect(idleFromSessions(sessions, 2_000_000, 99)).toEqual({ idleSec: 0, source: 'logind' });
    const tty = parseShowSession('IdleHint=no\nIdleSinceHint=1000000000\nClass=user\nType=tty\n');
    expect(idleFromSessions(tty, 1_600_000, 99)).toEqual({ idleSec: 600, source: 'logind' });
    expect(idleFromSessions([], 0, 3_600)).toEqual({ idleSec: 3_600, source: 'logind: no one logged in' });
  });
});
