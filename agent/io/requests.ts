/**
 * The agent's answers to the `io.*` requests of shared/schemas/io.ts and the paths of `put`/`get`
 * that carry a task (its input contents, its output files), called by the file service
 * (agent/files/service.ts) for the messages on its topics. The broker has already checked that the
 * sender is the task's submitter (broker/acl.ts `ioDenied`).
 */
import { join } from 'node:path';
import type { AgentConfig } from '../../shared/config.js';
import { defaultDataDir } from '../../shared/config/common.js';
import { CutterError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { FileIn, FileOut } from '../../shared/schemas/files.js';
import { MANIFEST_PAGE, MANIFEST_PAGE_BYTES } from '../../shared/schemas/volumes.js';
import type { PathPolicy } from '../files/paths.js';
import { answerVolumeRequest, filePath, isVolumeRequest, peerOf, type VolumeStore } from '../volumes/requests.js';
import { IoStore } from './store.js';

export { IoStore } from './store.js';
export type { VolumeStore } from '../volumes/requests.js';

type IoRequest = Extract<FileIn, { type: `io.${string}` }>;
type Reply = FileOut extends infer O ? (O extends FileOut ? Omit<O, 'v'> : never) : never;

/** The config keys the io store reads. */
export type IoConfig = Pick<AgentConfig, 'nodeId'> & Partial<Pick<AgentConfig, 'filesMaxSize'>>;

const stores = new WeakMap<IoConfig, IoStore>();

/** @returns the node's one IoStore (`<data dir>/io/<node id>`), shared by the file service and the task runner. */
export function ioOf(config: IoConfig): IoStore {
  let store = stores.get(config);
  if (!store) {
    store = new IoStore(join(defaultDataDir(), 'io', config.nodeId), config.nodeId, config.filesMaxSize ?? 4 * 1024 ** 3);
    stores.set(config, store);
  }
  return store;
}

/** True for the `io.*` requests. */
export function isIoRequest(msg: FileIn): msg is IoRequest {
  return msg.type.startsWith('io.');
}

/** @throws CutterError EXECUTOR_DISABLED when this node takes no task inputs or outputs. */
function requireIo(io: IoStore | undefined): IoStore {
  if (!io) throw new CutterError('EXECUTOR_DISABLED', 'this node takes no task inputs or outputs');
  return io;
}

type FileMsg = Extract<FileIn, { type: 'put' | 'get' }>;

/**
 * Where a `put` (write) or `get` (read) goes on the node: for one that names a task, an input
 * content's cache file or an output file (ioFilePath); else a volume's file or a path the
 * `--files-allow` policy allows (agent/volumes/requests.ts `filePath`). Another node's agent (`from`
 * `cutter-agent-…`) may only read a volume file it holds a grant for (`vol.grant`).
 * @throws CutterError: the refusals of either.
 */
export async function pathOf(
  kind: 'read' | 'write',
  msg: FileMsg,
  opts: { io?: IoStore; volumes?: VolumeStore },
  policy: PathPolicy,
  from: string,
): Promise<string> {
  // Another node's agent (a node-to-node copy) reads only inside what it was granted.
  const peer = peerOf(from);
  if (
    peer !== null &&
    !(kind === 'read' && msg.volume !== undefined && msg.task === undefined && opts.volumes?.granted(peer, msg.volume, msg.path))
  )
    throw new CutterError('POLICY_DENIED', `agent ${peer} holds no grant to ${kind} ${msg.volume ?? ''}/${msg.path} here`);
  return msg.task !== undefined ? ioFilePath(requireIo(opts.io), msg) : filePath(kind, msg, opts.volumes, policy);
}

/**
 * Where a `put` or `get` that names a task reads or writes: an input content's cache file, or an
 * output file. @throws CutterError INVALID_ARGUMENT (no attempt or output index), and the store's refusals.
 */
export function ioFilePath(io: IoStore, msg: FileMsg): Promise<string> {
  if (msg.task === undefined || msg.attempt === undefined)
    throw new CutterError('INVALID_ARGUMENT', 'a task file transfer needs both task and attempt');
  if (msg.type === 'put') return io.inputPath(msg.task, msg.attempt, msg.sha256);
  if (msg.output === undefined) throw new CutterError('INVALID_ARGUMENT', 'a task output transfer needs its output index');
  return io.outputPath(msg.task, msg.attempt, msg.output, msg.path);
}

/** Carries out one io request. @returns the reply. @throws CutterError (the caller answers `error`). */
export async function answerIoRequest(store: IoStore | undefined, msg: IoRequest, log: Logger, client: string): Promise<Reply> {
  const io = requireIo(store);
  const ids = { taskId: msg.task, attempt: msg.attempt, client };
  switch (msg.type) {
    case 'io.diff': {
      const { need, haveBytes } = await io.diff(msg.task, msg.attempt, msg.input, msg.xfer, msg.files);
      log.info({ ...ids, input: msg.input, files: msg.files.length, need: need.length, haveBytes }, 'task input manifest compared');
      return { type: 'vol.need', xfer: msg.xfer, need, haveBytes };
    }
    case 'io.ready': {
      const { files, bytes } = await io.ready(msg.task, msg.attempt, msg.inputs);
      log.info({ ...ids, files, bytes }, 'task inputs staged');
      return { type: 'io.ok', xfer: msg.xfer, files, bytes };
    }
    case 'io.manifest': {
      const { files, total } = await io.outputManifest(msg.task, msg.attempt, msg.output, msg.offset, MANIFEST_PAGE, MANIFEST_PAGE_BYTES);
      const end = msg.offset + files.length;
      return { type: 'vol.files', xfer: msg.xfer, files, total, next: end < total ? end : null };
    }
    case 'io.abort':
      io.abort(msg.task, msg.attempt, msg.message);
      log.warn({ ...ids, message: msg.message }, 'the submitter gave up staging the task inputs');
      return { type: 'io.ok', xfer: msg.xfer };
    case 'io.done':
      await io.done(msg.task, msg.attempt);
      log.info(ids, 'task outputs collected: directories deleted');
      return { type: 'io.ok', xfer: msg.xfer };
  }
}

/** True for the requests a node's stores answer: `vol.*` (agent/volumes/requests.ts) and `io.*`. */
export function isStoreRequest(msg: FileIn): msg is IoRequest | Extract<FileIn, { type: `vol.${string}` }> {
  return isVolumeRequest(msg) || isIoRequest(msg);
}

/** Answers a `vol.*` or `io.*` request. @returns the reply. @throws CutterError (the caller answers `error`). */
export function answerStoreRequest(
  stores: { io?: IoStore; volumes?: VolumeStore },
  msg: IoRequest | Extract<FileIn, { type: `vol.${string}` }>,
  log: Logger,
  client: string,
): Promise<Reply> {
  return isIoRequest(msg) ? answerIoRequest(stores.io, msg, log, client) : answerVolumeRequest(stores.volumes, msg, log, client);
}
