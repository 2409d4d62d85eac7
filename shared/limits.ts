/**
 * Limits on JSON that comes from the network, in one table: per topic kind (`ParsedTopic['kind']`
 * of shared/topics.ts) plus the HTTP bodies of the Ollama API. `scanJson` checks raw bytes against
 * them in one pass before anything is parsed into objects, so a 1,000,000-deep array (which
 * JSON.parse takes 0.6 s to build, and JSON.stringify then overflows the stack on) or a 10^5-element
 * array is refused for the cost of reading its bytes once.
 */
import { type ParsedTopic, topics } from './topics.js';

/** What one payload may contain. */
export interface JsonLimits {
  /** Largest payload, bytes. */
  maxBytes: number;
  /** Deepest nesting of arrays and objects (a bare scalar is depth 0, `{}` is 1). */
  maxDepth: number;
  /** Most elements in one array (at least 1: members are counted by commas). */
  maxArray: number;
  /** Longest string (keys included), bytes of its JSON text between the quotes (escapes counted as written). */
  maxString: number;
  /** Most keys in one object (at least 1). */
  maxKeys: number;
}

/** Kinds of input limited here: the MQTT topic kinds plus HTTP bodies and the HA extension's topics. */
export type LimitKind = ParsedTopic['kind'] | 'ollamaHttp' | 'ollamaInventory' | 'haCommand' | 'default';

const KiB = 1024;
const MiB = 1024 * KiB;
const bulk: JsonLimits = { maxBytes: 2 * MiB, maxDepth: 32, maxArray: 10_000, maxString: 1 * MiB, maxKeys: 1_024 };
const files: JsonLimits = { maxBytes: 16 * KiB, maxDepth: 4, maxArray: 64, maxString: 4_096, maxKeys: 32 };
/** File transfer control with volume manifests (shared/schemas/volumes.ts): pages of up to 1,000 files, at most 256 KiB. */
const manifests: JsonLimits = { ...files, maxBytes: 256 * KiB, maxArray: 1_000 };
/** What the controller itself sends (states, replies): only depth is tight, sizes are the broker's. */
const fromController: JsonLimits = { maxBytes: 256 * MiB, maxDepth: 32, maxArray: 1_000_000, maxString: 64 * MiB, maxKeys: 10_000 };

/**
 * The limits per kind. Arrays follow the schemas' own caps (a status lists up to 10,000 running
 * tasks and 2,000 models; a chunks event up to 100,000 Ollama objects); a log batch is capped
 * below 1 MiB by the agent; an Ollama chat request carries images base64 (16 MiB body). Binary
 * file chunks (`filesInData`, `filesOutData`) and stdin frames (`nodeStdin`) are not JSON: only `maxBytes` applies to them.
 * `default` (a payload decoded without naming its kind) keeps what `decode` accepted before.
 */
