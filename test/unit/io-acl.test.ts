/** The ACL rule for a task's inputs and outputs (shared/schemas/io.ts): only the task's submitter may send its `io.*`/`put`/`get`. */
import { describe, expect, it } from 'vitest';
import { type AclContext, type AssignmentView, denyPublish, denySubscribe } from '../../broker/acl.js';
import type { Identity } from '../../broker/identities.js';
import { topics } from '../../shared/topics.js';

const t = topics();
const alice: Identity = { username: 'admin:alice', role: 'admin', name: 'alice' };
const bob: Identity = { username: 'admin:bob', role: 'admin', name: 'bob' };
const task: AssignmentView = { node: 'nb', attempt: 1, state: 'assigned', ports: [], submitter: 'admin:alice' };
const ctx: AclContext = { t, haPrefix: 'homeassistant', assignmentOf: (id) => (id === 'job1' ? task : undefined) };
const msg = (body: object) => Buffer.from(JSON.stringify({ v: 1, xfer: 'a'.repeat(32), ...body }));
const diff = msg({ type: 'io.diff', task: 'job1', attempt: 1, input: 0, files: [] });

describe('ACL for task inputs and outputs', () => {
  it('lets the submitter send io requests and task transfers for its own task', () => {
    expect(denyPublish(alice, 'cli-a', t.filesIn('nb', 'cli-a'), diff, ctx)).toBeNull();
    const put = msg({ type: 'put', task: 'job1', attempt: 1, path: 'x', size: 1, sha256: 'b'.repeat(64) });
    expect(denyPublish(alice, 'cli-a', t.filesIn('nb', 'cli-a'), put, ctx)).toBeNull();
  });

  it("refuses another identity's io requests and transfers for the task, naming the submitter", () => {
    expect(denyPublish(bob, 'cli-b', t.filesIn('nb', 'cli-b'), diff, ctx)).toMatch(/submitted by admin:alice, not admin:bob/);
    const get = msg({ type: 'get', task: 'job1', attempt: 1, output: 0, path: 'sums', offset: 0 });
    expect(denyPublish(bob, 'cli-b', t.filesIn('nb', 'cli-b'), get, ctx)).toMatch(/only its submitter/);
    expect(denyPublish(bob, 'cli-b', t.filesIn('nb', 'cli-b'), msg({ type: 'io.done', task: 'nope', attempt: 1 }), ctx)).toMatch(/unknown/);
  });

  it('leaves plain file transfers and chunk frames to the rules that were there', () => {
    expect(denyPublish(bob, 'cli-b', t.filesIn('nb', 'cli-b'), msg({ type: 'vol.ls' }), ctx)).toBeNull();
    expect(denyPublish(bob, 'cli-b', t.filesInData('nb', 'cli-b'), Buffer.from([1, 2, 3]), ctx)).toBeNull();
    // Another client id's topic stays refused whatever the payload.
    expect(denyPublish(alice, 'cli-a', t.filesIn('nb', 'cli-b'), diff, ctx)).not.toBeNull();
    // Without a controller next to the broker nothing is known: allowed.
    expect(denyPublish(bob, 'cli-b', t.filesIn('nb', 'cli-b'), diff, { t, haPrefix: 'homeassistant' })).toBeNull();
  });

  it("lets an agent only read another node's files (node-to-node copies), never write, load or send chunks there", () => {
    const nb: Identity = { username: 'agent:nb', role: 'agent', name: 'nb' };
    const to = t.filesIn('other', 'cutter-agent-nb');
    expect(denyPublish(nb, 'cutter-agent-nb', to, msg({ type: 'vol.manifest', volume: 'd', path: '', offset: 0 }), ctx)).toBeNull();
    expect(denyPublish(nb, 'cutter-agent-nb', to, msg({ type: 'get', volume: 'd', path: 'x', offset: 0 }), ctx)).toBeNull();
    expect(denyPublish(nb, 'cutter-agent-nb', to, msg({ type: 'put', path: 'x', size: 1, sha256: 'b'.repeat(64) }), ctx)).toMatch(
      /only vol.manifest/,
    );
    expect(
      denyPublish(nb, 'cutter-agent-nb', to, msg({ type: 'image.put', image: 'x', size: 1, sha256: 'b'.repeat(64) }), ctx),
    ).not.toBeNull();
    expect(denyPublish(nb, 'cutter-agent-nb', to, msg({ type: 'vol.rm', volume: 'd' }), ctx)).not.toBeNull();
    expect(denyPublish(nb, 'cutter-agent-nb', t.filesInData('other', 'cutter-agent-nb'), Buffer.from([1]), ctx)).not.toBeNull();
    // Only as its own client id, and it reads only the answers to that client id.
    expect(denyPublish(nb, 'cutter-agent-nb', t.filesIn('other', 'cli-1'), msg({ type: 'get', path: 'x', offset: 0 }), ctx)).not.toBeNull();
    expect(denySubscribe(nb, 'cutter-agent-nb', t.filesOut('other', 'cutter-agent-nb'), ctx)).toBeNull();
    expect(denySubscribe(nb, 'cutter-agent-nb', t.filesOutData('other', 'cutter-agent-nb'), ctx)).toBeNull();
    expect(denySubscribe(nb, 'cutter-agent-nb', t.filesOut('other', 'cli-1'), ctx)).not.toBeNull();
  });
});
