/** What a file transfer takes and reports (cli/files/put.ts, ./get.ts). */
import { randomBytes } from 'node:crypto';

/** Tunables of one transfer. */
export interface TransferOptions {
  /** Bytes per chunk (default 512 KiB). */
  chunkBytes?: number;
  /** Most unacknowledged bytes (default 8 chunks). */
  windowBytes?: number;
  /** Silence after which the request is sent again (resume), ms (default 3000). */
  stallMs?: number;
  /** Silence after which the transfer fails, ms (default 120000). */
  timeoutMs?: number;
  /** Called with the bytes the receiver has written. */
  onProgress?: (bytes: number, total: number) => void;
  /** The node's volume the remote path is inside (`cutter cp -r`, cli/files/tree.ts). */
  volume?: string;
  /** getFile only: refuse (INVALID_SIZE, nothing written) a file larger than this many bytes (the MCP tool copy_file). */
  maxBytes?: number;
  /** A task's input content (put: into the node's cache) or output file (get, from output `output`); cli/io/. */
  task?: { id: string; attempt: number; output?: number };
}

/** What a finished transfer reports (`cutter cp --json`). */
export interface TransferResult {
  direction: 'put' | 'get';
  node: string;
  /** Path on the node, as the agent resolved it. */
  remotePath: string;
  localPath: string;
  bytes: number;
  sha256: string;
  ms: number;
  /** Offsets the transfer resumed from after a stall (empty when it never stalled); the first transfer's start is `startOffset`. */
  resumedFrom: number[];
  /** Offset the first request started from (> 0 when a partial file was kept from an earlier run). */
  startOffset: number;
  /** Chunk bytes sent over the wire by this side (put) or received and written (get). */
  wireBytes: number;
  /** For image pushes: the id the node's engine loaded. */
  imageId?: string;
}

/** A new transfer id: 16 random bytes as 32 hex characters (the frame header carries them raw). */
export const newXfer = (): string => randomBytes(16).toString('hex');