export const LIMITS: Readonly<Record<LimitKind, JsonLimits>> = {
  nodeStatus: { maxBytes: 1 * MiB, maxDepth: 16, maxArray: 10_000, maxString: 16 * KiB, maxKeys: 256 },
  taskEvents: { maxBytes: 1.1 * MiB, maxDepth: 32, maxArray: 100_000, maxString: 1 * MiB, maxKeys: 1_024 },
  taskState: fromController,
  replies: fromController,
  // Acks of committed results (controller → agent).
  nodeAck: fromController,
  // What the broker re-routed there is an agent's task event or port announcement: the larger of the two.
  quarantine: { maxBytes: 1.1 * MiB, maxDepth: 32, maxArray: 100_000, maxString: 1 * MiB, maxKeys: 1_024 },
  controllerStatus: { ...files, maxKeys: 64 },
  requests: bulk,
  nodeAssign: bulk,
  nodeCancel: bulk,
  nodePorts: { maxBytes: 4 * KiB, maxDepth: 4, maxArray: 16, maxString: 255, maxKeys: 16 },
  forwardState: { maxBytes: 16 * KiB, maxDepth: 4, maxArray: 64, maxString: 1_024, maxKeys: 32 },
  filesIn: manifests,
  filesOut: manifests,
  filesInData: { ...files, maxBytes: 2 * MiB },
  filesOutData: { ...files, maxBytes: 2 * MiB },
  // Binary stdin frames (shared/schemas/stdin.ts): a 14-byte header and at most 64 KiB of data.
  nodeStdin: { ...files, maxBytes: 64 * KiB + 64 },
  nodeStdinAck: { maxBytes: 2 * KiB, maxDepth: 2, maxArray: 1, maxString: 512, maxKeys: 16 },
  // Reader credit (shared/schemas/output-credit.ts): a version, an attempt, a seq, a flag.
  nodeCredit: { maxBytes: 256, maxDepth: 1, maxArray: 1, maxString: 16, maxKeys: 8 },
  /** A lending policy change (shared/schemas/lending.ts): a patch of a few fields and up to 16 short windows. */
  nodeLendingSet: { maxBytes: 4 * KiB, maxDepth: 4, maxArray: 16, maxString: 100, maxKeys: 16 },
  /** A relayed Wake-on-LAN request (shared/schemas/wake.ts): a node id, a MAC, an address, a port. */
  nodeWake: { maxBytes: 1 * KiB, maxDepth: 1, maxArray: 1, maxString: 128, maxKeys: 8 },
  haCommand: { maxBytes: 16, maxDepth: 1, maxArray: 1, maxString: 16, maxKeys: 1 },
  ollamaHttp: { maxBytes: 16 * MiB, maxDepth: 32, maxArray: 10_000, maxString: 16 * MiB, maxKeys: 1_024 },
  /** The node's Ollama answering the agent's inventory GETs (version, tags, ps): a status lists at most 2,000 models. */
  ollamaInventory: { maxBytes: 8 * MiB, maxDepth: 16, maxArray: 10_000, maxString: 64 * KiB, maxKeys: 256 },
  default: { maxBytes: 2 * MiB, maxDepth: 64, maxArray: 100_000, maxString: 2 * MiB, maxKeys: 10_000 },
};

const byPrefix = new Map<string, ReturnType<typeof topics>>();

/**
 * The limits for an MQTT topic: of its kind when it is a cutter topic (any prefix), else `default`.
 * The prefix is what precedes the first `/v1/`; the topic itself is taken apart by `topics().parse`.
 */
export function limitsForTopic(topic: string): JsonLimits {
  const at = topic.indexOf('/v1/');
  if (at <= 0) return LIMITS.default;
  const prefix = topic.slice(0, at);
  let t = byPrefix.get(prefix);
  if (!t) {
    try {
      t = topics(prefix);
    } catch {
      return LIMITS.default;
    }
    if (byPrefix.size < 16) byPrefix.set(prefix, t);
  }
  const kind = t.parse(topic)?.kind;
  return kind ? LIMITS[kind] : LIMITS.default;
}

/** Result of `scanJson`: ok, or the first limit crossed (`path` like `$.spec.request[3]`, approximate for keys). */
export type ScanResult = { ok: true } | { ok: false; error: string };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;

/** Per-level counters reused across calls (the scanner is synchronous): grown to the largest maxDepth seen. */
let commas = new Int32Array(64);
let isObj = new Uint8Array(64);
/** Per level: where the current member's key starts and ends (offsets into the payload; -1 = none yet). */
let keyFrom = new Int32Array(64);
let keyTo = new Int32Array(64);

/**
 * Checks raw JSON bytes against `limits` in one pass, allocating nothing per byte: depth from
 * brackets outside strings, elements per array and keys per object by commas per level, string
 * lengths between unescaped quotes. It does not validate JSON syntax (JSON.parse does that next);
 * for every text JSON.parse accepts, `ok` means no limit is crossed. Never throws.
 * @returns `{ ok: true }` or the first violation with where it is, e.g.
 *   `nesting depth 33 > 32 at $.spec.request[0] (byte 32)`.
 */
