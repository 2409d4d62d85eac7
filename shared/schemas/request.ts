/**
 * Request/reply between a client (CLI, scripts) and the controller:
 * requests on `requests/{client}`, replies on `replies/{client}`, matched by `id`.
 */
import { z } from 'zod';
import { IdSchema } from '../topics.js';
import { KeptOutputSchema } from './kept-output.js';
import { IPV4_PATTERN, NodeStatusSchema, WakeInfoSchema } from './node.js';
import { RejectionSchema } from './rejection.js';
import { RequirementsSchema, TaskEventSchema, TaskOptionsSchema, TaskSpecSchema, TaskStateSchema, TaskStatusSchema } from './task.js';

const RequestBase = { v: z.literal(1), id: z.string().min(1).max(64) };

export const RequestSchema = z.discriminatedUnion('op', [
  z.object({
    ...RequestBase,
    op: z.literal('submit'),
    /** Optional client-chosen task id: lets the client subscribe to events before submitting; a retry with the same id is idempotent. */
    taskId: IdSchema.optional(),
    spec: TaskSpecSchema,
    requirements: RequirementsSchema,
    options: TaskOptionsSchema.default(TaskOptionsSchema.parse({})),
  }),
  z.object({ ...RequestBase, op: z.literal('cancel'), taskId: IdSchema, graceMs: z.number().int().nonnegative().max(600_000).optional() }),
  z.object({ ...RequestBase, op: z.literal('task.get'), taskId: IdSchema }),
  z.object({
    ...RequestBase,
    op: z.literal('task.list'),
    states: z.array(TaskStatusSchema).max(10).optional(),
    limit: z.number().int().positive().max(10_000).default(100),
  }),
  z.object({ ...RequestBase, op: z.literal('node.list') }),
  /** Stop (drain: true) or resume (drain: false) placing new tasks on a node; running tasks finish. */
  z.object({ ...RequestBase, op: z.literal('node.drain'), node: IdSchema, drain: z.boolean() }),
  /**
   * Forgets an offline node with no unfinished task: it leaves the node list, its drain mark, its
   * retained status and its Home Assistant device. A node whose agent starts again joins anew.
   */
  z.object({ ...RequestBase, op: z.literal('node.forget'), node: IdSchema }),
  /**
   * Sends a Wake-on-LAN magic packet for a known, offline node with a MAC known (controller/wake.ts),
   * from the server: to the node's announced broadcast address on UDP port 9 unless `address`/`port`
   * (or the server's `wakeAddress`/`wakePort`) say otherwise.
   */
  z.object({
    ...RequestBase,
    op: z.literal('node.wake'),
    node: IdSchema,
    address: z.string().regex(IPV4_PATTERN, 'an IPv4 address').optional(),
    port: z.number().int().min(1).max(65_535).optional(),
  }),
  /** Creates a token (admin only, like every request): the reply carries the password, once. */
  z.object({ ...RequestBase, op: z.literal('token.create'), role: z.enum(['admin', 'agent', 'observer', 'mcp']), name: IdSchema }),
  z.object({ ...RequestBase, op: z.literal('token.list') }),
  z.object({ ...RequestBase, op: z.literal('token.revoke'), username: z.string().min(1).max(200) }),
  /** The events the controller kept for a task (logs bounded per task), oldest first. */
  z.object({
    ...RequestBase,
    op: z.literal('task.logs'),
    taskId: IdSchema,
    /** Only events after this one (the last of the previous page). */
    after: z.object({ attempt: z.number().int().nonnegative(), seq: z.number().int().nonnegative() }).optional(),
    /** Reply with no events, only `truncated` and `output` (what was kept and dropped). */
    summaryOnly: z.boolean().optional(),
  }),
]);

