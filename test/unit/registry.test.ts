/**
 * NodeRegistry.snapshot: entries are reused while a node is unchanged and rebuilt after any
 * change (heartbeat, reservation, release, drain, missed heartbeats); an earlier snapshot keeps
 * showing what it showed.
 */
import { describe, expect, it } from 'vitest';
import { NodeRegistry } from '../../controller/registry.js';
import type { NodeStatus } from '../../shared/schemas/index.js';

const status = (node: string, seq: number): NodeStatus => ({
  v: 1,
  node,
  state: 'online',
  version: 't',
  seq,
  ts: seq,
  heartbeatMs: 1000,
  capacity: { cpu: { cores: 4, loadPercent: 0 }, memory: { total: 8 << 30, available: 8 << 30 }, gpus: [], docker: { available: false } },
  offer: { maxMemory: null, maxTasks: 4, executors: ['exec'], labels: {}, lostAfterMs: 0 },
  running: [],
});

describe('NodeRegistry.snapshot', () => {
  it('reuses unchanged nodes and reflects every change', () => {
    const r = new NodeRegistry();
    r.update(status('a', 1), 100);
    r.update(status('b', 1), 100);
    const s1 = r.snapshot(200, 'spread');
    const s2 = r.snapshot(300, 'spread');
    expect(s2.nodes[0]).toBe(s1.nodes[0]);
    expect(s2.now).toBe(300);

    r.reserve('a', 't1', 1 << 30);
    const s3 = r.snapshot(300, 'spread');
    expect(s3.nodes[0]).toMatchObject({ node: 'a', reservedMemory: 1 << 30, reservedTasks: 1 });
    expect(s3.nodes[1]).toBe(s1.nodes[1]);
    expect(s1.nodes[0]).toMatchObject({ reservedMemory: 0, reservedTasks: 0 }); // the earlier picture is unchanged

    r.release('a', 't1');
    expect(r.snapshot(300, 'spread').nodes[0]).toMatchObject({ reservedMemory: 0, reservedTasks: 0 });

    r.setDrained('b', true);
    expect(r.snapshot(300, 'spread').nodes[1]).toMatchObject({ node: 'b', drained: true });

    r.update(status('a', 2), 400);
    expect(r.snapshot(400, 'spread').nodes[0]).toMatchObject({ lastSeenMs: 400, status: { seq: 2 } });

    r.markDown('a', 'no heartbeat for 3 s', 500);
    expect(r.snapshot(500, 'spread').nodes[0].status).toMatchObject({ state: 'offline', reason: 'no heartbeat for 3 s' });
  });
});
