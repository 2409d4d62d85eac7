/**
 * The state store's journal (controller/state-store.ts): every write since the last successful
 * commit, kept so that a failed commit (a full disk) loses nothing: the whole journal is written
 * again at each retry.
 */
import type { KeptStream, TaskEvent } from '../shared/schemas/index.js';
import type { TaskRecord } from './task-record.js';

/** What is written but not committed yet, replayed at each try (task records re-serialised then). */
export interface Journal {
  tasks: Map<string, { record: TaskRecord; terminal: boolean }>;
  deleted: Set<string>;
  events: { event: TaskEvent; maxLogBytes: number; bytes: number }[];
  eventBytes: number;
  /** Output dropped past PENDING_OUTPUT_BYTES, bytes per task and stream (counted as lost). */
  lost: Map<string, Partial<Record<KeptStream, number>>>;
  drains: Map<string, boolean>;
}

/** A journal with nothing written. */
export const emptyJournal = (): Journal => ({
  tasks: new Map(),
  deleted: new Set(),
  events: [],
  eventBytes: 0,
  lost: new Map(),
  drains: new Map(),
});
