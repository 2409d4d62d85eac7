/**
 * The fuzz test's targets (topic, reader, schema), its cases, and the tally of the log lines it
 * expects (test/integration/fuzz.test.ts).
 */
import * as fc from 'fast-check';
import type { z } from 'zod';
import { decode } from '../../shared/codec.js';
import { limitsForTopic } from '../../shared/limits.js';
import {
  AckSchema,
  AssignmentSchema,
  CancelSchema,
  NodeStatusSchema,
  PortAnnouncementSchema,
  RequestSchema,
  TaskEventSchema,
} from '../../shared/schemas/index.js';
import type { Daemon, LogLine } from '../harness.js';
import { t, AGENT, TASK, CLIENT, type J } from './fuzz-json.js';
import { statusBase, eventBase, requestBase, assignBase, cancelBase, portsBase, ackBase, type Gen, utf8 } from './fuzz-bases.js';
import { mutations, huge } from './fuzz-mutations.js';
import { INSPECTOR_NOISE } from './fuzz-gc.js';

// ---- targets, cases ---------------------------------------------------------------------------------

export type Who = 'server' | 'agent';
export interface Target {
  key: string;
  topic: string;
  schema: z.ZodType;
  who: Who;
  base: fc.Arbitrary<J>;
  /** Whether schema-valid payloads may be sent here (only where they are harmless). */
  validAllowed: boolean;
}

export const TARGETS: Target[] = [
  { key: 'status', topic: t.nodeStatus(AGENT), schema: NodeStatusSchema, who: 'server', base: statusBase, validAllowed: true },
  { key: 'events', topic: t.taskEvents(TASK), schema: TaskEventSchema, who: 'server', base: eventBase, validAllowed: true },
  { key: 'requests', topic: t.requests(CLIENT), schema: RequestSchema, who: 'server', base: requestBase, validAllowed: false },
  { key: 'assign', topic: t.nodeAssign(AGENT), schema: AssignmentSchema, who: 'agent', base: assignBase, validAllowed: false },
  { key: 'cancel', topic: t.nodeCancel(AGENT), schema: CancelSchema, who: 'agent', base: cancelBase, validAllowed: true },
  { key: 'ports', topic: t.nodePorts(AGENT, TASK), schema: PortAnnouncementSchema, who: 'server', base: portsBase, validAllowed: false },
  { key: 'ack', topic: t.nodeAck(AGENT), schema: AckSchema, who: 'agent', base: ackBase, validAllowed: false },
];

export interface Case {
  target: Target;
  kind: string;
  payload: Buffer;
  valid: boolean;
  /** For valid payloads: what the process logs instead of dropping. */
  value?: Record<string, unknown>;
}

/** The first `max` bytes of a payload for a report: as a JSON string when printable, else as hex. */
export function preview(payload: Buffer, max = 160): string {
  const text = payload.subarray(0, max).toString('utf8');
  const printable = !/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text);
  return printable
    ? JSON.stringify(text) + (payload.length > max ? '…' : '')
    : `hex:${payload.subarray(0, max / 2).toString('hex')}${payload.length > max / 2 ? '…' : ''}`;
}

/** A generated payload aimed at `target`, with its validity computed by decode() against the target's schema. */
export function toCase(target: Target, g: Gen): Case {
  // The same limits the reader applies (shared/limits.ts, by the topic's kind).
  const d = decode(target.schema, g.payload, limitsForTopic(target.topic));
  const c: Case = { target, kind: g.kind, payload: g.payload, valid: d.ok, value: d.ok ? (d.value as Record<string, unknown>) : undefined };
  // fast-check prints counterexamples with this (a 3 MiB payload must not end up in the report whole).
  Object.defineProperty(c, fc.toStringMethod, {
    value: () => `${target.topic} [${g.kind}, ${d.ok ? 'valid' : 'invalid'}, ${g.payload.length} bytes] ${preview(g.payload)}`,
  });
  return c;
}

/** Never valid on requests/assign (a submit would create tasks, an assignment would run), never the agent's own status. */
/**
 * The server's default --max-packet (4 MiB, shared/config/server.ts). A bigger packet is not a
 * payload to drop but a connection the broker cuts (its own test: broker limits), and the raw
 * client here does not reconnect: a filler of `"` or `\` characters doubles when serialised, so a
 * 3 MiB huge case can come out over it.
 */
const MAX_PACKET_BYTES = 4 * 1024 * 1024;

export function allowed(c: Case): boolean {
  if (c.payload.length === 0) return false;
  // The PUBLISH packet: payload, topic, its 2-byte length, packet id and a fixed header of at most 5.
  if (c.payload.length + Buffer.byteLength(c.target.topic) + 9 > MAX_PACKET_BYTES) return false;
  if (!c.valid) return true;
  if (!c.target.validAllowed) return false;
  if (c.target.key === 'status') return c.value!.node !== AGENT;
  return true;
}

