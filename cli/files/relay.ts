/**
 * `cutter cp -r NODE_A:VOLUME/DIR NODE_B:VOLUME/DIR`: a directory copied from one node's volume into
 * another's without passing through this machine (shared/schemas/volumes.ts `vol.grant`, `vol.pull`).
 * This CLI grants node B a read of A's directory, asks B to fetch it, and waits for B's answer: the
 * files go from A's agent to B's agent over the broker, only those B lacks or has different.
 */
import { CutterError } from '../../shared/errors.js';
import type { MeshClient } from '../../shared/client/index.js';
import type { FileOut } from '../../shared/schemas/files.js';
import { FileLink } from '../../shared/transfer/link.js';
import { splitVolumePath } from './tree.js';
import { newXfer } from '../../shared/transfer/transfer.js';

/** What `cutter cp` prints for a node-to-node copy (`--json`); bytes are file bytes. */
export interface RelayResult {
  direction: 'node-to-node';
  from: { node: string; volume: string; path: string };
  to: { node: string; volume: string; path: string };
  files: number;
  filesSent: number;
  filesSkipped: number;
  bytes: number;
  bytesSent: number;
  /** Chunk bytes node B received from node A. */
  wireBytes: number;
  /** File bytes that passed through this machine: always 0. */
  clientBytes: 0;
  ms: number;
}

/**
 * Copies `from` (NODE:VOLUME[/DIR]) into `to` (NODE:VOLUME[/DIR]) straight between the two agents.
 * @throws CutterError INVALID_ARGUMENT (same node, not a volume path), the nodes' refusals, TIMEOUT.
 */
export async function copyBetweenNodes(
  client: MeshClient,
  from: { node: string; path: string },
  to: { node: string; path: string },
  timeoutMs = 3_600_000,
): Promise<RelayResult> {
  if (from.node === to.node)
    throw new CutterError('INVALID_ARGUMENT', 'both paths are on the same node: copy inside it with a task, or pick another node');
  const src = splitVolumePath(from.path);
  const dst = splitVolumePath(to.path);
  const started = Date.now();
  const link = (node: string) => new FileLink(client.mqtt, client.topics, node, client.clientId);
  const a = link(from.node);
  const b = link(to.node);
  await a.open();
  await b.open();
  try {
    await a.ask(
      { type: 'vol.grant', xfer: newXfer(), volume: src.volume, path: src.path, to: to.node },
      (m): m is Extract<FileOut, { type: 'vol.granted' }> => m.type === 'vol.granted',
      10_000,
      30_000,
    );
    const r = await b.ask(
      { type: 'vol.pull', xfer: newXfer(), volume: dst.volume, path: dst.path, from: { node: from.node, ...src } },
      (m): m is Extract<FileOut, { type: 'vol.pulled' }> => m.type === 'vol.pulled' && m.done,
      10_000,
      timeoutMs,
    );
    const files = r.files ?? 0;
    const bytes = r.bytes ?? 0;
    return {
      direction: 'node-to-node',
      from: { node: from.node, ...src },
      to: { node: to.node, ...dst },
      files,
      filesSent: r.filesSent ?? 0,
      filesSkipped: files - (r.filesSent ?? 0),
      bytes,
      bytesSent: r.bytesSent ?? 0,
      wireBytes: r.wireBytes ?? 0,
      clientBytes: 0,
      ms: Date.now() - started,
    };
  } finally {
    await a.close();
    await b.close();
  }
}
