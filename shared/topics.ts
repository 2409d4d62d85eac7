/**
 * Every MQTT topic cutter uses, built and parsed in one place (docs/protocol.md lists them).
 *
 * Layout: `{prefix}/v1/…`, prefix default `cutter`. Ids (node, task, client) are restricted to
 * `[A-Za-z0-9_.-]` so they never contain the MQTT separators `/`, `+` or `#`.
 */
import { z } from 'zod';

/** Id of a node, task or client: 1-64 characters of `[A-Za-z0-9_.-]`, no leading dot or dash. */
export const ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
export const IdSchema = z.string().regex(ID_RE, 'must be 1-64 characters of A-Z a-z 0-9 _ . - (not starting with . or -)');

/** Topic builders for one prefix. */
export interface Topics {
  readonly prefix: string;
  /** Retained NodeStatus of one node; its last will is a retained `offline` status. */
  nodeStatus(node: string): string;
  /** Wildcard over every node's status. */
  allNodeStatus(): string;
  /** Assignments for one node (controller → agent, QoS 1, persistent session). */
  nodeAssign(node: string): string;
  /** Cancellations for one node (controller → agent, QoS 1). */
  nodeCancel(node: string): string;
  /** Acknowledgements of final task events for one node (controller → agent, QoS 1; shared/schemas AckSchema). */
  nodeAck(node: string): string;
  /** Event stream of one task (agent → controller and followers). */
  taskEvents(task: string): string;
  /** Wildcard over every task's events. */
  allTaskEvents(): string;
  /** Retained TaskState of one task (controller → all). */
  taskState(task: string): string;
  /** Wildcard over every task's state. */
  allTaskState(): string;
  /** Requests from one client (CLI → controller). */
  requests(client: string): string;
  /** Wildcard over every client's requests. */
  allRequests(): string;
  /** Replies to one client (controller → CLI). */
  replies(client: string): string;
  /** Retained controller status; its last will is `offline`. */
  controllerStatus(): string;
  /** File transfer control, client → agent (`…/nodes/{node}/files/in/{client}`; shared/schemas/files.ts). */
  filesIn(node: string, client: string): string;
  /** File transfer chunk frames, client → agent (binary). */
  filesInData(node: string, client: string): string;
  /** File transfer control, agent → client. */
  filesOut(node: string, client: string): string;
  /** File transfer chunk frames, agent → client (binary). */
  filesOutData(node: string, client: string): string;
  /** Retained PortAnnouncement of one task's published ports on a node (agent → server); cleared when the task ends. */
  nodePorts(node: string, task: string): string;
  /**
   * Stdin of one task running on a node (`cutter run -i`), client → agent: binary frames
   * (shared/schemas/stdin.ts). Only the task's submitter may publish (broker/acl.ts); agent N
   * subscribes `nodeStdin(N, '+')`.
   */
  nodeStdin(node: string, task: string): string;
  /** Acknowledgements of a task's stdin (bytes written, EOF, refusals), agent → client (StdinAck). */
  nodeStdinAck(node: string, task: string): string;
  /**
   * Reader credit for one task's output on a node (`cutter run` attached), client → agent: JSON
   * OutputCredit (shared/schemas/output-credit.ts). Only the task's submitter may publish
   * (broker/acl.ts); agent N subscribes `nodeCredit(N, '+')`.
   */
  nodeCredit(node: string, task: string): string;
  /**
   * Lending policy changes for one node (`cutter nodes policy`, Home Assistant), admin or server →
   * agent: JSON LendingSet (shared/schemas/lending.ts), QoS 1, not retained. Only admins and the
   * server publish; agent N subscribes only its own (broker/acl.ts).
   */
  nodeLendingSet(node: string): string;
  /**
   * Wake-on-LAN relayed through an awake node (controller/wake.ts), server → agent: JSON
   * WakeCommand (shared/schemas/wake.ts), QoS 1, not retained: "send the magic packet for this MAC
   * on your LAN". Only the server publishes; agent N subscribes only its own (broker/acl.ts).
   */
  nodeWake(node: string): string;
  /** Wildcard over every node's port announcements. */
  allNodePorts(): string;
  /** Retained ForwardState of one task's forwards on the server (server → all); cleared when they close. */
  forwardState(task: string): string;
  /** Wildcard over every forward state. */
  allForwardState(): string;
  /**
   * Where the broker re-routes a plausible message an agent may not publish now (an event or port
   * announcement for a task that is not its node's current assignment): `…/quarantine/{node}/{what}/{task}`,
   * never retained. Only the controller reads it (broker/acl.ts, SECURITY.md).
   */
  quarantine(node: string, what: QuarantineKind, task: string): string;
  /** Wildcard over one kind of quarantined message of every node. */
  allQuarantine(what: QuarantineKind): string;
  /** Parses `{prefix}/v1/{kind}/{id}/{leaf}` into its id, or null when it is not that shape. */
  idFrom(topic: string, kind: 'nodes' | 'tasks' | 'requests' | 'replies'): string | null;
  /**
   * Parses any topic this set builds back into what it names, or null when it is not one of them
   * (another prefix, a wildcard, an id outside ID_RE, an extra level). The one place topics are taken
   * apart: nothing else splits a topic on `/`.
   */
  parse(topic: string): ParsedTopic | null;
}

