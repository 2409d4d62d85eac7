/**
 * Authorization rules, as pure functions of an identity, a client id and a topic (and, for task
 * events, their payload). The broker calls them from Aedes' authorizePublish/authorizeSubscribe.
 *
 * Two tiers (SECURITY.md). *Static* rules (identity × topic shape × the payload's `node`) are
 * ones a correct client never breaks: a denial cuts the connection and is audited. *Stateful* ones
 * (is this task the node's current assignment, in this attempt?) depend on the controller's state,
 * which a correct agent may see late: such a message is quarantined (re-routed to
 * `quarantine/{node}/{what}/{task}`, not retained), never a disconnect (`quarantineOf`).
 *
 * - controller: everything. Only it may use the client ids in RESERVED_CLIENT_PREFIXES.
 * - agent N: publishes its own status (`nodes/N/status`, also its last will), events of tasks
 *   (with `"node": "N"` in the payload) and port announcements `nodes/N/ports/{task}`; both pass
 *   only for the task's current attempt on N (else quarantined); subscribes to its own
 *   `nodes/N/assign` and `nodes/N/cancel`. Its client id must be `cutter-agent-N`.
 * - admin: publishes requests on its own `requests/{clientId}`; subscribes to anything under
 *   the prefix and Home Assistant's discovery prefix.
 * - observer (Home Assistant, dashboards): subscribes to node status, task state, controller
 *   status and Home Assistant discovery; publishes nothing.
 * - file transfer (shared/schemas/files.ts): an admin publishes on `nodes/{any}/files/in/{its own
 *   client id}[/data]`; agent N subscribes to `nodes/N/files/in/+[/data]` and publishes on
 *   `nodes/N/files/out/{client}[/data]` only. Observers reach none of it. A control message naming
 *   a `task` (its inputs and outputs, shared/schemas/io.ts) only from that task's submitter (`ioDenied`).
 *   Node to node (`vol.pull`): agent N may also read another node's files as client `cutter-agent-N`
 *   (`nodes/M/files/in/cutter-agent-N`, read requests only: `peerDenied`; and subscribe to the
 *   answers `nodes/M/files/out/cutter-agent-N[/data]`); agent M serves only what was granted.
 * - port forwarding (shared/schemas/ports.ts): agent N publishes only `nodes/N/ports/{task}`,
 *   carrying `"node": "N"` (the port proxy re-checks the task, attempt and declared ports).
 * - task stdin (`cutter run -i`, shared/schemas/stdin.ts): an admin publishes on
 *   `nodes/{any}/stdin/{task}` only for a task its own identity submitted (stateful: the controller's
 *   record of the submitter; without a controller here, any admin); agent N subscribes
 *   `nodes/N/stdin/+` and publishes only `nodes/N/stdin/{task}/ack` (the agent writes a frame only
 *   to an attempt it runs with -i, so another node's name in the topic reaches nothing).
 * - reader credit (`cutter run` attached, shared/schemas/output-credit.ts): an admin or mcp client
 *   publishes on `nodes/{any}/credit/{task}` only for a task its own identity submitted (the same
 *   stateful rule as stdin); agent N subscribes `nodes/N/credit/+` and publishes nothing there.
 * - mcp (`cutter mcp`, an AI assistant's hands): publishes requests on its own `requests/{clientId}`
 *   whose `op` is one of MCP_OPS (submit, cancel, task.get, task.list, task.logs, node.list,
 *   node.drain — no tokens, no forgets, no wakes); subscribes to its own replies, task events and
 *   state, node status and controller status. Issue 19 gave it file transfer like an admin's, under
 *   its own client id only (`cutter cp` through the MCP tool copy_file), but never an image push
 *   (an `image.put` control message: `docker load` on a node is an admin's act).
 * - Home Assistant (an observer or admin token): also reads cutter's HA state topics
 *   (`{prefix}/v1/ha/#`) and publishes its birth/last will (`<haPrefix>/status`); the drain switch's
 *   commands (`{prefix}/v1/ha/nodes/N/drain/set`) need an admin token: a read-only token changes nothing.
 * - lending policy (`cutter nodes policy`, issue 17): an admin publishes `nodes/{any}/lending/set`,
 *   as do Home Assistant's lending switch and mode select (`{prefix}/v1/ha/nodes/N/{lending|mode}/set`,
 *   admin tokens only, relayed by the server); agent N subscribes only `nodes/N/lending/set`.
 * Only the controller publishes assignments, cancels, task state and replies.
 */
