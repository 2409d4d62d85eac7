import { describe, expect, it } from 'vitest';
import { haTopics, topics } from '../../shared/topics.js';

describe('topics().parse: every topic cutter builds parses back to what built it', () => {
  const t = topics('lab');
  it('round-trips each builder', () => {
    expect(t.parse(t.nodeStatus('gpu-box'))).toEqual({ kind: 'nodeStatus', node: 'gpu-box' });
    expect(t.parse(t.nodeAssign('n1'))).toEqual({ kind: 'nodeAssign', node: 'n1' });
    expect(t.parse(t.nodeCancel('n1'))).toEqual({ kind: 'nodeCancel', node: 'n1' });
    expect(t.parse(t.nodePorts('n1', 't-9'))).toEqual({ kind: 'nodePorts', node: 'n1', task: 't-9' });
    expect(t.parse(t.nodeStdin('n1', 't-9'))).toEqual({ kind: 'nodeStdin', node: 'n1', task: 't-9' });
    expect(t.parse(t.nodeStdinAck('n1', 't-9'))).toEqual({ kind: 'nodeStdinAck', node: 'n1', task: 't-9' });
    expect(t.parse(t.filesIn('n1', 'cli-1'))).toEqual({ kind: 'filesIn', node: 'n1', client: 'cli-1' });
    expect(t.parse(t.filesInData('n1', 'cli-1'))).toEqual({ kind: 'filesInData', node: 'n1', client: 'cli-1' });
    expect(t.parse(t.filesOut('n1', 'cli-1'))).toEqual({ kind: 'filesOut', node: 'n1', client: 'cli-1' });
    expect(t.parse(t.filesOutData('n1', 'cli-1'))).toEqual({ kind: 'filesOutData', node: 'n1', client: 'cli-1' });
    expect(t.parse(t.taskEvents('t-1'))).toEqual({ kind: 'taskEvents', task: 't-1' });
    expect(t.parse(t.taskState('t-1'))).toEqual({ kind: 'taskState', task: 't-1' });
    expect(t.parse(t.forwardState('t-1'))).toEqual({ kind: 'forwardState', task: 't-1' });
    expect(t.parse(t.requests('c'))).toEqual({ kind: 'requests', client: 'c' });
    expect(t.parse(t.replies('c'))).toEqual({ kind: 'replies', client: 'c' });
    expect(t.parse(t.controllerStatus())).toEqual({ kind: 'controllerStatus' });
  });

  it('refuses other prefixes, wildcards, bad ids and extra or missing levels', () => {
    for (const bad of [
      'cutter/v1/nodes/n1/status',
      t.allNodeStatus(),
      t.allTaskEvents(),
      'lab/v1/nodes/../status',
      'lab/v1/nodes/n1/status/extra',
      'lab/v1/nodes/n1',
      'lab/v1/nodes/n1/files/in/c/data/more',
      'lab/v1/nodes/n1/files/sideways/c',
      'lab/v1/nodes/n1/stdin',
      'lab/v1/nodes/n1/stdin/t-9/nack',
      'lab/v1/nodes/n1/stdin/t-9/ack/more',
      'lab/v1/tasks/t-1',
      'lab/v1/controller/status/x',
      'lab/v1',
      '',
    ])
      expect(t.parse(bad), bad).toBeNull();
  });

  it('parses a Home Assistant drain command to its node', () => {
    const ha = haTopics('lab', 'homeassistant');
    expect(ha.drainCommandNode(ha.drainCommand('gpu-box'))).toBe('gpu-box');
    expect(ha.drainCommandNode(ha.allDrainCommands())).toBeNull();
    expect(ha.drainCommandNode('lab/v1/ha/nodes/a/b/drain/set')).toBeNull();
  });
});
