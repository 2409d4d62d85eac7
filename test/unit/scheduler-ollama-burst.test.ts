/**
 * Ollama routing under load (issue 14): a node without the model is a candidate only for a
 * request that may pull it, and the requests the controller placed count as in flight from
 * placement to their end (NodeRegistry), not only from heartbeats. So a burst between two
 * heartbeats fills the nodes that have the model up to their task limit and then queues
 * (`max-tasks`), instead of spilling to a node where Ollama would answer 404.
 */
import { describe, expect, it } from 'vitest';
import { NodeRegistry } from '../../controller/registry.js';
import { place } from '../../controller/scheduler/place.js';
import type { PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { NodeStatusSchema, type NodeStatus } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const NOW = 1_700_000_000_000;
const MODEL = 'llama3:8b';

/** A node's status as the wire delivers it: the model on disk or not, `running` ollama tasks listed. */
function status(node: string, hasModel: boolean, running: string[] = [], maxTasks = 2): NodeStatus {
  return NodeStatusSchema.parse({
    v: 1,
    node,
    state: 'online',
    version: '0.1.0',
    seq: 1,
    ts: NOW,
    heartbeatMs: 1_000,
    capacity: {
      cpu: { cores: 8, loadPercent: 10 },
      memory: { total: 64 * GiB, available: 60 * GiB },
      gpus: [],
      docker: { available: false },
      ollama: { available: true, version: '0.12.6', models: hasModel ? [{ name: MODEL, size: 5 * GiB }] : [], loaded: [] },
    },
    offer: { maxMemory: 16 * GiB, maxTasks, executors: ['ollama'], labels: {}, lostAfterMs: 0 },
    running: running.map((taskId) => ({ taskId, attempt: 1, memory: 0, kind: 'ollama' })),
  });
}

const generate = (pull = false): PlacementRequest => ({
  kind: 'ollama',
  requirements: { memory: 0, cpus: 0 },
  ollama: { op: 'generate', model: MODEL, pull },
});

/** a and b have the model, c does not; no heartbeat lists anything yet. */
function mesh(maxTasks = 2): NodeRegistry {
  const r = new NodeRegistry();
  r.update(status('a', true, [], maxTasks), NOW);
  r.update(status('b', true, [], maxTasks), NOW);
  r.update(status('c', false, [], maxTasks), NOW);
  return r;
}

/** Places like controller/placement.ts does: a reservation plus what the attempt serves. */
function placeOne(r: NodeRegistry, taskId: string, req = generate()) {
  const p = place(req, r.snapshot(NOW, 'spread'));
  if (p.ok) {
    r.reserve(p.node, taskId, 0);
    r.describe(p.node, taskId, { model: req.ollama!.model, pulls: req.ollama!.op === 'pull' || req.ollama!.pull });
  }
  return p;
}

describe('ollama routing under load', () => {
  it('never sends a request that may not pull to a node without the model, even when the holders are busy (F8)', () => {
    const r = new NodeRegistry();
    r.update(status('a', true, ['t1', 't2']), NOW);
    r.update(status('b', true, ['t3', 't4']), NOW);
    r.update(status('c', false), NOW);
    const p = place(generate(), r.snapshot(NOW, 'spread'));
    expect(p).toMatchObject({
      ok: false,
      rejections: [
        { node: 'a', code: 'max-tasks', running: 2, max: 2 },
        { node: 'b', code: 'max-tasks', running: 2, max: 2 },
        { node: 'c', code: 'model-missing', model: MODEL },
      ],
    });
    // The same request with pull allowed may go there, and says so.
    const pull = place(generate(true), r.snapshot(NOW, 'spread'));
    expect(pull).toMatchObject({ ok: true, node: 'c' });
    expect(pull.ok && pull.reason).toMatch(/model must pull/);
  });

  it('spreads a burst of 12 over the holders up to their task limit before any heartbeat, and queues the rest', () => {
    const r = mesh();
    const placed: string[] = [];
    const refused: string[][] = [];
    for (let i = 0; i < 12; i++) {
      const p = placeOne(r, `q${i}`);
      if (p.ok) placed.push(p.node);
      else refused.push(p.rejections.map((x) => `${x.node}:${x.code}`));
    }
    expect(placed.sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(refused).toHaveLength(8);
    // What `when-busy` queueing reads: the holders are busy, the other node lacks the model.
    for (const codes of refused) expect(codes).toEqual(['a:max-tasks', 'b:max-tasks', 'c:model-missing']);
  });

  it('keeps counting a request in flight until the controller saw it end, whatever the heartbeats say', () => {
    const r = mesh();
    for (const id of ['q0', 'q1', 'q2', 'q3']) expect(placeOne(r, id).ok).toBe(true);
    // The heartbeats list them (reservations dropped), then a status that lists none of them
    // (sent before the agent took them, or after it dropped them): still in flight here.
    r.update(status('a', true, ['q0', 'q2']), NOW);
    r.update(status('a', true, []), NOW);
    r.update(status('b', true, []), NOW);
    expect(placeOne(r, 'q4')).toMatchObject({ ok: false });
    // The controller saw q0 end on a: one slot there, and only there.
    r.release('a', 'q0');
    expect(placeOne(r, 'q5')).toMatchObject({ ok: true, node: 'a' });
    expect(placeOne(r, 'q6')).toMatchObject({ ok: false });
  });

  it('ranks holders by the requests in flight by its own count when heartbeats lag', () => {
    const r = mesh(8);
    // Three requests placed on a whose heartbeat listed them and dropped the reservations.
    for (const id of ['x0', 'x1', 'x2']) {
      r.reserve('a', id, 0);
      r.describe('a', id, { model: MODEL, pulls: false });
    }
    r.update(status('a', true, ['x0', 'x1', 'x2'], 8), NOW);
    r.update(status('a', true, [], 8), NOW);
    const p = place(generate(), r.snapshot(NOW, 'spread'));
    expect(p).toMatchObject({ ok: true, node: 'b' });
    const snap = r.snapshot(NOW, 'spread');
    expect(snap.nodes.find((n) => n.node === 'a')).toMatchObject({ unlisted: 3, models: { [MODEL]: { count: 3, pulling: 0 } } });
  });

  it('prefers a node already pulling the model for a request in flight over one that must pull it', () => {
    const r = new NodeRegistry();
    r.update(status('c', false, [], 8), NOW);
    r.update(status('d', false, [], 8), NOW);
    // The first pull-allowed request: both must pull, ties go to the first id… made d by a pull in flight there.
    r.reserve('d', 'p0', 0);
    r.describe('d', 'p0', { model: MODEL, pulls: true });
    const p = place(generate(true), r.snapshot(NOW, 'spread'));
    expect(p).toMatchObject({ ok: true, node: 'd' });
    expect(p.ok && p.reason).toMatch(/model loading/);
    // A request that may not pull still cannot go there: the model is not on disk yet.
    expect(place(generate(false), r.snapshot(NOW, 'spread'))).toMatchObject({
      ok: false,
      rejections: [
        { node: 'c', code: 'model-missing' },
        { node: 'd', code: 'model-missing' },
      ],
    });
  });
});