/** A node as the controller sees it: its last status plus freshness on the controller's clock. */
export const NodeViewSchema = z.object({
  node: IdSchema,
  /**
   * `offline` covers a node that said so, whose last will fired, or that has been silent for longer
   * than its freshness window (then `status.state` may still say online). `draining`: by its own
   * word or by `cutter nodes drain`.
   */
  state: z.enum(['online', 'draining', 'offline']),
  /** Drained by `cutter nodes drain` (kept by the controller across restarts). */
  drained: z.boolean(),
  /** Why the controller considers it offline, when it does. */
  offlineReason: z.string().max(500).nullable(),
  /** ms since the controller last heard from the node. */
  lastSeenAgoMs: z.number().int().nonnegative(),
  /** Memory the scheduler holds for tasks placed there that the node has not yet reported, bytes. */
  reservedMemory: z.number().int().nonnegative(),
  status: NodeStatusSchema,
  /** The last MAC and broadcast address the node announced, kept while it is offline (Wake-on-LAN); absent when unknown. */
  wake: WakeInfoSchema.optional(),
});

export const ReplyErrorSchema = z.object({
  code: z.string().max(64),
  message: z.string().max(8_000),
  rejections: z.array(RejectionSchema).optional(),
});

export const ReplySchema = z.discriminatedUnion('ok', [
  z.object({ v: z.literal(1), id: z.string().max(64), ok: z.literal(true), result: z.unknown() }),
  z.object({ v: z.literal(1), id: z.string().max(64), ok: z.literal(false), error: ReplyErrorSchema }),
]);

/** Results per op, for clients to validate what they get. */
export const SubmitResultSchema = TaskStateSchema;
export const TaskListResultSchema = z.object({ tasks: z.array(TaskStateSchema) });
export const NodeListResultSchema = z.object({ nodes: z.array(NodeViewSchema) });
/** Result of node.wake: the packet that was sent, and where to. */
export const WakeResultSchema = z.object({
  node: IdSchema,
  mac: z.string(),
  address: z.string(),
  port: z.number().int(),
  /** Bytes sent (102: 6 × 0xFF, then the MAC 16 times). */
  bytes: z.number().int(),
  /** Whether it went out as a broadcast (SO_BROADCAST set). */
  broadcast: z.boolean(),
  /** The awake node whose agent was asked to send it on the sleeping node's LAN (shared/schemas/wake.ts); absent: the server sent it. */
  via: IdSchema.optional(),
});
/** A token as listed (never its secret); times in ms epoch. */
export const TokenInfoSchema = z.object({
  username: z.string(),
  role: z.enum(['admin', 'agent', 'observer', 'mcp']),
  name: z.string(),
  createdAt: z.number().int(),
  revokedAt: z.number().int().nullable(),
});
export const TokenListResultSchema = z.object({ tokens: z.array(TokenInfoSchema) });
/** Result of token.create: MQTT credentials for any client (mosquitto_sub -u … -P …). */
export const TokenCreatedSchema = z.object({ username: z.string(), password: z.string() });

export const TaskLogsResultSchema = z.object({
  events: z.array(TaskEventSchema),
  /** Some output was not kept: past the per-task limit (see `output`), or lost while storage failed. */
  truncated: z.boolean(),
  /** More events follow: ask again with `after` = the last event of this page (a reply stays under 1 MiB). */
  more: z.boolean(),
  /** What of the task's output was kept and dropped, per stream; null from a server before this field. */
  output: KeptOutputSchema.nullable().default(null),
});

/** Retained controller heartbeat on `controller/status`; the last will says `offline`. */
export const ControllerStatusSchema = z.object({
  v: z.literal(1),
  state: z.enum(['online', 'offline']),
  version: z.string().max(50),
  ts: z.number().int().nonnegative(),
});

export type Request = z.infer<typeof RequestSchema>;
export type RequestOp = Request['op'];
export type NodeView = z.infer<typeof NodeViewSchema>;
export type ReplyError = z.infer<typeof ReplyErrorSchema>;
export type Reply = z.infer<typeof ReplySchema>;
export type WakeResult = z.infer<typeof WakeResultSchema>;
export type ControllerStatus = z.infer<typeof ControllerStatusSchema>;
