/**
 * `cutter nodes …`: list (the mesh's nodes and their live capacity, as the controller sees them),
 * status, forget, drain/resume, and wake (a Wake-on-LAN magic packet from the server, controller/wake.ts).
 */
import type { Command } from 'commander';
import { IPV4_PATTERN, NodeListResultSchema, type NodeView, WakeResultSchema } from '../../shared/schemas/index.js';
import { CutterError } from '../../shared/errors.js';
import { formatBytes } from '../../shared/units.js';
import { ago, printJson, table } from '../output.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { registerNodesStatus } from './nodes-status.js';
import { registerNodesAdd } from './seed.js';
import { gpuSummary, registerNodesShow } from './nodes-show.js';
import { registerNodesPolicy } from './nodes-policy.js';
import { describeLending } from '../../shared/lending.js';

function row(n: NodeView): string[] {
  const cap = n.status.capacity;
  const offer = n.status.offer;
  const mem = cap ? `${formatBytes(cap.memory.available)} / ${formatBytes(cap.memory.total)}` : '-';
  const offered = offer ? (offer.maxMemory === null ? 'all' : formatBytes(offer.maxMemory)) : '-';
  const cpu = cap ? `${cap.cpu.cores} cores, ${cap.cpu.loadPercent.toFixed(0)}%` : '-';
  const tasks = offer ? `${n.status.running.length}/${offer.maxTasks}` : String(n.status.running.length);
  return [
    n.node,
    n.state,
    mem,
    offered,
    cpu,
    tasks,
    offer ? offer.executors.join(',') || '-' : '-',
    ago(n.lastSeenAgoMs),
    [n.offlineReason ?? (n.drained ? 'drained' : ''), n.status.lending ? describeLending(n.status.lending) : '', gpuSummary(n)]
      .filter(Boolean)
      .join('; '),
  ];
}

export function registerNodes(program: Command): void {
  const nodes = program.command('nodes').description('nodes of the mesh');
  withClientOptions(
    nodes.command('list').alias('ls').description('list nodes: state, memory available/total, CPU, running tasks, heartbeat age'),
  ).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes: list } = await client.request({ op: 'node.list' }, NodeListResultSchema);
      if (flags.json) printJson(list);
      else if (list.length === 0) process.stdout.write('no nodes have joined: start `cutter agent --broker URL` on a machine\n');
      else
        process.stdout.write(
          `${table(['NODE', 'STATE', 'MEMORY AVAIL/TOTAL', 'OFFERED', 'CPU', 'TASKS', 'EXECUTORS', 'HEARTBEAT', 'NOTE'], list.map(row))}\n`,
        );
      return 0;
    }),
  );
  registerNodesStatus(nodes);
  registerNodesAdd(nodes);
  registerNodesShow(nodes);
  withClientOptions(
    nodes
      .command('forget')
      .argument('<node>', 'node id')
      .description('forget an offline node: out of the node list, its retained status and its Home Assistant device'),
  ).action((node: string, flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes: list } = await client.request({ op: 'node.forget', node }, NodeListResultSchema);
      if (flags.json) printJson(list[0] ?? null);
      else process.stdout.write(`${node} forgotten\n`);
      return 0;
    }),
  );
  registerWake(nodes);
  registerNodesPolicy(nodes);
  for (const [name, drain, what] of [
    ['drain', true, 'stop placing new tasks on a node; running tasks finish'],
    ['resume', false, 'place tasks on a drained node again'],
  ] as const) {
    withClientOptions(nodes.command(name).argument('<node>', 'node id').description(what)).action((node: string, flags: GlobalFlags) =>
      withClient(flags, async (client) => {
        const { nodes: list } = await client.request({ op: 'node.drain', node, drain }, NodeListResultSchema);
        const n = list[0];
        if (!n) throw new CutterError('NOT_FOUND', `no node ${node}`);
        if (flags.json) printJson(n);
        else process.stdout.write(`${node} ${drain ? 'drained: no new tasks; ' : 'resumed; '}${n.status.running.length} running\n`);
        return 0;
      }),
    );
  }
}

/** Flags of `cutter nodes wake`. */
interface WakeFlags extends GlobalFlags {
  address?: string;
  port?: string;
}

/**
 * `cutter nodes wake NODE [--address A] [--port P]`: the server sends a magic packet for a known,
 * offline node whose MAC it knows (request op `node.wake`).
 * @throws CutterError INVALID_ARGUMENT for an address that is not IPv4 or a port outside 1-65535 (before connecting).
 */
function registerWake(nodes: Command): void {
  withClientOptions(
    nodes
      .command('wake')
      .argument('<node>', 'node id')
      .description("wake a sleeping node: the server sends a Wake-on-LAN magic packet to the node's last announced MAC")
      .option(
        '--address <ipv4>',
        "send the packet to this address (default: the server's --wake-address, else the node's broadcast address)",
      )
      .option('--port <port>', "UDP port (default: the server's --wake-port, 9)"),
  ).action((node: string, flags: WakeFlags) =>
    withClient(flags, async (client) => {
      if (flags.address !== undefined && !IPV4_PATTERN.test(flags.address))
        throw new CutterError(
          'INVALID_ARGUMENT',
          `--address ${flags.address} is not an IPv4 address: give the broadcast address of the node's network, e.g. 192.168.1.255`,
        );
      const port = flags.port === undefined ? undefined : Number(flags.port);
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535))
        throw new CutterError('INVALID_ARGUMENT', `--port ${flags.port} is not a UDP port: give 1-65535 (Wake-on-LAN usually uses 9)`);
      const sent = await client.request(
        { op: 'node.wake', node, ...(flags.address ? { address: flags.address } : {}), ...(port ? { port } : {}) },
        WakeResultSchema,
      );
      if (flags.json) printJson(sent);
      else
        process.stdout.write(
          `magic packet for ${sent.node} (${sent.mac}) ${sent.via ? `handed to node ${sent.via}, on its LAN, to send to` : 'sent to'} ${sent.address}:${sent.port}; it joins when its agent starts (\`cutter nodes list\`)\n`,
        );
      return 0;
    }),
  );
}