export function scanJson(bytes: Uint8Array | string, limits: JsonLimits): ScanResult {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (buf.length > limits.maxBytes) return { ok: false, error: `payload of ${buf.length} bytes > ${limits.maxBytes}` };
  if (commas.length < limits.maxDepth + 2) {
    commas = new Int32Array(limits.maxDepth + 2);
    isObj = new Uint8Array(limits.maxDepth + 2);
    keyFrom = new Int32Array(limits.maxDepth + 2);
    keyTo = new Int32Array(limits.maxDepth + 2);
  }
  scanned = buf;
  // In an object, the next string after `{` or `,` is a key.
  let expectKey = false;
  let depth = 0;
  let inString = false;
  let strStart = 0;
  // Inside a string only a backslash or a quote matters: jump to the next one with the native
  // byte search (memchr) instead of a JS loop over every byte (a log event is one long base64
  // string). Each search result is kept until the scan passes it, so every byte is searched at
  // most once per character: linear, however many escapes a string holds.
  const view = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  let nextBackslash = -1; // position of the next backslash at or after the last search; buf.length: none
  let nextQuote = -1;
  for (let i = 0; i < buf.length; i++) {
    if (inString) {
      if (nextBackslash < i) nextBackslash = indexOrEnd(view, BACKSLASH, i);
      if (nextQuote < i) nextQuote = indexOrEnd(view, QUOTE, i);
      i = Math.min(nextBackslash, nextQuote);
      if (i >= buf.length) break;
    }
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) {
        inString = false;
        if (i - strStart > limits.maxString) return fail(`string of ${i - strStart} bytes > ${limits.maxString}`, depth, i);
        if (expectKey) {
          keyFrom[depth] = strStart;
          keyTo[depth] = i;
          expectKey = false;
        }
      }
    } else if (c === QUOTE) {
      inString = true;
      strStart = i + 1;
      if (expectKey) keyFrom[depth] = -1; // a key longer than maxString is reported without its name
    } else if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (depth + 1 > limits.maxDepth) return fail(`nesting depth ${depth + 1} > ${limits.maxDepth}`, depth, i);
      depth++;
      commas[depth] = 0;
      isObj[depth] = c === OPEN_OBJ ? 1 : 0;
      keyFrom[depth] = -1;
      expectKey = c === OPEN_OBJ;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === COMMA && depth > 0) {
      expectKey = isObj[depth] === 1;
      keyFrom[depth] = -1;
      const n = ++commas[depth] + 1;
      const max = isObj[depth] ? limits.maxKeys : limits.maxArray;
      if (n > max) return fail(isObj[depth] ? `object of more than ${max} keys` : `array of more than ${max} elements`, depth, i);
    }
  }
  if (inString && buf.length - strStart > limits.maxString)
    return fail(`string of ${buf.length - strStart} bytes > ${limits.maxString}`, depth, buf.length);
  scanned = new Uint8Array(0);
  return { ok: true };
}

/** The offset of the next `byte` in `view` at or after `from`, or `view.length` when there is none. */
function indexOrEnd(view: Buffer, byte: number, from: number): number {
  const at = view.indexOf(byte, from);
  return at === -1 ? view.length : at;
}

/** The payload being scanned (for key names in errors). */
let scanned: Uint8Array = new Uint8Array(0);

/**
 * Builds the error of a violation at `offset`, with the path of open containers (at most 8 levels
 * shown): keys by name (cut at 32 bytes, `#n` = the object's n-th member when unknown), elements by index.
 */
function fail(what: string, depth: number, offset: number): ScanResult {
  let path = '$';
  for (let d = 1; d <= Math.min(depth, 8); d++) {
    if (!isObj[d]) path += `[${commas[d]}]`;
    else if (keyFrom[d] < 0) path += `.#${commas[d]}`;
    else path += `.${Buffer.from(scanned.buffer, scanned.byteOffset + keyFrom[d], Math.min(32, keyTo[d] - keyFrom[d])).toString('utf8')}`;
  }
  if (depth > 8) path += `…(${depth - 8} more levels)`;
  scanned = new Uint8Array(0);
  return { ok: false, error: `${what} at ${path} (byte ${offset})` };
}
