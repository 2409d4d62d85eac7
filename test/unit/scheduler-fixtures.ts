/** Fixtures of the scheduler tests (scheduler-*.test.ts): nodes as the wire delivers them, snapshots, requests. */
import { expect } from 'vitest';
import { place } from '../../controller/scheduler/place.js';
import type { ClusterSnapshot, NodeSnapshot, Placement, PlacementRequest } from '../../controller/scheduler/snapshot.js';
import { NodeStatusSchema, type NodeStatus, type Rejection, type TaskKind } from '../../shared/schemas/index.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
export const NOW = 1_700_000_000_000;

export interface NodeOpts {
  state?: NodeStatus['state'];
  reason?: string;
  cores?: number;
  /** capacity.memory.total, bytes */
  total?: number;
  /** capacity.memory.available, bytes */
  available?: number;
  maxMemory?: number | null;
  maxTasks?: number;
  executors?: ('docker' | 'exec')[];
  dockerError?: string;
  /** memory of each running task, bytes */
  running?: number[];
  heartbeatMs?: number;
  /** ms since the controller last heard from the node */
  silentFor?: number;
  reservedMemory?: number;
  reservedTasks?: number;
  /** omit capacity and offer (a node that has not announced yet, or a last will) */
  bare?: boolean;
}

/** A NodeStatus that passes NodeStatusSchema (so the scheduler is fed what the wire delivers). */
export function makeStatus(node: string, o: NodeOpts = {}): NodeStatus {
  const executors = o.executors ?? ['docker'];
  const raw = {
    v: 1,
    node,
    state: o.state ?? 'online',
    version: '0.1.0',
    seq: 7,
    ts: NOW - 100,
    heartbeatMs: o.heartbeatMs ?? 2_000,
    hostname: `${node}.lan`,
    ...(o.reason ? { reason: o.reason } : {}),
    ...(o.bare
      ? {}
      : {
          capacity: {
            cpu: { cores: o.cores ?? 8, loadPercent: 12.5 },
            memory: { total: o.total ?? 32 * GiB, available: o.available ?? 32 * GiB },
            gpus: [],
            docker: executors.includes('docker')
              ? { available: true, version: '27.0.1' }
              : { available: false, ...(o.dockerError ? { error: o.dockerError } : {}) },
          },
          offer: {
            maxMemory: o.maxMemory === undefined ? null : o.maxMemory,
            maxTasks: o.maxTasks ?? 4,
            executors,
            labels: {},
          },
        }),
    running: (o.running ?? []).map((memory, i) => ({ taskId: `${node}-t${i}`, attempt: 1, memory })),
  };
  return NodeStatusSchema.parse(raw);
}

export function makeNode(node: string, o: NodeOpts = {}): NodeSnapshot {
  return {
    node,
    status: makeStatus(node, o),
    lastSeenMs: NOW - (o.silentFor ?? 500),
    reservedMemory: o.reservedMemory ?? 0,
    reservedTasks: o.reservedTasks ?? 0,
  };
}

export function cluster(nodes: NodeSnapshot[], policy: ClusterSnapshot['policy'] = 'spread'): ClusterSnapshot {
  return { now: NOW, nodes, policy };
}

export function req(memory = 0, extra: { kind?: TaskKind; cpus?: number; node?: string } = {}): PlacementRequest {
  return {
    kind: extra.kind ?? 'docker',
    requirements: { memory, cpus: extra.cpus ?? 0, ...(extra.node ? { node: extra.node } : {}) },
  };
}

export type Rejected = Extract<Placement, { ok: false }>;
export type Placed = Extract<Placement, { ok: true }>;

export function expectPlaced(p: Placement): Placed {
  if (!p.ok) throw new Error(`expected a placement, got rejection: ${p.message} ${JSON.stringify(p.rejections)}`);
  return p;
}

export function expectRejected(p: Placement): Rejected {
  if (p.ok) throw new Error(`expected a rejection, got placement on ${p.node}: ${p.reason}`);
  return p;
}

/** Why the single candidate `node` was rejected for `r` (the rejection without its node). */
export function reasonFor(n: NodeSnapshot, r: PlacementRequest = req()): Omit<Rejection, 'node'> {
  const p = expectRejected(place(r, cluster([n])));
  expect(p.rejections).toHaveLength(1);
  expect(p.rejections[0].node).toBe(n.node);
  const { node: _node, ...rest } = p.rejections[0];
  return rest;
}

/** Adds the reservation the controller holds after placing `memory` bytes on `node`. */
export function withReservation(s: ClusterSnapshot, node: string, memory: number): ClusterSnapshot {
  return {
    ...s,
    nodes: s.nodes.map((n) =>
      n.node === node ? { ...n, reservedMemory: n.reservedMemory + memory, reservedTasks: n.reservedTasks + 1 } : n,
    ),
  };
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}
