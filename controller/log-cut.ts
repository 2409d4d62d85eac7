/**
 * The arithmetic of keeping a task's output within its limit: the head and the tail, like
 * `docker logs --tail` users expect. The first `headBudget(limit)` bytes of the task's output (all
 * streams together, in the order written) are the head, kept for good; everything after is the
 * tail, of which only the last `limit - headBudget(limit)` bytes stay, the oldest cut first. So
 * what is dropped is the middle, one contiguous range of each stream. Pure: the state is a plain
 * object that controller/log-keeper.ts stores (JSON) and applies to the kept events.
 */
import { KEPT_STREAMS, type KeptOutput, type KeptStream } from '../shared/schemas/index.js';

/** One stream's counts, bytes: what reached the controller, what went to the head, what was dropped from the tail, what was lost. */
export interface StreamCount {
  written: number;
  head: number;
  dropped: number;
  lost: number;
}

/** The account of one task's output. */
export interface CutState {
  /** Output in the head, bytes (all streams). */
  headBytes: number;
  /** The head is closed: an output event did not fit whole (its head part may be smaller, see `admit`). */
  headFull: boolean;
  /** Output kept in the tail now, bytes. */
  tailBytes: number;
  /** An older server dropped output without counting it (see KeptOutput.uncounted). */
  uncounted: boolean;
  /** The last output event taken, [attempt, seq]: one at or before it is a redelivery and is ignored. */
  last: [number, number] | null;
  streams: Record<KeptStream, StreamCount>;
}

const zero = (): StreamCount => ({ written: 0, head: 0, dropped: 0, lost: 0 });

/** An account with nothing in it. */
export function newCut(): CutState {
  return {
    headBytes: 0,
    headFull: false,
    tailBytes: 0,
    uncounted: false,
    last: null,
    streams: { stdout: zero(), stderr: zero(), chunks: zero() },
  };
}

/** The head's share of `limit` bytes: half of it, rounded down; the tail gets the rest. */
export function headBudget(limit: number): number {
  return Math.floor(limit / 2);
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);

/** An account read back from its JSON; a malformed one (never written by this code) reads as empty. */
export function parseCut(json: string): CutState {
  let raw: Partial<CutState> & Record<string, unknown>;
  try {
    raw = JSON.parse(json);
  } catch {
    return newCut();
  }
  const st = newCut();
  st.headBytes = count(raw.headBytes);
  st.headFull = raw.headFull === true;
  st.tailBytes = count(raw.tailBytes);
  st.uncounted = raw.uncounted === true;
  if (Array.isArray(raw.last) && raw.last.length === 2) st.last = [count(raw.last[0]), count(raw.last[1])];
  for (const s of KEPT_STREAMS) {
    const c = (raw.streams as Record<string, Partial<StreamCount>> | undefined)?.[s];
    if (c) st.streams[s] = { written: count(c.written), head: count(c.head), dropped: count(c.dropped), lost: count(c.lost) };
  }
  return st;
}

/**
 * Whether (attempt, seq) comes after the last output event taken; records it when it does.
 * Output events of a task arrive in (attempt, seq) order; one that does not is a redelivery (QoS 1).
 */
export function takeInOrder(st: CutState, attempt: number, seq: number): boolean {
  if (st.last && (attempt < st.last[0] || (attempt === st.last[0] && seq <= st.last[1]))) return false;
  st.last = [attempt, seq];
  return true;
}

/**
 * Takes one output event of `bytes` into the account and says where it goes: its first `head`
 * bytes to the head, the remaining `tail` bytes to the tail. Only the event that fills the head is
 * split between the two, and only when `splittable` (log bytes; a chunks event is never split: if
 * it does not fit whole, the head closes short of its budget).
 * @param limit the task's limit, bytes (maxLogBytes).
 */
export function admit(st: CutState, stream: KeptStream, bytes: number, splittable: boolean, limit: number): { head: number; tail: number } {
  let head = 0;
  if (!st.headFull) {
    const room = Math.max(0, headBudget(limit) - st.headBytes);
    if (bytes <= room) head = bytes;
    else {
      head = splittable ? room : 0;
      st.headFull = true;
    }
  }
  const tail = bytes - head;
  st.headBytes += head;
  st.tailBytes += tail;
  const c = st.streams[stream];
  c.written += bytes;
  c.head += head;
  return { head, tail };
}

/**
 * How much of the oldest event in the tail to drop: null when the tail is within its budget, else
 * the bytes to cut from the start of that event's tail part (all of it when it is not splittable or
 * is no larger than the excess). Call again until null: each call drops from one event.
 * @param oldest the oldest event's tail part: its stream, its bytes in the tail, whether it can be cut.
 */
export function evict(st: CutState, oldest: { stream: KeptStream; bytes: number; splittable: boolean }, limit: number): number | null {
  const excess = st.tailBytes - (limit - headBudget(limit));
  if (excess <= 0) return null;
  const cut = !oldest.splittable || oldest.bytes <= excess ? oldest.bytes : excess;
  st.tailBytes -= cut;
  st.streams[oldest.stream].dropped += cut;
  return cut;
}

/** Counts output that reached the controller but could not be stored (storage failing). */
export function lose(st: CutState, stream: KeptStream, bytes: number): void {
  st.streams[stream].written += bytes;
  st.streams[stream].lost += bytes;
}

/** The account as the wire shows it (KeptOutputSchema). @param limit the limit per task now, bytes. */
export function keptOutput(st: CutState, limit: number): KeptOutput {
  const stream = (s: KeptStream) => {
    const c = st.streams[s];
    return { written: c.written, kept: c.written - c.dropped - c.lost, dropped: c.dropped, droppedFrom: c.head, lost: c.lost };
  };
  return {
    limit,
    headBytes: st.headBytes,
    tailBytes: st.tailBytes,
    stdout: stream('stdout'),
    stderr: stream('stderr'),
    chunks: stream('chunks'),
    uncounted: st.uncounted,
  };
}
