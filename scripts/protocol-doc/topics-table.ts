/**
 * The topic table of docs/protocol.md: one row per topic builder of shared/topics.ts (called with
 * placeholders such as `{node}`), and the subscription filters. A builder missing from the table
 * is caught by renderProtocolDoc() through `used`.
 */
import { type QuarantineKind, type Topics, topics } from '../../shared/topics.js';
import { link } from './format.js';

/** Names of the topic builders: every function of `Topics` that returns a topic string. */
export type TopicBuilderName = {
  [K in keyof Topics]: Topics[K] extends (...args: never[]) => string ? K : never;
}[keyof Topics];

/** The builders a topic table must cover: every function property of `topics()` except the parsers `idFrom` and `parse`. */
export function topicBuilderNames(): string[] {
  const t = topics();
  return Object.keys(t)
    .filter((k) => typeof t[k as keyof Topics] === 'function' && k !== 'idFrom' && k !== 'parse')
    .sort();
}

/** One row of the topic table; `topic` with placeholders, cells in Markdown. */
export interface TopicRow {
  topic: string;
  builder: string;
  fromTo: string;
  retained: string;
  qos: 0 | 1;
  payload: string;
  notes: string;
}

/** One subscription filter and who subscribes with it. */
export interface FilterRow {
  filter: string;
  builder: string;
  who: string;
}

/**
 * The topic table rows and subscription filters, built with the real builders of `t`.
 * `used`: the builders the table called, for the check that none is missing.
 */
export function topicRows(t: Topics): { rows: TopicRow[]; filters: FilterRow[]; used: Set<TopicBuilderName> } {
  const used = new Set<TopicBuilderName>();
  const b = (name: TopicBuilderName, arg?: string): { topic: string; builder: string } => {
    used.add(name);
    const fn = t[name] as (a?: string) => string;
    return { topic: arg === undefined ? fn() : fn(`{${arg}}`), builder: `${name}(${arg ?? ''})` };
  };
  const rows: TopicRow[] = [
    {
      ...b('nodeStatus', 'node'),
      fromTo: 'agent → all',
      retained: 'yes',
      qos: 1,
      payload: link('NodeStatus'),
      notes: 'Last will: retained `offline` NodeStatus. Published on change and every heartbeat.',
    },
    {
      ...b('nodeAssign', 'node'),
      fromTo: 'controller → agent',
      retained: 'no',
      qos: 1,
      payload: link('Assignment'),
      notes: 'Agent session is persistent (`clean: false`): assignments sent while it was away are delivered on reconnect.',
    },
    {
      ...b('nodeCancel', 'node'),
      fromTo: 'controller → agent',
      retained: 'no',
      qos: 1,
      payload: link('Cancel'),
      notes: 'Same persistent agent session. Also fences attempts the controller no longer expects on the node.',
    },
    {
      ...b('nodeAck', 'node'),
      fromTo: 'controller → agent',
      retained: 'no',
      qos: 1,
      payload: link('Ack'),
      notes:
        'Sent once the controller has committed a `result` or `failed` event (or found it a duplicate or unknown). Until then the agent keeps the event, sends it again at every heartbeat and reconnect, and lists it in `NodeStatus.finished`.',
    },
    {
      ...b('taskEvents', 'task'),
      fromTo: 'agent → controller, followers',
      retained: 'no',
      qos: 1,
      payload: link('TaskEvent'),
      notes: 'Subscribe before submitting to miss nothing; the controller keeps them for `task.logs`.',
    },
    {
      ...b('taskState', 'task'),
      fromTo: 'controller → all',
      retained: 'yes',
      qos: 1,
      payload: link('TaskState'),
      notes:
        'Republished for every kept task when the controller starts. Cleared with an empty retained payload when the controller evicts the finished task or refuses a submit.',
    },
    {
      ...b('requests', 'client'),
      fromTo: 'client → controller',
      retained: 'no',
      qos: 1,
      payload: link('Request'),
      notes: 'The controller answers on the matching replies topic.',
    },
    {
      ...b('replies', 'client'),
      fromTo: 'controller → client',
      retained: 'no',
      qos: 1,
      payload: link('Reply'),
      notes: 'Matched to its request by `id`.',
    },
    {
      ...b('controllerStatus'),
      fromTo: 'controller → all',
      retained: 'yes',
      qos: 1,
      payload: link('ControllerStatus'),
      notes: 'Last will: retained `offline` ControllerStatus.',
    },
    ...fileRows(t, used),
    {
      topic: (used.add('nodePorts'), t.nodePorts('{node}', '{task}')),
      builder: 'nodePorts(node, task)',
      fromTo: 'agent → server',
      retained: 'yes',
      qos: 1,
      payload: '`PortAnnouncement` (shared/schemas/ports.ts)',
      notes:
        "A docker task's container ports published on the node (`cutter run -p`), with the address the server dials (`--advertise-address`, null behind NAT). Cleared when the attempt ends.",
    },
    {
      topic: (used.add('nodeStdin'), t.nodeStdin('{node}', '{task}')),
      builder: 'nodeStdin(node, task)',
      fromTo: 'client → agent',
      retained: 'no',
      qos: 1,
      payload: 'binary stdin frame',
      notes:
        "A task's stdin (`cutter run -i`): 1 byte version, 1 byte flags (bit 0 EOF, bit 1 window size for `-t`), 4 bytes attempt, 8 bytes offset (big-endian), then at most 64 KiB of data; at most 1 MiB beyond the acknowledged offset in flight (see shared/schemas/stdin.ts). Only the task's submitter may publish (SECURITY.md).",
    },
    {
      topic: (used.add('nodeStdinAck'), t.nodeStdinAck('{node}', '{task}')),
      builder: 'nodeStdinAck(node, task)',
      fromTo: 'agent → client',
      retained: 'no',
      qos: 1,
      payload: '`StdinAck` (shared/schemas/stdin.ts)',
      notes: 'Bytes of stdin written to the task, a request to send again from an offset, EOF delivered, or why its stdin is closed.',
    },
    {
      topic: (used.add('nodeCredit'), t.nodeCredit('{node}', '{task}')),
      builder: 'nodeCredit(node, task)',
      fromTo: 'client → agent',
      retained: 'no',
      qos: 1,
      payload: '`OutputCredit` (shared/schemas/output-credit.ts)',
      notes:
        "Reader credit for a task's output (`cutter run` attached, a spec with `credit: true`, an agent whose `started` event says `credit: true`): the last event seq the reader wrote out. The agent holds the output while more than 8 MiB (or 4,096 log events) are beyond it; sent at least every second; no credit for 10 s while held, or `release`, and the output is no longer held. Only the task's submitter may publish (SECURITY.md).",
    },
    {
      topic: (used.add('nodeLendingSet'), t.nodeLendingSet('{node}')),
      builder: 'nodeLendingSet(node)',
      fromTo: 'admin or server → agent',
      retained: 'no',
      qos: 1,
      payload: '`LendingSet` (shared/schemas/lending.ts)',
      notes:
        "A change of the node's lending policy (issue 17; `cutter nodes policy`, Home Assistant's lending switch and mode select through the server): a patch of the policy's fields (`null` removes a condition), `reset` back to the agent's own flags and file first; the agent echoes its `id` as NodeStatus `lending.applied`. Only admins and the server publish; agent N subscribes only its own (SECURITY.md). Kept for an offline agent by its persistent session, not across agent restarts.",
    },
    {
      topic: (used.add('nodeWake'), t.nodeWake('{node}')),
      builder: 'nodeWake(node)',
      fromTo: 'server → agent',
      retained: 'no',
      qos: 1,
      payload: '`WakeCommand` (shared/schemas/wake.ts)',
      notes:
        "Wake-on-LAN through an awake node (issue 17): the server asks an online node that announced the sleeping node's broadcast address (so is on its LAN) to send the magic packet, when that LAN is not one of the server's networks or the server runs with `--wake-via agent`. The agent sends only to a broadcast address of its own networks (or to its `--wake-address`). Only the server publishes; agent N subscribes only its own (SECURITY.md).",
    },
    {
      ...b('forwardState', 'task'),
      fromTo: 'server → all',
      retained: 'yes',
      qos: 1,
      payload: '`ForwardState` (shared/schemas/ports.ts)',
      notes: '`open` (the server proxies its port to the node) or `refused` with the reason; cleared when the forwards close (task ended).',
    },
    {
      topic: (used.add('quarantine'), t.quarantine('{node}', '{what}' as QuarantineKind, '{task}')),
      builder: 'quarantine(node, what, task)',
      fromTo: 'broker → controller',
      retained: 'no',
      qos: 1,
      payload: "what = `events`: the agent's `TaskEvent`; `ports`: its `PortAnnouncement` (unchanged)",
      notes:
        "Where the embedded broker re-routes an agent's well-formed event or port announcement for a task that is not its node's current assignment (another attempt, another node's task, an unknown task): the agent stays connected, followers and the port proxy never see it (SECURITY.md).",
    },
  ];
  const filters: FilterRow[] = [
    { ...b('allNodeStatus'), who: 'controller (node registry)' },
    { ...b('allTaskEvents'), who: 'controller (task lifecycle, kept events)' },
    { ...b('allTaskState'), who: 'observers of every task' },
    { ...b('allRequests'), who: 'controller' },
    { ...b('allNodePorts'), who: 'server (port proxy)' },
    { ...b('allForwardState'), who: '`cutter ports`' },
    {
      topic: (used.add('allQuarantine'), t.allQuarantine('{what}' as QuarantineKind)),
      builder: 'allQuarantine(what)',
      who: 'controller, with what = `events` (a stale attempt is fenced)',
    },
  ].map(({ topic, builder, who }) => ({ filter: topic, builder, who }));
  return { rows, filters, used };
}

