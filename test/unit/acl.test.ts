import { describe, expect, it } from 'vitest';
import { checkClientId, denyPublish, denySubscribe, quarantineOf, type AclContext } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { haTopics, topics } from '../../shared/topics.js';

const t = topics();
const ctx: AclContext = {
  t,
  haPrefix: 'homeassistant',
  assignmentOf: (task) =>
    task === 'abc'
      ? { node: 'nb', attempt: 2, state: 'running', ports: [], submitter: 'admin:local' }
      : task === 'other'
        ? { node: 'x', attempt: 1, state: 'running', ports: [] }
        : undefined,
};
const agent: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
const admin: Identity = { username: 'admin:local', role: 'admin', name: 'local' };
const observer: Identity = { username: 'observer:ha', role: 'observer', name: 'ha' };
const event = (node: string, attempt = 2) => Buffer.from(JSON.stringify({ v: 1, taskId: 'abc', node, attempt }));

describe('ACL', () => {
  it("lets only a task's submitter write its stdin; agents read their own node's stdin and ack it", () => {
    const frame = Buffer.from([1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x41]);
    expect(denyPublish(admin, 'cli-1', t.nodeStdin('nb', 'abc'), frame, ctx)).toBeNull();
    const mallory: Identity = { username: 'admin:mallory', role: 'admin', name: 'mallory' };
    expect(denyPublish(mallory, 'cli-2', t.nodeStdin('nb', 'abc'), frame, ctx)).toContain('only its submitter may write its stdin');
    // A task stored before submitters were kept: nobody but the controller.
    expect(denyPublish(admin, 'cli-1', t.nodeStdin('x', 'other'), frame, ctx)).toContain('an unknown identity');
    expect(denyPublish(admin, 'cli-1', t.nodeStdin('nb', 'nope'), frame, ctx)).toContain('unknown to the controller');
    expect(denyPublish(observer, 'o', t.nodeStdin('nb', 'abc'), frame, ctx)).not.toBeNull();
    expect(denyPublish({ username: 'mcp:a', role: 'mcp', name: 'a' }, 'm', t.nodeStdin('nb', 'abc'), frame, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeStdin('nb', 'abc'), frame, ctx)).not.toBeNull();
    // Without a controller beside the broker (--broker-only) only the static rule applies.
    expect(denyPublish(mallory, 'cli-2', t.nodeStdin('nb', 'abc'), frame, { t, haPrefix: 'homeassistant' })).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeStdinAck('nb', 'abc'), Buffer.from('{}'), ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeStdinAck('other', 'abc'), Buffer.from('{}'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeStdin('nb', '+'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeStdin('other', '+'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'o', t.nodeStdin('+', '+'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'o', 'cutter/v1/nodes/+/stdin/#', ctx)).not.toBeNull();
  });

  it('binds agents to their client id and reserves agent and controller ids', () => {
    expect(checkClientId(agent, 'cutter-agent-nb')).toBeNull();
    expect(checkClientId(agent, 'cutter-agent-other')).toContain('must connect as client id cutter-agent-nb');
    expect(checkClientId(admin, 'cutter-agent-nb')).toContain('reserved');
    expect(checkClientId(admin, 'cutter-controller-cutter')).toContain('reserved');
    expect(checkClientId(admin, 'cutter-cli-1234')).toBeNull();
    // The Home Assistant link and the Ollama API's client are the server's own too (issue 14).
    expect(checkClientId(observer, 'cutter-ha-cutter')).toContain('reserved');
    expect(checkClientId(admin, 'cutter-ollama-api')).toContain('reserved');
    expect(checkClientId({ username: 'mcp:a', role: 'mcp', name: 'a' }, 'cutter-controller-x')).toContain('reserved');
  });

  it('lets an agent publish its own status and events carrying its node; other tasks and attempts are quarantined, not cut', () => {
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeStatus('nb'), Buffer.from('{}'), ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodeStatus('other'), Buffer.from('{}'), ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.taskEvents('abc'), event('nb'), ctx)).toBeNull();
    expect(quarantineOf(agent, t.taskEvents('abc'), event('nb'), ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.taskEvents('abc'), event('other'), ctx)).toContain('"node": "nb"');
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodePorts('nb', 'abc'), event('other'), ctx)).toContain('"node": "nb"');
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodePorts('other', 'abc'), event('nb'), ctx)).not.toBeNull();
    // Stateful: another node's task, an old attempt, a task the controller does not know (issue 14):
    // delivered elsewhere, the agent stays connected (denying would make it resend on every reconnect).
    expect(denyPublish(agent, 'cutter-agent-nb', t.taskEvents('other'), event('nb'), ctx)).toBeNull();
    expect(quarantineOf(agent, t.taskEvents('other'), event('nb'), ctx)).toMatchObject({ what: 'events', task: 'other' });
    expect(quarantineOf(agent, t.taskEvents('abc'), event('nb', 1), ctx)?.why).toContain('not task abc');
    expect(quarantineOf(agent, t.taskEvents('gone'), event('nb'), ctx)?.why).toContain('unknown');
    expect(quarantineOf(agent, t.nodePorts('nb', 'other'), event('nb'), ctx)).toMatchObject({ what: 'ports', task: 'other' });
    expect(quarantineOf(agent, t.nodePorts('nb', 'other'), Buffer.alloc(0), ctx)).toBeNull();
    expect(quarantineOf(agent, t.taskEvents('gone'), event('nb'), { ...ctx, assignmentOf: undefined })).toBeNull();
    expect(quarantineOf(admin, t.taskEvents('gone'), event('nb'), ctx)).toBeNull();
    expect(t.parse(t.quarantine('nb', 'ports', 'abc'))).toEqual({ kind: 'quarantine', node: 'nb', what: 'ports', task: 'abc' });
    for (const topic of [t.nodeAssign('nb'), t.taskState('abc'), t.requests('cutter-agent-nb'), t.replies('x'), t.controllerStatus()]) {
      expect(denyPublish(agent, 'cutter-agent-nb', topic, Buffer.from('{}'), ctx)).not.toBeNull();
    }
  });

  it('lets an admin publish only requests on its own client id; observers publish nothing', () => {
    expect(denyPublish(admin, 'cli-1', t.requests('cli-1'), Buffer.from('{}'), ctx)).toBeNull();
    expect(denyPublish(admin, 'cli-1', t.requests('cli-2'), Buffer.from('{}'), ctx)).not.toBeNull();
    expect(denyPublish(admin, 'cli-1', t.nodeAssign('nb'), Buffer.from('{}'), ctx)).not.toBeNull();
    expect(denyPublish(observer, 'ha', t.requests('ha'), Buffer.from('{}'), ctx)).toBe(
      "observers publish only Home Assistant's status (its drain switch needs an admin token)",
    );
  });

  it('lets Home Assistant publish its birth (observer or admin) and the drain switch (admin only), nothing else under either prefix', () => {
    const ha = haTopics(t.prefix, ctx.haPrefix);
    // A read-only token changes nothing (issue 14): observers lost the drain switch on purpose.
    expect(denyPublish(observer, 'ha', ha.drainCommand('nb'), Buffer.from('ON'), ctx)).not.toBeNull();
    expect(denyPublish(admin, 'ha', ha.drainCommand('nb'), Buffer.from('ON'), ctx)).toBeNull();
    for (const who of [observer, admin]) {
      expect(denyPublish(who, 'ha', ha.haStatus(), Buffer.from('online'), ctx)).toBeNull();
      expect(denyPublish(who, 'ha', ha.deviceConfig('cutter_nb'), Buffer.from('{}'), ctx)).not.toBeNull();
      expect(denyPublish(who, 'ha', ha.state('nb'), Buffer.from('{}'), ctx)).not.toBeNull();
      expect(denyPublish(who, 'ha', ha.availability('nb'), Buffer.from('online'), ctx)).not.toBeNull();
    }
    expect(denyPublish(agent, 'cutter-agent-nb', ha.drainCommand('nb'), Buffer.from('ON'), ctx)).not.toBeNull();
    expect(denySubscribe(observer, 'ha', ha.state('nb'), ctx)).toBeNull();
    expect(denySubscribe(observer, 'ha', `${t.prefix}/v1/ha/#`, ctx)).toBeNull();
    expect(denySubscribe(observer, 'ha', `${t.prefix}/v1/#`, ctx)).not.toBeNull();
  });

  it('keeps subscriptions to what each role may read', () => {
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeAssign('nb'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeCancel('nb'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.nodeAssign('other'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.allTaskEvents(), ctx)).not.toBeNull();
    expect(denySubscribe(admin, 'cli', 'cutter/#', ctx)).toBeNull();
    expect(denySubscribe(admin, 'cli', '#', ctx)).not.toBeNull();
    for (const ok of [
      t.allNodeStatus(),
      t.nodeStatus('nb'),
      t.allTaskState(),
      t.controllerStatus(),
      'homeassistant/#',
      'homeassistant/status',
    ]) {
      expect(denySubscribe(observer, 'ha', ok, ctx), ok).toBeNull();
    }
    for (const bad of ['#', 'cutter/#', 'cutter/v1/tasks/#', t.allTaskEvents(), t.allRequests(), 'cutter/v1/+/+/+', '$SYS/#']) {
      expect(denySubscribe(observer, 'ha', bad, ctx), bad).not.toBeNull();
    }
  });
});
