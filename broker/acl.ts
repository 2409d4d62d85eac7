/**
 * Authorization rules, as pure functions of an identity, a client id and a topic (and, for task
 * events, their payload). The broker calls them from Aedes' authorizePublish/authorizeSubscribe.
 *
 * - controller: everything.
 * - agent N: publishes its own status (`nodes/N/status`, also its last will) and events of tasks
 *   placed on it (any attempt, with `"node": "N"` in the payload); subscribes to its own
 *   `nodes/N/assign` and `nodes/N/cancel`. Its client id must be `cutter-agent-N`.
 * - admin: publishes requests on its own `requests/{clientId}`; subscribes to anything under
 *   the prefix and Home Assistant's discovery prefix.
 * - observer (Home Assistant, dashboards): subscribes to node status, task state, controller
 *   status and Home Assistant discovery; publishes nothing.
 * - file transfer (shared/schemas/files.ts): an admin publishes on `nodes/{any}/files/in/{its own
 *   client id}[/data]`; agent N subscribes to `nodes/N/files/in/+[/data]` and publishes on
 *   `nodes/N/files/out/{client}[/data]` only. Observers reach none of it.
 * - port forwarding (shared/schemas/ports.ts): agent N publishes only `nodes/N/ports/{task}`.
 * - mcp (`cutter mcp`, an AI assistant's hands): publishes requests on its own `requests/{clientId}`
 *   whose `op` is one of MCP_OPS (submit, cancel, task.get, task.list, task.logs, node.list — no
 *   tokens, no drains, no file transfer); subscribes to its own replies, task events and state,
 *   node status and controller status.
 * - Home Assistant (an observer or admin token): also reads cutter's HA state topics
 *   (`{prefix}/v1/ha/#`), publishes its birth/last will (`<haPrefix>/status`) and the drain switch's
 *   commands (`{prefix}/v1/ha/nodes/N/drain/set`): draining only stops new placements, it runs nothing.
 * Only the controller publishes assignments, cancels, task state and replies.
 */
import { parseJson } from '../shared/codec.js';
import { LIMITS } from '../shared/limits.js';
import { ID_RE, haTopics, type Topics, topicMatches } from '../shared/topics.js';
import type { Identity } from './identities.js';

/**
 * Whether a topic is one Home Assistant publishes: a drain command (controller/extensions/ha), or its own
 * birth and last will on `<haPrefix>/status` (HA publishes them on connect; a denied publish would
 * cut HA's connection).
 */
function isHaPublish(topic: string, ctx: AclContext): boolean {
  const ha = haTopics(ctx.t.prefix, ctx.haPrefix);
  return topic === ha.haStatus() || topicMatches(ha.allDrainCommands(), topic);
}

/** Context the rules need from the controller. */
export interface AclContext {
  t: Topics;
  /**
   * Whether the task was ever placed on the node; undefined when the controller no longer knows
   * the task (evicted): its events are then let through and the controller drops them.
   */
  placedOn(taskId: string, node: string): boolean | undefined;
  haPrefix: string;
}

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
export const MCP_OPS: readonly string[] = ['submit', 'cancel', 'task.get', 'task.list', 'task.logs', 'node.list'];

/** Why a client id is not allowed for an identity, or null. */
export function checkClientId(identity: Identity, clientId: string): string | null {
  if (identity.role === 'controller') return null;
  if (identity.role === 'agent')
    return clientId === `cutter-agent-${identity.name}`
      ? null
      : `an agent token for ${identity.name} must connect as client id cutter-agent-${identity.name}`;
  if (clientId.startsWith('cutter-agent-') || clientId.startsWith('cutter-controller-')) return `client id ${clientId} is reserved`;
  return null;
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
      const portTask = topic.startsWith(t.nodePorts(node, '')) ? topic.slice(t.nodePorts(node, '').length) : null;
      if (portTask !== null && ID_RE.test(portTask)) return null;
      const taskId = t.idFrom(topic, 'tasks');
      if (taskId && topic === t.taskEvents(taskId)) {
        // Denying a QoS 1 publish makes MQTT.js resend it on every reconnect, forever: deny only
        // what is clearly someone else's, not the late events of a task the controller forgot.
        if (ctx.placedOn(taskId, node) === false) return `task ${taskId} was never placed on node ${node}`;
        try {
          if ((parseJson(payload, LIMITS.taskEvents) as { node?: unknown })?.node !== node) return `event does not carry "node": "${node}"`;
        } catch {
          return null; // not JSON: the controller drops and logs it
        }
        return null;
      }
      return `agent ${node} may publish only its own status, events of its tasks and its file transfer replies`;
    }
    case 'admin':
      if (topic === t.requests(clientId) || isHaPublish(topic, ctx)) return null;
      if (fileTopicOf(t, topic, 'in')?.client === clientId) return null;
      return `admins publish only requests on ${t.requests(clientId)}, file transfers on ${t.filesIn('NODE', clientId)}[/data] and Home Assistant's status and drain commands`;
    case 'observer':
      return isHaPublish(topic, ctx) ? null : "observers publish only Home Assistant's status and drain commands";
    case 'mcp': {
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
        t.filesIn(identity.name, '+'),
        t.filesInData(identity.name, '+'),
      ].includes(filter)
        ? null
        : `agent ${identity.name} may subscribe only to its own assignments, cancels and file transfers`;
    case 'admin':
      return under(t.prefix) || under(ctx.haPrefix) ? null : `admins subscribe under ${t.prefix}/ and ${ctx.haPrefix}/ only`;
    case 'mcp': {
      if (filter === t.replies(clientId) || filter === t.controllerStatus() || filter === t.allNodeStatus()) return null;
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
      ];
      const reaches = probes.filter((p) => topicMatches(filter, p));
      const ok =
        reaches.every((p) => allowed.some((a) => topicMatches(a, p))) &&
        (reaches.length > 0 || under(ctx.haPrefix) || under(`${t.prefix}/v1/ha`));
      return ok ? null : deny;
    }
  }
}
