/**
 * The agent's answers to the volume requests of shared/schemas/volumes.ts (`vol.*`), called by
 * the file service (agent/files/service.ts) for the messages on its topics.
 */
import { CutterError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { FileIn, FileOut } from '../../shared/schemas/files.js';
import { MANIFEST_PAGE, MANIFEST_PAGE_BYTES } from '../../shared/schemas/volumes.js';
import type { PathPolicy } from '../files/paths.js';
import type { VolumeStore } from './store.js';

export type { VolumeStore } from './store.js';

type VolumeRequest = Extract<FileIn, { type: `vol.${string}` }>;

/** How long a `vol.grant` lets the other node read, ms. */
const GRANT_MS = 10 * 60_000;
/** The client id prefix of agents (broker/acl.ts: only agent N may use `cutter-agent-N`). */
const AGENT_PREFIX = 'cutter-agent-';

/** The node whose agent `client` is (a node-to-node copy), or null for any other client. */
export function peerOf(client: string): string | null {
  return client.startsWith(AGENT_PREFIX) ? client.slice(AGENT_PREFIX.length) : null;
}
type Reply = FileOut extends infer O ? (O extends FileOut ? Omit<O, 'v'> : never) : never;

/** True for the `vol.*` requests. */
export function isVolumeRequest(msg: FileIn): msg is VolumeRequest {
  return msg.type.startsWith('vol.');
}

/** @returns the store. @throws CutterError EXECUTOR_DISABLED when the node has volumes off (no store). */
export function requireVolumes(store: VolumeStore | undefined): VolumeStore {
  if (!store) throw new CutterError('EXECUTOR_DISABLED', 'volumes are off on this node (its agent was started with --volumes-dir off)');
  return store;
}

/**
 * Where a `put` (write) or `get` (read) path is on the node: inside its volume when `volume` is set
 * (agent/volumes/store.ts), else through the `--files-allow` policy.
 * @throws CutterError POLICY_DENIED, NOT_FOUND, EXECUTOR_DISABLED (volumes or file transfer off).
 */
export function filePath(
  kind: 'read' | 'write',
  msg: { path: string; volume?: string },
  store: VolumeStore | undefined,
  policy: PathPolicy,
): Promise<string> {
  if (msg.volume === undefined) return kind === 'read' ? policy.forRead(msg.path) : policy.forWrite(msg.path);
  const volumes = requireVolumes(store);
  return kind === 'read' ? volumes.forRead(msg.volume, msg.path) : volumes.forWrite(msg.volume, msg.path);
}

/**
 * Carries out one volume request.
 * @param store undefined when the node has volumes turned off (`--volumes-dir off`).
 * @returns the reply. @throws CutterError (the caller answers `error`): EXECUTOR_DISABLED when
 *   volumes are off, NOT_FOUND, INVALID_ARGUMENT, POLICY_DENIED (a path leaving the volume).
 */
export async function answerVolumeRequest(store: VolumeStore | undefined, msg: VolumeRequest, log: Logger, client: string): Promise<Reply> {
  store = requireVolumes(store);
  // Another node's agent (a node-to-node copy) may only list what it was granted.
  const peer = peerOf(client);
  if (peer !== null && !(msg.type === 'vol.manifest' && store.granted(peer, msg.volume, msg.path)))
    throw new CutterError(
      'POLICY_DENIED',
      `agent ${peer} holds no grant for ${msg.type} here (cutter cp NODE:VOL/DIR ${peer}:VOL/DIR asks for one)`,
    );
  switch (msg.type) {
    case 'vol.grant':
      store.grant(msg.to, msg.volume, msg.path, GRANT_MS);
      log.info({ volume: msg.volume, path: msg.path, to: msg.to, client }, 'volume read granted to another node');
      return { type: 'vol.granted', xfer: msg.xfer };
    case 'vol.pull':
      if (!store.puller) throw new CutterError('EXECUTOR_DISABLED', 'this node cannot copy from other nodes');
      return store.puller.pull(msg, client);
    case 'vol.create': {
      const volume = await store.create(msg.volume);
      log.info({ volume: msg.volume, path: volume.path, client }, 'volume created');
      return { type: 'vol.info', xfer: msg.xfer, volume };
    }
    case 'vol.inspect':
      return { type: 'vol.info', xfer: msg.xfer, volume: await store.info(msg.volume) };
    case 'vol.rm': {
      const users = store.usersOf(msg.volume);
      if (users.length && !msg.force)
        throw new CutterError(
          'POLICY_DENIED',
          `volume ${msg.volume} is mounted by task ${users.map((u) => u.replace(/:\d+$/, '')).join(', ')} running here: ` +
            'wait for it to end or cancel it (cutter cancel TASK), or remove the volume anyway with cutter volume rm --force',
        );
      await store.remove(msg.volume);
      log.info({ volume: msg.volume, client, ...(users.length ? { forced: users } : {}) }, 'volume removed');
      return { type: 'vol.info', xfer: msg.xfer, volume: null };
    }
    case 'vol.ls':
      return { type: 'vol.list', xfer: msg.xfer, volumes: await store.list() };
    case 'vol.diff': {
      const { need, haveBytes } = await store.diff(msg.volume, msg.files);
      log.info({ volume: msg.volume, files: msg.files.length, need: need.length, haveBytes, client }, 'volume manifest compared');
      return { type: 'vol.need', xfer: msg.xfer, need, haveBytes };
    }
    case 'vol.manifest': {
      const { files, total } = await store.manifest(msg.volume, msg.path, msg.offset, MANIFEST_PAGE, MANIFEST_PAGE_BYTES);
      const end = msg.offset + files.length;
      return { type: 'vol.files', xfer: msg.xfer, files, total, next: end < total ? end : null };
    }
  }
}
