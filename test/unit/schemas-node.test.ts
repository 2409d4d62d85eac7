/**
 * The node-side message schemas: a node's status (heartbeat, capacity, last will), the
 * controller's status and the node view the CLI shows.
 */
import { describe, expect, it } from 'vitest';
import { ControllerStatusSchema, NodeStatusSchema, NodeViewSchema } from '../../shared/schemas/index.js';
import { GiB, TS, type Json, DELETE, patch, BAD_IDS, accepts, rejects, nodeStatus, lastWill } from './schemas-fixtures.js';

describe('NodeStatusSchema', () => {
  it('accepts a full status', () => {
    const parsed = NodeStatusSchema.parse(nodeStatus);
    expect(parsed.capacity?.memory.total).toBe(64 * GiB);
    expect(parsed.running).toHaveLength(1);
  });

  it('accepts the minimal last-will form and fills running with []', () => {
    const parsed = NodeStatusSchema.parse(lastWill);
    expect(parsed.state).toBe('offline');
    expect(parsed.capacity).toBeUndefined();
    expect(parsed.offer).toBeUndefined();
    expect(parsed.running).toEqual([]);
  });

  it('defaults offer.labels to {}', () => {
    const parsed = NodeStatusSchema.parse(patch(nodeStatus, 'offer.labels', DELETE));
    expect(parsed.offer?.labels).toEqual({});
  });

  it('defaults offer.lostAfterMs to 0 (tasks lost at once) and keeps an explicit window', () => {
    expect(NodeStatusSchema.parse(nodeStatus).offer?.lostAfterMs).toBe(0);
    expect(NodeStatusSchema.parse(patch(nodeStatus, 'offer.lostAfterMs', 600_000)).offer?.lostAfterMs).toBe(600_000);
    expect(NodeStatusSchema.parse(patch(nodeStatus, 'offer.lostAfterMs', 0)).offer?.lostAfterMs).toBe(0);
  });

  it('accepts the draining state', () => {
    accepts(NodeStatusSchema, { ...nodeStatus, state: 'draining' });
  });

  it('accepts maxMemory null (offer all memory) and an offline reason', () => {
    accepts(NodeStatusSchema, patch(nodeStatus, 'offer.maxMemory', null));
    accepts(NodeStatusSchema, { ...lastWill, reason: 'keepalive timeout' });
  });

  it.each(BAD_IDS)('rejects node id %j', (id) => {
    rejects(NodeStatusSchema, { ...lastWill, node: id });
  });

  it('accepts a 64-character node id, the longest allowed', () => {
    accepts(NodeStatusSchema, { ...lastWill, node: 'x'.repeat(64) });
  });

  it.each([
    ['v: 2', 'v', 2],
    ['v as string', 'v', '1'],
    ['unknown state', 'state', 'sleeping'],
    ['the task state unknown', 'state', 'unknown'],
    ['missing version', 'version', DELETE],
    ['missing state', 'state', DELETE],
    ['missing heartbeatMs', 'heartbeatMs', DELETE],
    ['negative seq', 'seq', -1],
    ['fractional seq', 'seq', 1.5],
    ['seq as string', 'seq', '42'],
    ['negative ts', 'ts', -5],
    ['zero heartbeat', 'heartbeatMs', 0],
    ['negative memory total', 'capacity.memory.total', -1],
    ['memory available as text', 'capacity.memory.available', '40g'],
    ['fractional bytes', 'capacity.memory.available', 1.5],
    ['zero cores', 'capacity.cpu.cores', 0],
    ['load over 100%', 'capacity.cpu.loadPercent', 101],
    ['negative load', 'capacity.cpu.loadPercent', -1],
    ['negative GPU memory', 'capacity.gpus.0.memoryTotal', -1],
    ['docker.available missing', 'capacity.docker.available', DELETE],
    ['unknown executor', 'offer.executors', ['podman']],
    ['zero maxTasks', 'offer.maxTasks', 0],
    ['negative maxMemory', 'offer.maxMemory', -1],
    ['negative lostAfterMs', 'offer.lostAfterMs', -1],
    ['fractional lostAfterMs', 'offer.lostAfterMs', 1.5],
    ['lostAfterMs as text', 'offer.lostAfterMs', '10m'],
    ['lostAfterMs null', 'offer.lostAfterMs', null],
    ['running task with negative memory', 'running.0.memory', -1],
    ['running task with attempt 0', 'running.0.attempt', 0],
    ['running task id with /', 'running.0.taskId', 'a/b'],
    ['running as object', 'running', {}],
    ['hostname too long', 'hostname', 'h'.repeat(256)],
  ])('rejects %s', (_name, path, value) => {
    rejects(NodeStatusSchema, patch(nodeStatus, path, value));
  });

  it('rejects non-objects', () => {
    for (const v of [null, 42, 'status', [], undefined]) rejects(NodeStatusSchema, v);
  });
});

describe('ControllerStatusSchema', () => {
  const status: Json = { v: 1, state: 'online', version: '0.1.0', ts: TS };

  it('accepts online and offline', () => {
    accepts(ControllerStatusSchema, status);
    accepts(ControllerStatusSchema, { ...status, state: 'offline' });
  });

  it.each([
    ['state draining', 'state', 'draining'],
    ['v: 2', 'v', 2],
    ['negative ts', 'ts', -1],
    ['missing version', 'version', DELETE],
    ['version too long', 'version', 'v'.repeat(51)],
  ])('rejects %s', (_name, path, value) => {
    rejects(ControllerStatusSchema, patch(status, path, value));
  });
});

describe('NodeViewSchema', () => {
  const view: Json = {
    node: 'gpu-box',
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 800,
    reservedMemory: 0,
    status: nodeStatus,
  };

  it('accepts online, drained and offline views wrapping a node status', () => {
    accepts(NodeViewSchema, view);
    const drained = NodeViewSchema.parse({ ...view, state: 'draining', drained: true });
    expect(drained.drained).toBe(true);
    // silent for too long: offline to the controller although its last status says online
    const silent = NodeViewSchema.parse({ ...view, state: 'offline', offlineReason: 'no heartbeat for 5.1 s', lastSeenAgoMs: 5_100 });
    expect(silent.offlineReason).toBe('no heartbeat for 5.1 s');
    expect(silent.status.state).toBe('online');
    accepts(NodeViewSchema, { ...view, state: 'offline', offlineReason: 'connection lost', status: lastWill });
  });

  it.each([
    ['negative reservation', 'reservedMemory', -1],
    ['unknown state', 'state', 'zombie'],
    ['the old stale state', 'state', 'stale'],
    ['missing drained', 'drained', DELETE],
    ['drained as string', 'drained', 'yes'],
    ['missing offlineReason (null, not absent)', 'offlineReason', DELETE],
    ['offlineReason too long', 'offlineReason', 'r'.repeat(501)],
    ['negative lastSeenAgoMs', 'lastSeenAgoMs', -1],
    ['invalid status', 'status.node', 'a/b'],
  ])('rejects %s', (_name, path, value) => {
    rejects(NodeViewSchema, patch(view, path, value));
  });
});