import { parseJson } from '../shared/codec.js';
import { LIMITS } from '../shared/limits.js';
import { decodeLogFrame, isLogFrame } from '../shared/log-frame.js';
import { haTopics, type QuarantineKind, type Topics, topicMatches } from '../shared/topics.js';
import type { Identity } from './identities.js';

/**
 * Whether a topic is one Home Assistant publishes: its own birth and last will on `<haPrefix>/status`
 * (HA publishes them on connect; a denied publish would cut HA's connection), or, with `drain`, a
 * drain command (controller/extensions/ha; admins only).
 */
function isHaPublish(topic: string, ctx: AclContext, drain: boolean): boolean {
  const ha = haTopics(ctx.t.prefix, ctx.haPrefix);
  return topic === ha.haStatus() || (drain && (topicMatches(ha.allDrainCommands(), topic) || ha.lendingCommandOf(topic) !== null));
}

/** A task's current attempt as the controller knows it (controller/controller.ts `assignmentOf`). */
export interface AssignmentView {
  /** Node of the current (or last) attempt; null when never placed. */
  node: string | null;
  attempt: number;
  /** The task's state (`assigned`, `running`, `succeeded` …). */
  state: string;
  /** Ports the task declared (`cutter run -p`), empty when none. */
  ports: readonly { server: number; container: number }[];
  /** The identity (`ROLE:NAME` username) that submitted it; undefined for tasks stored before it was kept. */
  submitter?: string;
}

/** Context the rules need from the controller. */
export interface AclContext {
  t: Topics;
  /**
   * The task's current attempt, or undefined when the controller does not know the task. Absent
   * when no controller runs next to this broker (`--broker-only`): only the static rules apply.
   */
  assignmentOf?(taskId: string): AssignmentView | undefined;
  haPrefix: string;
}

/**
 * Client ids only the controller identity may use: its own clients, the server's parts (port proxy,
 * file audit, Ollama API: `cutter-controller-{part}-…`, controller/server-client.ts), the Home
 * Assistant link (`cutter-ha-{prefix}`) and agents (`cutter-agent-N`, each agent only its own).
 * Another client taking one would cut the server's own link (MQTT-3.1.4-2: the broker closes the
 * older connection with the same id).
 */
export const RESERVED_CLIENT_PREFIXES: readonly string[] = ['cutter-controller-', 'cutter-agent-', 'cutter-ha-', 'cutter-ollama-api'];

/**
 * The node and client of a file transfer topic (`nodes/N/files/{in|out}/C` or `…/C/data`, see
 * shared/schemas/files.ts), or null when `topic` is not one of that direction.
 */
export function fileTopicOf(t: Topics, topic: string, dir: 'in' | 'out'): { node: string; client: string } | null {
  const p = t.parse(topic);
  if (!p) return null;
  const kinds = dir === 'in' ? ['filesIn', 'filesInData'] : ['filesOut', 'filesOutData'];
  return kinds.includes(p.kind) && 'client' in p && 'node' in p ? { node: p.node, client: p.client } : null;
}

/** The request ops an `mcp` identity may send. */
export const MCP_OPS: readonly string[] = ['submit', 'cancel', 'task.get', 'task.list', 'task.logs', 'node.list', 'node.drain'];

/**
 * Why an mcp client's file transfer publish is denied, or null: only under its own client id, and
 * never an `image.put` (shared/schemas/files.ts) — the chunk frames of `…/data` carry no type.
 */
function mcpFileDenied(topic: string, clientId: string, payload: Buffer, ctx: AclContext): string | null | undefined {
  const f = fileTopicOf(ctx.t, topic, 'in');
  if (!f) return undefined;
  if (f.client !== clientId) return `mcp clients transfer files only under their own client id (${ctx.t.filesIn('NODE', clientId)})`;
  if (topic !== ctx.t.filesIn(f.node, clientId)) return null;
  let type: unknown;
  try {
    type = (parseJson(payload, LIMITS.requests) as { type?: unknown })?.type;
  } catch {
    return 'file control messages are JSON within the request size limit'; // cutter's own clients send nothing else
  }
  return type === 'image.put' ? 'mcp clients may not push images (cutter image push needs an admin token)' : null;
}

