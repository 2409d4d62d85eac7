/** The ACL rules for the file transfer topics (shared/schemas/files.ts): agents only their own node's, admins only their own client id's. */
import { describe, expect, it } from 'vitest';
import { denyPublish, denySubscribe, fileTopicOf, type AclContext } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { topics } from '../../shared/topics.js';

const t = topics();
const ctx: AclContext = { t, haPrefix: 'homeassistant', assignmentOf: () => undefined };
const agent: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
const admin: Identity = { username: 'admin:local', role: 'admin', name: 'local' };
const observer: Identity = { username: 'observer:ha', role: 'observer', name: 'ha' };
const any = Buffer.from('{}');

describe('ACL for file transfer', () => {
  it('parses file topics by direction and nothing else', () => {
    expect(fileTopicOf(t, t.filesIn('nb', 'cli-1'), 'in')).toEqual({ node: 'nb', client: 'cli-1' });
    expect(fileTopicOf(t, t.filesInData('nb', 'cli-1'), 'in')).toEqual({ node: 'nb', client: 'cli-1' });
    expect(fileTopicOf(t, t.filesOut('nb', 'cli-1'), 'in')).toBeNull();
    expect(fileTopicOf(t, t.filesOutData('nb', 'cli-1'), 'out')).toEqual({ node: 'nb', client: 'cli-1' });
    for (const bad of [
      t.nodeStatus('nb'),
      `${t.filesIn('nb', 'cli-1')}/other`,
      `${t.filesIn('nb', 'cli-1')}/data/x`,
      'cutter/v1/nodes/nb/files/in/+',
      'cutter/v1/nodes/nb/files/in',
    ]) {
      expect(fileTopicOf(t, bad, 'in'), bad).toBeNull();
    }
  });

  it("lets an agent read only its own node's file requests and answer only on its own node", () => {
    expect(denySubscribe(agent, 'cutter-agent-nb', t.filesIn('nb', '+'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.filesInData('nb', '+'), ctx)).toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.filesIn('other', '+'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', t.filesOut('nb', '+'), ctx)).not.toBeNull();
    expect(denySubscribe(agent, 'cutter-agent-nb', 'cutter/v1/nodes/nb/files/#', ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.filesOut('nb', 'cli-1'), any, ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.filesOutData('nb', 'cli-1'), any, ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.filesOut('other', 'cli-1'), any, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.filesIn('other', 'cli-1'), any, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.filesIn('nb', 'cli-1'), any, ctx)).not.toBeNull();
  });

  it('lets an admin send file requests only under its own client id; observers reach none of it', () => {
    expect(denyPublish(admin, 'cli-1', t.filesIn('nb', 'cli-1'), any, ctx)).toBeNull();
    expect(denyPublish(admin, 'cli-1', t.filesInData('nb', 'cli-1'), any, ctx)).toBeNull();
    expect(denyPublish(admin, 'cli-1', t.filesIn('nb', 'cli-2'), any, ctx)).not.toBeNull();
    expect(denyPublish(admin, 'cli-1', t.filesOut('nb', 'cli-1'), any, ctx)).not.toBeNull();
    expect(denyPublish(observer, 'ha', t.filesIn('nb', 'ha'), any, ctx)).not.toBeNull();
    for (const bad of [t.filesIn('nb', 'x'), t.filesOutData('+', '+'), 'cutter/v1/nodes/+/files/#', 'cutter/v1/nodes/+/+/+/+']) {
      expect(denySubscribe(observer, 'ha', bad, ctx), bad).not.toBeNull();
    }
  });

  it('lets an agent announce ports only for its own node', () => {
    // An announcement names its node (issue 14: one naming another node cuts the connection).
    const own = Buffer.from(JSON.stringify({ v: 1, node: 'nb', taskId: 'abc123', attempt: 1 }));
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodePorts('nb', 'abc123'), own, ctx)).toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodePorts('nb', 'abc123'), any, ctx)).toContain('"node": "nb"');
    expect(denyPublish(agent, 'cutter-agent-nb', t.nodePorts('other', 'abc123'), any, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', `${t.nodePorts('nb', 'abc123')}/x`, any, ctx)).not.toBeNull();
    expect(denyPublish(agent, 'cutter-agent-nb', t.forwardState('abc123'), any, ctx)).not.toBeNull();
    expect(denyPublish(admin, 'cli-1', t.forwardState('abc123'), any, ctx)).not.toBeNull();
    expect(denyPublish(admin, 'cli-1', t.nodePorts('nb', 'abc123'), any, ctx)).not.toBeNull();
  });

  it('keeps an mcp identity to task requests and reads', () => {
    const mcp: Identity = { username: 'mcp:desk', role: 'mcp', name: 'desk' };
    const req = (op: string) => Buffer.from(JSON.stringify({ v: 1, id: '1', op }));
    for (const op of ['submit', 'cancel', 'task.get', 'task.list', 'task.logs', 'node.list', 'node.drain'])
      expect(denyPublish(mcp, 'm-1', t.requests('m-1'), req(op), ctx), op).toBeNull();
    for (const op of ['token.create', 'token.revoke', 'token.list', 'node.forget', 'node.wake'])
      expect(denyPublish(mcp, 'm-1', t.requests('m-1'), req(op), ctx), op).toContain('mcp clients may send only');
    expect(denyPublish(mcp, 'm-1', t.requests('m-2'), req('submit'), ctx)).not.toBeNull();
    for (const ok of [t.replies('m-1'), t.taskEvents('abc'), t.taskState('abc'), t.allNodeStatus(), t.controllerStatus()])
      expect(denySubscribe(mcp, 'm-1', ok, ctx), ok).toBeNull();
    for (const bad of [t.replies('m-2'), t.allTaskEvents(), 'cutter/#', t.filesOut('nb', 'm-2'), t.filesOut('+', 'm-1'), t.allRequests()])
      expect(denySubscribe(mcp, 'm-1', bad, ctx), bad).not.toBeNull();
  });

  it('lets an mcp identity transfer files under its own client id, but never push an image (issue 19)', () => {
    const mcp: Identity = { username: 'mcp:desk', role: 'mcp', name: 'desk' };
    const msg = (type: string) => Buffer.from(JSON.stringify({ v: 1, type, xfer: 'a'.repeat(32) }));
    expect(denyPublish(mcp, 'm-1', t.filesIn('nb', 'm-1'), msg('put'), ctx)).toBeNull();
    expect(denyPublish(mcp, 'm-1', t.filesIn('nb', 'm-1'), msg('get'), ctx)).toBeNull();
    expect(denyPublish(mcp, 'm-1', t.filesInData('nb', 'm-1'), Buffer.from([1, 2, 3]), ctx)).toBeNull();
    expect(denyPublish(mcp, 'm-1', t.filesIn('nb', 'm-1'), msg('image.put'), ctx)).toContain('may not push images');
    expect(denyPublish(mcp, 'm-1', t.filesIn('nb', 'm-1'), Buffer.from('not json'), ctx)).not.toBeNull();
    expect(denyPublish(mcp, 'm-1', t.filesIn('nb', 'm-2'), msg('put'), ctx)).toContain('own client id');
    expect(denyPublish(mcp, 'm-1', t.filesOut('nb', 'm-1'), msg('meta'), ctx)).not.toBeNull();
    expect(denySubscribe(mcp, 'm-1', t.filesOut('nb', 'm-1'), ctx)).toBeNull();
    expect(denySubscribe(mcp, 'm-1', t.filesOutData('nb', 'm-1'), ctx)).toBeNull();
  });
});
