/**
 * The scheduler's input: a frozen picture of the cluster. Built by the controller's registry,
 * consumed by `place()`; nothing in here talks to the network.
 */
import type { PlacementRule } from '../../shared/ollama.js';
import type { Headroom, NodeStatus, OllamaOp, Rejection, Requirements, TaskKind } from '../../shared/schemas/index.js';

/** One node as the scheduler sees it. */
export interface NodeSnapshot {
  node: string;
  /** The node's last NodeStatus. */
  status: NodeStatus;
  /** When the controller last heard from the node, ms epoch on the controller's clock. */
  lastSeenMs: number;
  /** Memory held for tasks placed here that the node's heartbeat does not list yet, bytes. */
  reservedMemory: number;
  /** Number of such tasks. */
  reservedTasks: number;
  /** Drained with `cutter nodes drain`: takes no new tasks. */
  drained?: boolean;
  /**
   * Attempts the controller placed here that have not ended (from placement to their end, by its
   * own task records) and that the node's last heartbeat does not list: they count as running, so
   * a burst placed between two heartbeats sees them. Includes the reserved ones. Absent: none.
   */
  unlisted?: number;
  /**
   * Ollama requests in flight here by the controller's own records (placement → end), per
   * canonical model name (`name:tag`): how many, and how many of them may pull the model first.
   */
  models?: Readonly<Record<string, ModelWork>>;
  /**
   * UUIDs of the node's GPUs the controller handed to attempts placed here that have not ended (by
   * its own records, placement → end), whatever the heartbeat says. Absent: none.
   */
  gpusHeld?: readonly string[];
}

/** Ollama work in flight on one node for one model (counts). */
export interface ModelWork {
  count: number;
  /** Of those, requests that may pull the model (op `pull`, or `pull: true`). */
  pulling: number;
}

/** The whole cluster at one instant. */
export interface ClusterSnapshot {
  /** ms epoch, controller clock. */
  now: number;
  nodes: readonly NodeSnapshot[];
  /**
   * The same nodes in headroom order (scheduler/headroom.ts: most free memory first, ties by id),
   * as the registry keeps it. Absent: place() sorts them itself.
   */
  ranked?: readonly NodeSnapshot[];
  /** spread = most headroom left (default); binpack = least headroom left. */
  policy: 'spread' | 'binpack';
  /** The Ollama placement file's rules (first match applies; an explicit node overrides them). */
  modelRules?: readonly PlacementRule[];
  /** The server's `--prefer-local` default and `--local-headroom` (a task's own requirements win). Absent: off. */
  local?: { prefer: boolean; headroom: Headroom };
}

/** What a task needs. */
export interface PlacementRequest {
  kind: TaskKind;
  requirements: Requirements;
  /** For exec tasks that ask for limits: which (the node must be able to enforce them). */
  execLimits?: { memory: boolean; cpus: boolean };
  /** For exec tasks with `-t`: the node's agent must be able to give them a pseudo-terminal. */
  execTty?: boolean;
  /** Volumes the task mounts (docker `mounts` of type volume, exec `volumes`): only nodes that announce them all fit. */
  volumes?: string[];
  /** Host paths a docker task bind-mounts: only nodes whose policy (`hostPaths`) allows each fit. */
  hostPaths?: string[];
  /** For ollama tasks: the operation, the model, and whether the node may pull it first. */
  ollama?: { op: OllamaOp; model: string; pull: boolean };
  /**
   * What the node's announced policy judges (controller/scheduler/node-fit.ts): a docker task's
   * image and memory limit (bytes), an exec task's command (argv[0]). Absent: not judged.
   */
  admit?: { image?: string; memoryLimit?: number; command?: string };
}

/** The scheduler's answer. */
export type Placement =
  | {
      ok: true;
      node: string;
      /** One line for the user and the audit log: why this node. */
      reason: string;
      /** Bytes the node has left for tasks after this one. */
      freeAfter: number;
      /** The GPUs (UUIDs) chosen for the task on that node; absent when it asks for none. */
      gpus?: string[];
    }
  | {
      ok: false;
      /** One per node ruled out, sorted by node id (shared/reasons.ts puts them into words). */
      rejections: Rejection[];
      /** Summary for the user. */
      message: string;
    };

/** A node is stale after this many heartbeat intervals without word from it. */
export const STALE_AFTER_HEARTBEATS = 2.5;
