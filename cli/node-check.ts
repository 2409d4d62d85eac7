/** A check before a command talks to one node directly (file transfer, image push): is it there? */
import type { MeshClient } from '../shared/client/index.js';
import { CutterError } from '../shared/errors.js';
import { NodeListResultSchema } from '../shared/schemas/index.js';
import { IdSchema } from '../shared/topics.js';

/**
 * Resolves when `node` is known to the controller and not offline (a draining node still moves files); a node that is not would leave the
 * command waiting for its transfer timeout (minutes) with nothing said.
 * @param flag how the command names the node in messages (`--node`, `NODE:PATH`).
 * @throws CutterError INVALID_ARGUMENT (not a node id), NOT_FOUND (unknown or offline), each saying what to do.
 */
export async function requireOnlineNode(client: MeshClient, node: string, flag: string): Promise<void> {
  if (!IdSchema.safeParse(node).success) throw new CutterError('INVALID_ARGUMENT', `${flag} ${node} is not a node id`);
  const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
  const n = nodes.find((x) => x.node === node);
  if (!n)
    throw new CutterError(
      'NOT_FOUND',
      `no node ${node}${nodes.length ? ` (known: ${nodes.map((x) => x.node).join(', ')})` : ': no nodes have joined'}; cutter nodes list shows them`,
    );
  if (n.state === 'offline')
    throw new CutterError(
      'NOT_FOUND',
      `node ${node} is ${n.state}${n.offlineReason ? ` (${n.offlineReason})` : ''}: start its agent, or pick another node`,
    );
}