/** What a cutter topic names: the builder it came from (`kind`) and the ids in it. */
export type ParsedTopic =
  | { kind: 'nodeStatus' | 'nodeAssign' | 'nodeCancel'; node: string }
  | { kind: 'nodePorts' | 'nodeStdin' | 'nodeStdinAck'; node: string; task: string }
  | { kind: 'filesIn' | 'filesInData' | 'filesOut' | 'filesOutData'; node: string; client: string }
  | { kind: 'taskEvents' | 'taskState'; task: string }
  | { kind: 'forwardState'; task: string }
  | { kind: 'requests' | 'replies'; client: string }
  | { kind: 'controllerStatus' }
  | { kind: 'quarantine'; node: string; what: QuarantineKind; task: string }
  | { kind: 'nodeAck'; node: string }
  | { kind: 'nodeCredit'; node: string; task: string }
  | { kind: 'nodeLendingSet'; node: string }
  | { kind: 'nodeWake'; node: string };

/** What a quarantined message was: a task event or a port announcement. */
export type QuarantineKind = 'events' | 'ports';

/** Matches one topic against the levels after `{prefix}/v1/`; ids must pass ID_RE. */
function parseLevels(l: string[]): ParsedTopic | null {
  const id = (s: string | undefined): s is string => s !== undefined && ID_RE.test(s);
  switch (l[0]) {
    case 'nodes': {
      const node = l[1];
      if (!id(node)) return null;
      if (l.length === 3 && l[2] === 'status') return { kind: 'nodeStatus', node };
      if (l.length === 3 && l[2] === 'assign') return { kind: 'nodeAssign', node };
      if (l.length === 3 && l[2] === 'cancel') return { kind: 'nodeCancel', node };
      if (l.length === 3 && l[2] === 'ack') return { kind: 'nodeAck', node };
      if (l.length === 4 && l[2] === 'ports' && id(l[3])) return { kind: 'nodePorts', node, task: l[3] };
      if (l[2] === 'stdin' && id(l[3])) {
        if (l.length === 4) return { kind: 'nodeStdin', node, task: l[3] };
        if (l.length === 5 && l[4] === 'ack') return { kind: 'nodeStdinAck', node, task: l[3] };
        return null;
      }
      if (l.length === 4 && l[2] === 'credit' && id(l[3])) return { kind: 'nodeCredit', node, task: l[3] };
      if (l.length === 4 && l[2] === 'lending' && l[3] === 'set') return { kind: 'nodeLendingSet', node };
      if (l.length === 3 && l[2] === 'wake') return { kind: 'nodeWake', node };
      if (l[2] === 'files' && (l[3] === 'in' || l[3] === 'out') && id(l[4])) {
        const data = l.length === 6 && l[5] === 'data';
        if (l.length !== 5 && !data) return null;
        const kind = l[3] === 'in' ? (data ? 'filesInData' : 'filesIn') : data ? 'filesOutData' : 'filesOut';
        return { kind, node, client: l[4] };
      }
      return null;
    }
    case 'tasks':
      if (l.length !== 3 || !id(l[1])) return null;
      if (l[2] === 'events') return { kind: 'taskEvents', task: l[1] };
      if (l[2] === 'state') return { kind: 'taskState', task: l[1] };
      return null;
    case 'forwards':
      return l.length === 2 && id(l[1]) ? { kind: 'forwardState', task: l[1] } : null;
    case 'requests':
    case 'replies':
      return l.length === 2 && id(l[1]) ? { kind: l[0], client: l[1] } : null;
    case 'controller':
      return l.length === 2 && l[1] === 'status' ? { kind: 'controllerStatus' } : null;
    case 'quarantine':
      return l.length === 4 && id(l[1]) && (l[2] === 'events' || l[2] === 'ports') && id(l[3])
        ? { kind: 'quarantine', node: l[1], what: l[2], task: l[3] }
        : null;
    default:
      return null;
  }
}