/** Generated payloads aimed at one target (those it must not be sent are filtered out). */
export const caseArbFor = (target: Target): fc.Arbitrary<Case> =>
  mutations(target.base, target.validAllowed)
    .map((g) => toCase(target, g))
    .filter(allowed);

/** Hand-picked payloads sent first on every topic (JSON that is not an object, 100 kB keys). */
export function fixedCases(): Case[] {
  const longKey = 'K'.repeat(100_000);
  const out: Case[] = [];
  for (const target of TARGETS)
    for (const text of ['{}', 'null', '[]', 'true', '0', '""', '"\\u0000"', ' ', '\u0000', '{"v":1}'])
      out.push(toCase(target, utf8('fixed', text)));
  const env = { [longKey]: 'x' };
  const by = (key: string) => TARGETS.find((x) => x.key === key)!;
  out.push(
    toCase(
      by('requests'),
      utf8(
        'fixed-long-key',
        JSON.stringify({
          v: 1,
          id: 'long-key',
          op: 'submit',
          spec: { kind: 'exec', argv: ['true'], env },
          requirements: { node: 'no-such-node-fuzz' },
        }),
      ),
    ),
  );
  out.push(
    toCase(
      by('assign'),
      utf8(
        'fixed-long-key',
        JSON.stringify({
          v: 1,
          taskId: 'longkey',
          attempt: 1,
          leaseExpiresAt: 0,
          spec: { kind: 'exec', argv: ['true'], env },
          requirements: {},
          nodeRunId: 'fuzz-not-this-run',
        }),
      ),
    ),
  );
  out.push(
    toCase(
      by('status'),
      utf8(
        'fixed-long-key',
        JSON.stringify({
          v: 1,
          node: 'someone-else',
          state: 'online',
          version: '0',
          seq: 1,
          ts: 1,
          heartbeatMs: 500,
          offer: { maxMemory: null, maxTasks: 1, executors: [], labels: { [longKey]: 'x' } },
        }),
      ),
    ),
  );
  return out.filter(allowed);
}

export const hugeArb = (target: Target): fc.Arbitrary<Case> =>
  huge(target.base)
    .map((g) => toCase(target, g))
    .filter(allowed);

// ---- what the processes log -------------------------------------------------------------------------

/** Counts, incrementally, the log lines the test expects and any sign of trouble. */
export class Tally {
  readonly counts = new Map<string, number>();
  readonly bytes = new Map<string, number>();
  readonly problems: string[] = [];
  private seen = 0;

  constructor(readonly daemon: Daemon) {}

  update(): this {
    const lines = this.daemon.lines;
    for (; this.seen < lines.length; this.seen++) {
      const l = lines[this.seen];
      const key = expectedKey(l);
      if (key) {
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
        if (typeof l.bytes === 'number') this.bytes.set(key, (this.bytes.get(key) ?? 0) + l.bytes);
      }
      if (l.msg === 'dropped invalid message' && (typeof l.error !== 'string' || !l.error))
        this.problems.push(`${this.daemon.name}: a drop without its error: ${JSON.stringify(l).slice(0, 500)}`);
      if ((l.level ?? 0) >= 50 || l.raw || /handler failed|uncaught|unhandled/i.test(String(l.msg))) {
        this.problems.push(`${this.daemon.name} logged: ${JSON.stringify(l).slice(0, 2000)}`);
      }
    }
    return this;
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Exit, stderr output, error-level lines. */
  trouble(): string[] {
    this.update();
    const out = [...this.problems];
    const c = this.daemon.child;
    if (c.exitCode !== null || c.signalCode !== null) out.push(`${this.daemon.name} exited (code ${c.exitCode}, signal ${c.signalCode})`);
    const stderr = this.daemon.stderr.replace(INSPECTOR_NOISE, '');
    if (stderr.trim()) out.push(`${this.daemon.name} wrote to stderr: ${stderr.slice(0, 4000)}`);
    return out;
  }
}

/** The tally key of a log line the test expects (a drop or a lie, per topic), or undefined for any other line. */
export function expectedKey(l: LogLine): string | undefined {
  switch (l.msg) {
    case 'dropped invalid message':
      return `drop ${String(l.topic)}`;
    case 'dropped node status: node id does not match its topic':
      return l.topic === t.nodeStatus(AGENT) ? 'lie status' : undefined;
    case 'dropped task event: task id does not match its topic':
      return l.topic === t.taskEvents(TASK) ? 'lie events' : undefined;
    case 'dropped event for unknown task':
      return l.taskId === TASK ? 'lie events' : undefined;
    case 'cancel for a task not running here':
      return 'lie cancel';
    default:
      return undefined;
  }
}

/** Log key a valid (lying) case produces. */
export const lieKey = (c: Case): string => `lie ${c.target.key}`;