/** Why a client id is not allowed for an identity, or null. */
export function checkClientId(identity: Identity, clientId: string): string | null {
  if (identity.role === 'controller') return null;
  if (identity.role === 'agent')
    return clientId === `cutter-agent-${identity.name}`
      ? null
      : `an agent token for ${identity.name} must connect as client id cutter-agent-${identity.name}`;
  const reserved = RESERVED_CLIENT_PREFIXES.find((p) => clientId.startsWith(p));
  return reserved ? `client id ${clientId} is reserved for the server's own links (${reserved}…)` : null;
}

/**
 * The `node` and `attempt` a JSON payload names (undefined where absent, not JSON, or over the
 * bounds of an agent's largest payload, shared/limits.ts: checked on the bytes before parsing).
 */
function header(payload: Buffer): { node?: unknown; attempt?: unknown } | undefined {
  if (isLogFrame(payload)) {
    const d = decodeLogFrame(payload);
    return d.ok ? { node: d.value.node, attempt: d.value.attempt } : undefined;
  }
  try {
    const v = parseJson(payload, LIMITS.taskEvents) as unknown;
    return v && typeof v === 'object' ? (v as { node?: unknown; attempt?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** A publish to re-route instead of delivering: what it is, its task and why. */
export interface Quarantine {
  what: QuarantineKind;
  task: string;
  why: string;
}

/**
 * The stateful tier, for a publish `denyPublish` allowed: whether agent N's task event or port
 * announcement is for a task that is not N's current assignment in the attempt the payload names
 * (another node's task, an old attempt, a task the controller does not know). Such a message is
 * plausible from a correct agent that is behind the controller, so it is quarantined, not cut.
 * @returns null to deliver; never quarantines without `ctx.assignmentOf` (no controller here), for
 *   non-agents, or for an empty payload (clearing a retained announcement).
 */
export function quarantineOf(identity: Identity, topic: string, payload: Buffer, ctx: AclContext): Quarantine | null {
  if (identity.role !== 'agent' || !ctx.assignmentOf || payload.length === 0) return null;
  const p = ctx.t.parse(topic);
  let what: QuarantineKind;
  let task: string;
  if (p?.kind === 'taskEvents') [what, task] = ['events', p.task];
  else if (p?.kind === 'nodePorts') [what, task] = ['ports', p.task];
  else return null;
  const node = identity.name;
  const a = ctx.assignmentOf(task);
  if (!a) return { what, task, why: `task ${task} is unknown to the controller` };
  if (a.node !== node) return { what, task, why: `task ${task} is not assigned to node ${node}` };
  const attempt = header(payload)?.attempt;
  if (attempt !== a.attempt) return { what, task, why: `attempt ${String(attempt)} is not task ${task}'s current attempt ${a.attempt}` };
  return null;
}

/**
 * Why `identity` may not write task `task`'s stdin, or null: only the identity that submitted the
 * task may (the controller's record, `AssignmentView.submitter`). A correct client writes only the
 * stdin of a task it has just submitted, so a denial cuts the connection like the static rules.
 * Without a controller next to this broker (`--broker-only`) nothing is known: allowed.
 */
export function stdinDenied(identity: Identity, task: string, ctx: AclContext): string | null {
  return submitterOnly(identity, task, ctx, 'write its stdin');
}

/**
 * Why `identity` may not credit task `task`'s output (shared/schemas/output-credit.ts), or null:
 * like stdin, only the identity that submitted the task may (without a controller next to this
 * broker, anyone who may publish there). Credit only holds or releases that task's own output.
 */
export function creditDenied(identity: Identity, task: string, ctx: AclContext): string | null {
  return submitterOnly(identity, task, ctx, 'credit its output');
}

/**
 * The rule stdin and credit share: only the identity that submitted `task` may `act` on it (the
 * controller's record); without a controller next to this broker nothing is known: allowed.
 */
function submitterOnly(identity: Identity, task: string, ctx: AclContext, act: string): string | null {
  if (!ctx.assignmentOf) return null;
  const a = ctx.assignmentOf(task);
  if (!a) return `task ${task} is unknown to the controller: only its submitter may ${act}`;
  if (a.submitter !== identity.username)
    return `task ${task} was submitted by ${a.submitter ?? 'an unknown identity'}, not ${identity.username}: only its submitter may ${act}`;
  return null;
}

/**
 * Why `identity` may not send this file transfer control message (its own `nodes/N/files/in/C`), or
 * null: one that names a `task` (a task's inputs and outputs, shared/schemas/io.ts) passes only for
 * the identity that submitted that task (the same rule as stdin); chunk frames (`…/data`) pass, as
 * the agent takes them only for a transfer this client opened with a checked control message.
 */
export function ioDenied(identity: Identity, topic: string, payload: Buffer, ctx: AclContext): string | null {
  if (ctx.t.parse(topic)?.kind !== 'filesIn') return null;
  let task: unknown;
  try {
    task = (parseJson(payload, LIMITS.filesIn) as { task?: unknown } | null)?.task;
  } catch {
    return null; // not JSON, or over the bounds: the agent drops it
  }
  return typeof task === 'string' ? submitterOnly(identity, task, ctx, 'send its inputs or fetch its outputs') : null;
}

/** What an agent may ask of another node's agent (a node-to-node copy): read a granted directory, nothing else. */
const PEER_TYPES: readonly string[] = ['vol.manifest', 'get', 'ack', 'done', 'abort'];

/**
 * Why agent N may not send this message to another node's file service as client `cutter-agent-N`
 * (a node-to-node copy, shared/schemas/volumes.ts `vol.pull`), or null: only control messages that
 * read (PEER_TYPES); never chunk frames (it sends no file) nor anything that writes or loads. The
 * other agent still serves only what the submitter granted (`vol.grant`).
 */
export function peerDenied(topic: string, payload: Buffer, ctx: AclContext): string | null {
  const deny = `agents send other nodes only ${PEER_TYPES.join(', ')} requests (node-to-node copies)`;
  if (ctx.t.parse(topic)?.kind !== 'filesIn') return deny;
  try {
    const type = (parseJson(payload, LIMITS.filesIn) as { type?: unknown } | null)?.type;
    return typeof type === 'string' && PEER_TYPES.includes(type) ? null : deny;
  } catch {
    return deny;
  }
}

/** Why this publish is denied, or null when allowed. */
export function denyPublish(identity: Identity, clientId: string, topic: string, payload: Buffer, ctx: AclContext): string | null {
  const { t } = ctx;
  switch (identity.role) {
    case 'controller':
      return null;
    case 'agent': {
      const node = identity.name;
      if (topic === t.nodeStatus(node)) return null;
      if (fileTopicOf(t, topic, 'out')?.node === node) return null;
      if (fileTopicOf(t, topic, 'in')?.client === clientId) return peerDenied(topic, payload, ctx);
      const p = t.parse(topic);
      if (p?.kind === 'nodeStdinAck' && p.node === node) return null;
      // Denying a QoS 1 publish makes MQTT.js resend it on every reconnect, forever: deny (cut) only
      // what no correct agent sends — another node's name in the payload. Whether the task is this
      // node's now is the stateful tier (quarantineOf).
      if ((p?.kind === 'nodePorts' && p.node === node) || p?.kind === 'taskEvents') {
        if (payload.length === 0) return null; // clearing a retained announcement; an empty event is dropped by its readers
        const h = header(payload);
        if (h === undefined) return null; // not JSON: the reader drops and logs it
        if (h.node !== node) return `${p.kind === 'nodePorts' ? 'port announcement' : 'event'} does not carry "node": "${node}"`;
        return null;
      }
      return `agent ${node} may publish only its own status, events of its tasks, its port announcements, its file transfer replies and its stdin acks`;
    }
    case 'admin': {
      if (topic === t.requests(clientId) || isHaPublish(topic, ctx, true)) return null;
      if (fileTopicOf(t, topic, 'in')?.client === clientId) return ioDenied(identity, topic, payload, ctx);
      const p = t.parse(topic);
      if (p?.kind === 'nodeStdin') return stdinDenied(identity, p.task, ctx);
      if (p?.kind === 'nodeCredit') return creditDenied(identity, p.task, ctx);
      if (p?.kind === 'nodeLendingSet') return null; // lending policy changes: admins only (issue 17)
      return `admins publish only requests on ${t.requests(clientId)}, file transfers on ${t.filesIn('NODE', clientId)}[/data], stdin of their own tasks and Home Assistant's status and drain commands`;
    }
    case 'observer':
      return isHaPublish(topic, ctx, false)
        ? null
        : "observers publish only Home Assistant's status (its drain switch needs an admin token)";
    case 'mcp': {
      const credit = t.parse(topic);
      if (credit?.kind === 'nodeCredit') return creditDenied(identity, credit.task, ctx);
      const file = mcpFileDenied(topic, clientId, payload, ctx);
      if (file !== undefined) return file;
      if (topic !== t.requests(clientId)) return `mcp clients publish only requests on ${t.requests(clientId)}`;
      let op: unknown;
      try {
        op = (parseJson(payload, LIMITS.requests) as { op?: unknown })?.op;
      } catch {
        return null; // not JSON: the controller answers INVALID_REQUEST
      }
      return typeof op === 'string' && MCP_OPS.includes(op)
        ? null
        : `mcp clients may send only ${MCP_OPS.join(', ')} requests, not ${String(op)}`;
    }
  }
}

/** Why this subscription is denied, or null when allowed. */
export function denySubscribe(identity: Identity, clientId: string, filter: string, ctx: AclContext): string | null {
  const { t } = ctx;
  const under = (prefix: string) => filter === prefix || filter.startsWith(`${prefix}/`);
  switch (identity.role) {
    case 'controller':
      return null;
    case 'agent':
      return [
        t.nodeAssign(identity.name),
        t.nodeCancel(identity.name),
        t.nodeAck(identity.name),
        t.filesIn(identity.name, '+'),
        t.filesInData(identity.name, '+'),
        t.nodeStdin(identity.name, '+'),
        t.nodeCredit(identity.name, '+'),
        t.nodeLendingSet(identity.name),
        t.nodeWake(identity.name),
      ].includes(filter) || fileTopicOf(t, filter, 'out')?.client === clientId
        ? null
        : `agent ${identity.name} may subscribe only to its own assignments, cancels, file transfers and task stdin`;
    case 'admin':
      return under(t.prefix) || under(ctx.haPrefix) ? null : `admins subscribe under ${t.prefix}/ and ${ctx.haPrefix}/ only`;
    case 'mcp': {
      if (filter === t.replies(clientId) || filter === t.controllerStatus() || filter === t.allNodeStatus()) return null;
      // Its own file transfer replies (shared/transfer/link.ts subscribes to one node's, exact topics).
      if (fileTopicOf(t, filter, 'out')?.client === clientId && !/[+#]/.test(filter)) return null;
      const task = t.idFrom(filter, 'tasks');
      if (task && (filter === t.taskEvents(task) || filter === t.taskState(task))) return null;
      return 'mcp clients may read their replies, task events and state, node status and controller status only';
    }
    case 'observer': {
      const allowed = [t.allNodeStatus(), t.allTaskState(), t.controllerStatus(), `${ctx.haPrefix}/#`, `${t.prefix}/v1/ha/#`];
      const deny = 'observers may read node status, task state, controller status and Home Assistant discovery only';
      // A plain topic: allowed when an allowed filter covers it.
      if (!/[+#]/.test(filter)) return allowed.some((a) => topicMatches(a, filter)) ? null : deny;
      // A wildcard filter must not reach beyond what observers may read (logs, requests, replies).
      const probes = [
        t.nodeStatus('x'),
        t.taskState('x'),
        t.controllerStatus(),
        t.taskEvents('x'),
        t.requests('x'),
        t.replies('x'),
        t.nodeAssign('x'),
        t.filesIn('x', 'y'),
        t.filesOutData('x', 'y'),
        t.nodeStdin('x', 'y'),
        t.nodeStdinAck('x', 'y'),
        t.nodeCredit('x', 'y'),
        t.nodeLendingSet('x'),
        t.nodeWake('x'),
      ];
      const reaches = probes.filter((p) => topicMatches(filter, p));
      const ok =
        reaches.every((p) => allowed.some((a) => topicMatches(a, p))) &&
        (reaches.length > 0 || under(ctx.haPrefix) || under(`${t.prefix}/v1/ha`));
      return ok ? null : deny;
    }
  }
}