/** Builds the topic set for a prefix (default `cutter`). @throws Error when the prefix has wildcards. */
export function topics(prefix = 'cutter'): Topics {
  if (!prefix || /[+#]/.test(prefix) || prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new Error(`topic prefix "${prefix}" must be non-empty, without + or #, and not start or end with /`);
  }
  const base = `${prefix}/v1`;
  return {
    prefix,
    nodeStatus: (node) => `${base}/nodes/${node}/status`,
    allNodeStatus: () => `${base}/nodes/+/status`,
    nodeAssign: (node) => `${base}/nodes/${node}/assign`,
    nodeCancel: (node) => `${base}/nodes/${node}/cancel`,
    nodeAck: (node) => `${base}/nodes/${node}/ack`,
    taskEvents: (task) => `${base}/tasks/${task}/events`,
    allTaskEvents: () => `${base}/tasks/+/events`,
    taskState: (task) => `${base}/tasks/${task}/state`,
    allTaskState: () => `${base}/tasks/+/state`,
    requests: (client) => `${base}/requests/${client}`,
    allRequests: () => `${base}/requests/+`,
    replies: (client) => `${base}/replies/${client}`,
    controllerStatus: () => `${base}/controller/status`,
    nodePorts: (node, task) => `${base}/nodes/${node}/ports/${task}`,
    allNodePorts: () => `${base}/nodes/+/ports/+`,
    nodeStdin: (node, task) => `${base}/nodes/${node}/stdin/${task}`,
    nodeStdinAck: (node, task) => `${base}/nodes/${node}/stdin/${task}/ack`,
    nodeCredit: (node, task) => `${base}/nodes/${node}/credit/${task}`,
    nodeLendingSet: (node) => `${base}/nodes/${node}/lending/set`,
    nodeWake: (node) => `${base}/nodes/${node}/wake`,
    forwardState: (task) => `${base}/forwards/${task}`,
    allForwardState: () => `${base}/forwards/+`,
    filesIn: (node, client) => `${base}/nodes/${node}/files/in/${client}`,
    filesInData: (node, client) => `${base}/nodes/${node}/files/in/${client}/data`,
    filesOut: (node, client) => `${base}/nodes/${node}/files/out/${client}`,
    filesOutData: (node, client) => `${base}/nodes/${node}/files/out/${client}/data`,
    quarantine: (node, what, task) => `${base}/quarantine/${node}/${what}/${task}`,
    allQuarantine: (what) => `${base}/quarantine/+/${what}/+`,
    idFrom(topic, kind) {
      if (!topic.startsWith(`${base}/${kind}/`)) return null;
      const id = topic.slice(base.length + kind.length + 2).split('/')[0];
      return ID_RE.test(id) ? id : null;
    },
    parse(topic) {
      if (!topic.startsWith(`${base}/`)) return null;
      return parseLevels(topic.slice(base.length + 1).split('/'));
    },
  };
}

/**
 * True when an MQTT topic filter (with `+` and `#`) matches a topic name (MQTT 3.1.1 §4.7).
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Orders ids by code point: deterministic, independent of the machine's locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Topics of the Home Assistant extension (controller/extensions/ha). Discovery lives under HA's discovery
 * prefix (https://www.home-assistant.io/integrations/mqtt/#discovery-topic:
 * `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`, component `device` for
 * device-based discovery); the state, availability and command topics live under cutter's prefix.
 * `haId` must already be sanitised to `[a-zA-Z0-9_-]` (see controller/extensions/ha/discovery.ts).
 */
export interface HaTopics {
  /** Retained device discovery config of one node: `<haPrefix>/device/<haId>/config`. */
  deviceConfig(haId: string): string;
  /** Home Assistant's birth/last-will topic: `<haPrefix>/status` (`online`/`offline`). */
  haStatus(): string;
  /** Retained JSON state of one node for HA's value templates. */
  state(node: string): string;
  /** Retained `online`/`offline` of one node. */
  availability(node: string): string;
  /** Retained `online`/`offline` of the cutter server itself (its last will is `offline`). */
  bridgeAvailability(): string;
  /** Drain switch commands from HA: payload `ON` (drain) or `OFF` (resume). */
  drainCommand(node: string): string;
  /** Wildcard over every node's drain command. */
  allDrainCommands(): string;
  /** The node of a drain command topic, or null when `topic` is not one. */
  drainCommandNode(topic: string): string | null;
  /** Lending switch (`ON`/`OFF`) and mode select (`auto`/`always`) commands from HA (issue 17). */
  lendingCommand(node: string, what: 'lending' | 'mode'): string;
  /** Wildcard over every node's lending switch or mode commands. */
  allLendingCommands(what: 'lending' | 'mode'): string;
  /** The node and control of a lending command topic, or null when `topic` is not one. */
  lendingCommandOf(topic: string): { node: string; what: 'lending' | 'mode' } | null;
}

/** Builds the Home Assistant topic set for a cutter prefix and an HA discovery prefix. */
export function haTopics(prefix = 'cutter', haPrefix = 'homeassistant'): HaTopics {
  const base = `${prefix}/v1/ha`;
  return {
    deviceConfig: (haId) => `${haPrefix}/device/${haId}/config`,
    haStatus: () => `${haPrefix}/status`,
    state: (node) => `${base}/nodes/${node}/state`,
    availability: (node) => `${base}/nodes/${node}/availability`,
    bridgeAvailability: () => `${base}/bridge/availability`,
    drainCommand: (node) => `${base}/nodes/${node}/drain/set`,
    allDrainCommands: () => `${base}/nodes/+/drain/set`,
    drainCommandNode(topic) {
      const head = `${base}/nodes/`;
      if (!topic.startsWith(head) || !topic.endsWith('/drain/set')) return null;
      const node = topic.slice(head.length, -'/drain/set'.length);
      return ID_RE.test(node) ? node : null;
    },
    lendingCommand: (node, what) => `${base}/nodes/${node}/${what}/set`,
    allLendingCommands: (what) => `${base}/nodes/+/${what}/set`,
    lendingCommandOf(topic) {
      const head = `${base}/nodes/`;
      if (!topic.startsWith(head)) return null;
      const [node, what, set, ...rest] = topic.slice(head.length).split('/');
      if (rest.length || set !== 'set' || (what !== 'lending' && what !== 'mode') || !ID_RE.test(node)) return null;
      return { node, what };
    },
  };
}