/** The file transfer topics (two ids each: node and client); protocol in shared/schemas/files.ts. */
function fileRows(t: Topics, used: Set<TopicBuilderName>): TopicRow[] {
  const row = (
    name: 'filesIn' | 'filesInData' | 'filesOut' | 'filesOutData',
    fromTo: string,
    qos: 0 | 1,
    payload: string,
    notes: string,
  ): TopicRow => {
    used.add(name);
    return { topic: t[name]('{node}', '{client}'), builder: `${name}(node, client)`, fromTo, retained: 'no', qos, payload, notes };
  };
  const see = 'see shared/schemas/files.ts';
  return [
    row(
      'filesIn',
      'client → agent',
      1,
      '`FileIn` (put, get, ack, done, abort, image.inspect, image.put)',
      `File transfer and image sync control, straight to the agent (${see}); \`client\` is the sender's own client id.`,
    ),
    row(
      'filesInData',
      'client → agent',
      0,
      'binary chunk frame',
      `1 byte version, 16 bytes transfer id, 8 bytes offset (big-endian), then at most 1 MiB of data (${see}).`,
    ),
    row(
      'filesOut',
      'agent → client',
      1,
      '`FileOut` (ready, meta, ack, done, image, error)',
      `Agent replies; the controller reads this and \`filesIn\` (not the chunks) to audit transfers.`,
    ),
    row('filesOutData', 'agent → client', 0, 'binary chunk frame', "Chunks of a `get`, windowed by the client's acks."),
  ];
}
