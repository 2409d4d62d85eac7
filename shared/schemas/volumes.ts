/**
 * Volume messages, carried on the file transfer topics (shared/schemas/files.ts: client → agent on
 * `nodes/N/files/in/C`, agent → client on `nodes/N/files/out/C`), so they are allowed to exactly
 * the identities `cutter cp` is (the broker's ACL: admins). Each request carries a fresh `xfer`
 * id that its reply repeats; a request sent again (no answer yet) is answered again.
 *
 * - `vol.create` / `vol.inspect` / `vol.rm` → `vol.info` (`volume: null` after a remove).
 * - `vol.ls` → `vol.list`.
 * - `vol.diff`: the sender's manifest of one batch of files (path inside the volume, size in
 *   bytes, SHA-256) → `vol.need`: the indices of the files the node lacks or has different.
 * - `vol.manifest`: a page of the node's files under `path` (from `offset`) → `vol.files`.
 * Files themselves move with `put`/`get` and their `volume` field (paths then inside it).
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { VolumeNameSchema, VolumePathSchema } from '../volumes.js';

const XferId = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters');
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Most files in one `vol.diff` or `vol.files` (a page stays well under the broker's packet limit: ≤ 1,000 × ~1.1 KB). */
export const MANIFEST_PAGE = 1_000;
/** Most bytes of one manifest page's JSON (under the 256 KiB the file topics take: shared/limits.ts). */
export const MANIFEST_PAGE_BYTES = 192 * 1024;
/** Most volumes one node announces and lists. */
export const MAX_VOLUMES = 256;

/** One file of a manifest: its path inside the volume, size in bytes and SHA-256. */
export const ManifestEntrySchema = z.object({ path: VolumePathSchema.refine((p) => p.length > 0), size: Count, sha256: Sha256 });
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/** What a node says about one volume: `path` is absolute on the node; `files` and `bytes` count regular files. */
export const VolumeInfoSchema = z.object({
  name: VolumeNameSchema,
  path: z.string().max(4096),
  files: Count,
  bytes: Count,
  /** ms epoch, node clock. */
  createdAt: Count,
});
export type VolumeInfo = z.infer<typeof VolumeInfoSchema>;

/** Client → agent volume requests (members of FileInSchema). */
export const VolumeInSchemas = [
  z.object({ v: z.literal(1), type: z.literal('vol.create'), xfer: XferId, volume: VolumeNameSchema }),
  z.object({ v: z.literal(1), type: z.literal('vol.inspect'), xfer: XferId, volume: VolumeNameSchema }),
  z.object({
    v: z.literal(1),
    type: z.literal('vol.rm'),
    xfer: XferId,
    volume: VolumeNameSchema,
    /** Remove it even while a task running on the node mounts it (`cutter volume rm --force`). */
    force: z.boolean().optional(),
  }),
  z.object({ v: z.literal(1), type: z.literal('vol.ls'), xfer: XferId }),
  z.object({
    v: z.literal(1),
    type: z.literal('vol.diff'),
    xfer: XferId,
    volume: VolumeNameSchema,
    files: z.array(ManifestEntrySchema).max(MANIFEST_PAGE),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('vol.manifest'),
    xfer: XferId,
    volume: VolumeNameSchema,
    path: VolumePathSchema,
    offset: Count,
  }),
  /**
   * Node to node (`cutter cp -r A:VOL/DIR B:VOL/DIR`): lets agent `to` read `volume`/`path` (and
   * below) of this node for 10 minutes (answered `vol.granted`); only such a grant lets another
   * agent's `vol.manifest` and `get` in.
   */
  z.object({ v: z.literal(1), type: z.literal('vol.grant'), xfer: XferId, volume: VolumeNameSchema, path: VolumePathSchema, to: IdSchema }),
  /**
   * Node to node: this node fetches `from.volume`/`from.path` of node `from.node` (which granted it)
   * into its own `volume`/`path`, only the files it lacks or has different, straight from that
   * node's agent: no byte passes through the client. Answered `vol.pulled` (`done: false` at once,
   * `done: true` with the figures at the end; asked again, the same answer).
   */
  z.object({
    v: z.literal(1),
    type: z.literal('vol.pull'),
    xfer: XferId,
    volume: VolumeNameSchema,
    path: VolumePathSchema,
    from: z.object({ node: IdSchema, volume: VolumeNameSchema, path: VolumePathSchema }),
  }),
] as const;

/** Agent → client volume replies (members of FileOutSchema). */
export const VolumeOutSchemas = [
  z.object({ v: z.literal(1), type: z.literal('vol.info'), xfer: XferId, volume: VolumeInfoSchema.nullable() }),
  z.object({ v: z.literal(1), type: z.literal('vol.list'), xfer: XferId, volumes: z.array(VolumeInfoSchema).max(MAX_VOLUMES) }),
  /** Indices into the `vol.diff` batch of the files to send; `haveBytes`: bytes of the batch the node already has. */
  z.object({
    v: z.literal(1),
    type: z.literal('vol.need'),
    xfer: XferId,
    need: z.array(z.number().int().nonnegative().max(MANIFEST_PAGE)).max(MANIFEST_PAGE),
    haveBytes: Count,
  }),
  /** A page of the node's files; `next` is the offset of the next page, null after the last. */
  z.object({
    v: z.literal(1),
    type: z.literal('vol.files'),
    xfer: XferId,
    files: z.array(ManifestEntrySchema).max(MANIFEST_PAGE),
    total: Count,
    next: Count.nullable(),
  }),
  z.object({ v: z.literal(1), type: z.literal('vol.granted'), xfer: XferId }),
  /** A node-to-node copy: running (`done: false`) or finished, with what moved (bytes are file bytes). */
  z.object({
    v: z.literal(1),
    type: z.literal('vol.pulled'),
    xfer: XferId,
    done: z.boolean(),
    files: Count.optional(),
    filesSent: Count.optional(),
    bytes: Count.optional(),
    bytesSent: Count.optional(),
    wireBytes: Count.optional(),
    ms: Count.optional(),
  }),
] as const;
