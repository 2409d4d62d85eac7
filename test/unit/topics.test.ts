/**
 * MQTT topics built from ids (shared/topics.ts), the ids they accept, and topic filter matching.
 */
import { describe, expect, it } from 'vitest';
import { topicMatches } from '../../shared/topics.js';
import { ID_RE, IdSchema, topics } from '../../shared/topics.js';

describe('topics', () => {
  const t = topics();

  it('builds every topic under cutter/v1 by default', () => {
    expect(t.prefix).toBe('cutter');
    expect(t.nodeStatus('n1')).toBe('cutter/v1/nodes/n1/status');
    expect(t.allNodeStatus()).toBe('cutter/v1/nodes/+/status');
    expect(t.nodeAssign('n1')).toBe('cutter/v1/nodes/n1/assign');
    expect(t.nodeCancel('n1')).toBe('cutter/v1/nodes/n1/cancel');
    expect(t.taskEvents('t1')).toBe('cutter/v1/tasks/t1/events');
    expect(t.allTaskEvents()).toBe('cutter/v1/tasks/+/events');
    expect(t.taskState('t1')).toBe('cutter/v1/tasks/t1/state');
    expect(t.allTaskState()).toBe('cutter/v1/tasks/+/state');
    expect(t.requests('c1')).toBe('cutter/v1/requests/c1');
    expect(t.allRequests()).toBe('cutter/v1/requests/+');
    expect(t.replies('c1')).toBe('cutter/v1/replies/c1');
    expect(t.controllerStatus()).toBe('cutter/v1/controller/status');
  });

  it('uses a custom prefix, which may have several levels', () => {
    const h = topics('home/lab');
    expect(h.prefix).toBe('home/lab');
    expect(h.nodeStatus('n1')).toBe('home/lab/v1/nodes/n1/status');
    expect(h.idFrom('home/lab/v1/nodes/n1/status', 'nodes')).toBe('n1');
    expect(h.idFrom('cutter/v1/nodes/n1/status', 'nodes')).toBeNull();
  });

  it('every wildcard filter matches the topics its builder makes', () => {
    expect(topicMatches(t.allNodeStatus(), t.nodeStatus('gpu-box'))).toBe(true);
    expect(topicMatches(t.allTaskEvents(), t.taskEvents('t-1'))).toBe(true);
    expect(topicMatches(t.allTaskState(), t.taskState('t-1'))).toBe(true);
    expect(topicMatches(t.allRequests(), t.requests('cli-1'))).toBe(true);
    expect(topicMatches(t.allNodeStatus(), t.nodeAssign('gpu-box'))).toBe(false);
    expect(topicMatches(t.allTaskEvents(), t.taskState('t-1'))).toBe(false);
  });

  it.each(['a+b', 'a#', '#', '+', '', '/cutter', 'cutter/'])('refuses prefix %j', (prefix) => {
    expect(() => topics(prefix)).toThrow(/prefix/);
  });

  describe('idFrom', () => {
    it('parses the id of each kind', () => {
      expect(t.idFrom('cutter/v1/nodes/gpu-box_1.lan/status', 'nodes')).toBe('gpu-box_1.lan');
      expect(t.idFrom('cutter/v1/nodes/n1/assign', 'nodes')).toBe('n1');
      expect(t.idFrom('cutter/v1/tasks/t-9/events', 'tasks')).toBe('t-9');
      expect(t.idFrom('cutter/v1/requests/cli-1', 'requests')).toBe('cli-1');
      expect(t.idFrom('cutter/v1/replies/cli-1', 'replies')).toBe('cli-1');
    });

    it('returns null for another kind, another prefix or another version', () => {
      expect(t.idFrom('cutter/v1/tasks/t1/events', 'nodes')).toBeNull();
      expect(t.idFrom('other/v1/nodes/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('cutter/v2/nodes/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('cutter/v1/nodesX/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('xcutter/v1/nodes/n1/status', 'nodes')).toBeNull();
    });

    it.each(['', '.hidden', '-dash', 'a b', 'x'.repeat(65), '+', '#', 'ü'])('rejects the id %j', (id) => {
      expect(t.idFrom(`cutter/v1/nodes/${id}/status`, 'nodes')).toBeNull();
    });

    it('accepts a 64-character id', () => {
      expect(t.idFrom(`cutter/v1/tasks/${'a'.repeat(64)}/state`, 'tasks')).toBe('a'.repeat(64));
    });
  });

  it('ID_RE and IdSchema agree', () => {
    for (const id of ['a', 'A_1', '_x', 'n.lan', 'a-b', 'x'.repeat(64)]) {
      expect(ID_RE.test(id)).toBe(true);
      expect(IdSchema.safeParse(id).success).toBe(true);
    }
    for (const id of ['', '.a', '-a', 'a/b', 'a+b', 'a#b', 'x'.repeat(65)]) {
      expect(ID_RE.test(id)).toBe(false);
      expect(IdSchema.safeParse(id).success).toBe(false);
    }
  });
});

describe('topicMatches', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/x/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/', true], // + matches an empty level
    ['+/+', '/finance', true],
    ['a/#', 'a/b/c/d', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a', true], // # also matches the parent level (MQTT 3.1.1 §4.7.1.2)
    ['a/#', 'b/c', false],
    ['#', 'anything/at/all', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a/b', 'a', false],
    ['cutter/v1/nodes/+/status', 'cutter/v1/nodes/n1/status', true],
    ['cutter/v1/nodes/+/status', 'cutter/v1/nodes/n1/assign', false],
    ['A/b', 'a/b', false],
  ])('%j vs %j → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
