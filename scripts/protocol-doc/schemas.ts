/**
 * The schema sections of docs/protocol.md: the payload of each topic, the shared definitions and
 * the reply results, with their prose and examples.
 */
import type { z } from 'zod';
import { STALE_AFTER_HEARTBEATS } from '../../controller/scheduler/snapshot.js';
import {
  AssignmentSchema,
  CancelSchema,
  AckSchema,
  LendingSetSchema,
  WakeCommandSchema,
  ControllerStatusSchema,
  NodeListResultSchema,
  NodeStatusSchema,
  NodeViewSchema,
  ReplySchema,
  RequestSchema,
  RequirementsSchema,
  RestartPolicySchema,
  TaskEventSchema,
  TaskListResultSchema,
  TaskLogsResultSchema,
  TaskOptionsSchema,
  TaskSpecSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TERMINAL_STATUSES,
} from '../../shared/schemas/index.js';
import type { Topics } from '../../shared/topics.js';
import { formatBytes } from '../../shared/units.js';
import {
  NODE,
  TASK,
  TS,
  VERSION,
  exampleAssigned,
  exampleDockerSpec,
  exampleEvents,
  exampleExecSpec,
  exampleOllamaSpec,
  exampleOnline,
  exampleOptionsIn,
  exampleQueued,
  exampleRequests,
  exampleRequirements,
  exampleRetry,
  exampleTaskState,
  exampleUnknown,
  exampleWill,
} from './examples.js';
import { bullets, code, quoteList } from './format.js';
import { resultOf, restartTable, stateMeaning } from './meanings.js';
import { type SchemaDoc, schemaDoc } from './schema-doc.js';
import { agentDefault, backoffSentence, serverDefault } from './timings.js';

/**
 * Every schema section: `payloads` (one per topic payload), `shared` (definitions used inside them)
 * and `results` (what successful replies carry). Examples are not parsed here: see checkExamples().
 */
export function buildSchemaDocs(t: Topics): { payloads: SchemaDoc[]; shared: SchemaDoc[]; results: SchemaDoc[] } {
  const staleAfter = `${STALE_AFTER_HEARTBEATS} × \`heartbeatMs\``;
  const payloads = [
    schemaDoc({
      name: 'NodeStatus',
      schema: NodeStatusSchema,
      about: [
        `On ${code(t.nodeStatus('{node}'))}, retained. An agent publishes it on every change and every \`heartbeatMs\`; \`seq\` increases with every status during one agent run. Memory figures are bytes, times ms since the Unix epoch on the agent's clock (the controller judges freshness by its own receive time, so clock skew does not matter): a node silent for more than ${staleAfter} is offline to the controller.`,
        `\`running\` lists the attempts (\`taskId\`, \`attempt\`) the node runs or starts now; the controller reconciles it with what it expects there on every heartbeat (see [Fencing](#fencing)). \`offer.lostAfterMs\` is how long the node may be disconnected before its tasks are lost and rescheduled (agent setting \`lostAfterMs\`, default ${agentDefault('lostAfterMs')}: at once); a task's own \`options.lostAfterMs\` overrides it. \`state: "draining"\`: the agent takes no new tasks (it is shutting down and waits for its running ones).`,
        `The last will is a retained NodeStatus with \`state: "offline"\`, fixed at connect time: it has no \`capacity\`, \`offer\` or \`running\` tasks, and its \`seq\`/\`ts\` are older than the agent's last heartbeat.`,
      ],
      examples: [
        { title: 'online heartbeat', value: exampleOnline },
        { title: 'retained last will', value: exampleWill },
      ],
    }),
    schemaDoc({
      name: 'Assignment',
      schema: AssignmentSchema,
      about: [
        `On ${code(t.nodeAssign('{node}'))}, not retained. The agent's session is persistent (\`clean: false\`), so an agent that reconnects receives what was sent while it was away. The agent de-duplicates by (\`taskId\`, \`attempt\`) and must accept (an \`accepted\` event) before \`leaseExpiresAt\` (controller clock; see [Leases](#leases)). \`attempt\` counts from 1 and grows with every placement of the task; only the current attempt counts (see [Fencing](#fencing)).`,
      ],
      examples: [
        {
          title: 'docker task',
          value: {
            v: 1,
            taskId: TASK,
            attempt: 1,
            leaseExpiresAt: TS + 10_000,
            spec: exampleDockerSpec,
            requirements: exampleRequirements,
          },
        },
      ],
    }),
    schemaDoc({
      name: 'Cancel',
      schema: CancelSchema,
      about: [
        `On ${code(t.nodeCancel('{node}'))}, not retained. The agent stops the run of (\`taskId\`, \`attempt\`): SIGTERM, then SIGKILL after \`graceMs\`. A cancel that arrives before its assignment makes the agent refuse that assignment with \`CANCELLED\`. The controller sends it for a \`cancel\` request, when a task's timeout runs out, and to fence an attempt it no longer expects on that node (see [Fencing](#fencing)).`,
      ],
      examples: [{ title: 'cancel with the default grace', value: { v: 1, taskId: TASK, attempt: 1 } }],
    }),
    schemaDoc({
      name: 'Ack',
      schema: AckSchema,
      about: [
        `On ${code(t.nodeAck('{node}'))}, not retained. The controller acknowledges a node's final events (\`result\`, \`failed\`) of (\`taskId\`, \`attempt\`) only after it has committed what they changed, so a result the agent has given up is never lost: with the server's data dir full the ack waits, the agent keeps the event and sends it again at every heartbeat and reconnect, and a controller restarted in between applies it then. Results are applied once per (task, attempt); duplicates and results of tasks the controller does not know are acknowledged too.`,
      ],
      examples: [{ title: 'one result acknowledged', value: { v: 1, acks: [{ taskId: TASK, attempt: 1 }] } }],
    }),
    schemaDoc({
      name: 'LendingSet',
      schema: LendingSetSchema,
      about: [
        `On ${code(t.nodeLendingSet('{node}'))}, not retained (issue 17). A change of the node's lending policy: \`patch\` holds the fields that change (\`null\` removes a condition), \`reset\` first goes back to the agent's own flags and file. The agent applies it at once, samples, and echoes \`id\` in its NodeStatus \`lending.applied\`. Only admins and the server publish it; an agent reads only its own.`,
      ],
      examples: [{ title: 'lending off', value: { v: 1, id: '5f2c9e01a7b3d4e6', patch: { enabled: false } } }],
    }),
    schemaDoc({
      name: 'WakeCommand',
      schema: WakeCommandSchema,
      about: [
        `On ${code(t.nodeWake('{node}'))}, not retained (issue 17). The server asks this awake node, which announced the same broadcast address as the sleeping node \`node\` (so is on its LAN), to send the magic packet for \`mac\` to \`broadcast\`:\`port\`. The agent sends it only when \`broadcast\` is the broadcast address of one of its own networks (or to its own \`--wake-address\`/\`--wake-port\`), and logs what it did; nothing is answered (the node's agent coming online is the answer). Only the server publishes it.`,
      ],
      examples: [
        { title: 'wake the GPU box', value: { v: 1, node: 'gpu-box', mac: '02:fc:00:00:00:01', broadcast: '192.168.1.255', port: 9 } },
      ],
    }),
    schemaDoc({
      name: 'TaskEvent',
      schema: TaskEventSchema,
      about: [
        `On ${code(t.taskEvents('{task}'))}, not retained: the agent's stream for one run, read by the controller and by any follower (the CLI). Discriminated by \`type\`: ${quoteList(Object.keys(exampleEvents))}. \`seq\` counts from 0 per attempt so followers can order and de-duplicate.`,
        "The controller keeps the events of the current attempt (served by `task.logs`, see [Task logs](#task-logs)); events of another `attempt` or `node` than the task's current one, or of a task that is queued or finished, are ignored and the sending node is told to stop that attempt (see [Fencing](#fencing)).",
        '`log.data` is a batch of one stream\'s output, not necessarily whole lines: with `encoding: "base64"` (what agents send) the raw bytes the task wrote, base64-encoded (at most 768 KiB of bytes per event), so binary output arrives exactly; without `encoding` (older agents) UTF-8 text. When the assignment says `outputFrames: true` (the controller reads them), the agent sends `log` events as **binary frames** instead of JSON (shared/log-frame.ts): byte 0 = 0x00 (never the first byte of JSON, so a reader tells the two apart), byte 1 = frame version 1, bytes 2-3 = the header length H (unsigned 16-bit big-endian, at most 1,024), then H bytes of UTF-8 JSON — the event without `data` and `encoding` — then the output bytes themselves (at most 768 KiB). A watcher with `mosquitto_sub` sees those frames as they are; the CLI, the controller and `task.logs` replies read both forms. A stream\'s output is the bytes of its `log` events joined in `seq` order. `result` ends a run that executed (whatever the exit code; `cancelled: true` when cutter stopped it); `failed` ends one that could not run, with a stable `code` (see [Error codes](#error-codes)).',
      ],
      examples: Object.entries(exampleEvents).map(([type, value]) => ({ title: type, value })),
    }),
    schemaDoc({
      name: 'TaskState',
      schema: TaskStateSchema,
      about: [
        `On ${code(t.taskState('{task}'))}, retained, published by the controller on every transition. Terminal states (${quoteList(TERMINAL_STATUSES)}) are final. When the controller evicts a finished task it clears the topic with an empty retained payload, which receivers treat as "no state", not as an invalid message.`,
        '`state` is one of:',
        bullets(TaskStatusSchema.options.map((s) => [s, stateMeaning[s]])),
        "`attempt` is 0 until the first placement and then the number of the current (or last) attempt; `node` is where it is placed (null while queued). `reason` says why the task is in its state now: what a queued task waits for, why a retry is queued (the last attempt's end and when the next one is due), why it is `unknown`; null otherwise. `options` are the task's [TaskOptions](#taskoptions) with every default filled in. `error` is the code and message of what ended the task, when it did not succeed (see [Error codes](#error-codes)); null while it is live and after success. While a retry waits in the queue, `placement`, `assignedAt` and `startedAt` still describe the last attempt.",
      ],
      examples: [
        { title: 'queued: no node fits now', value: exampleQueued },
        { title: 'assigned', value: exampleAssigned },
        { title: 'unknown: its node went silent', value: exampleUnknown },
        { title: 'queued again: attempt 1 was lost, attempt 2 waits out its backoff', value: exampleRetry },
        { title: 'succeeded', value: exampleTaskState },
      ],
    }),
    schemaDoc({
      name: 'Request',
      schema: RequestSchema,
      about: [
        `On ${code(t.requests('{client}'))}, not retained. Discriminated by \`op\`: ${quoteList(Object.keys(exampleRequests))}. \`id\` is chosen by the client and comes back in the [Reply](#reply) on ${code(t.replies('{client}'))}; the controller takes \`{client}\` from the topic.`,
        "`submit` carries the task's [TaskOptions](#taskoptions) in `options` (optional; every field defaulted). `node.drain` with `drain: true` stops placing new tasks on a node (its running tasks finish), `drain: false` resumes it; the controller keeps it across restarts.",
        'Results by op (`result` of a successful reply):',
        bullets(Object.entries(resultOf)),
      ],
      examples: Object.entries(exampleRequests).map(([op, value]) => ({ title: op, value })),
    }),
    schemaDoc({
      name: 'Reply',
      schema: ReplySchema,
      about: [
        `On ${code(t.replies('{client}'))}, not retained. Discriminated by \`ok\`: \`result\` on success (its shape depends on the op, see [Request](#request)), \`error\` otherwise, with a stable \`code\` (see [Error codes](#error-codes)) and a message meant for a person.`,
      ],
      examples: [
        { title: 'ok', value: { v: 1, id: 'r3', ok: true, result: exampleTaskState } },
        {
          title: 'error: submit with options.queue false that fits nowhere',
          value: {
            v: 1,
            id: 'r1',
            ok: false,
            error: {
              code: 'NO_FIT',
              message: 'no node can take this docker task needing 4.0 GiB now',
              rejections: [
                {
                  node: 'nas',
                  code: 'memory',
                  needed: 4 * 1024 ** 3,
                  free: 1288490189,
                  offered: 8 * 1024 ** 3,
                  available: 3328599654,
                  held: 2040109466,
                },
                { node: NODE, code: 'offline', detail: 'connection lost' },
              ],
            },
          },
        },
      ],
    }),
    schemaDoc({
      name: 'ControllerStatus',
      schema: ControllerStatusSchema,
      about: [
        `On ${code(t.controllerStatus())}, retained. The controller publishes \`online\` once it has subscribed and republished its tasks' state; its last will (and a clean stop) publishes \`offline\`. Clients use it to tell "no controller" from "slow controller".`,
      ],
      examples: [{ title: 'online', value: { v: 1, state: 'online', version: VERSION, ts: TS } }],
    }),
  ];

  const shared = [
    schemaDoc({
      name: 'TaskSpec',
      schema: TaskSpecSchema,
      about: [
        'What to run, in [Assignment](#assignment) and `submit` requests. Discriminated by `kind`: `docker` (a container; mirrors the `docker run` flags cutter accepts) or `exec` (a command run without a shell, only on agents started with `--allow-exec`).',
      ],
      examples: [
        { title: 'docker', value: exampleDockerSpec },
        { title: 'exec', value: exampleExecSpec },
        { title: 'ollama', value: exampleOllamaSpec },
      ],
    }),
    schemaDoc({
      name: 'Requirements',
      schema: RequirementsSchema,
      about: ['What the scheduler needs: an explicit `node` (wins), `memory` to reserve in bytes, `cpus` in cores.'],
      examples: [{ title: 'memory and CPU', value: exampleRequirements }],
    }),
    schemaDoc({
      name: 'TaskOptions',
      schema: TaskOptionsSchema,
      about: [
        'How the controller schedules and retries one task: `options` of a `submit` request (optional, every field defaulted) and of [TaskState](#taskstate) (every field filled in). Durations in ms.',
        bullets([
          ['restart', `the [RestartPolicy](#restartpolicy): whether an attempt that ended without success is followed by another`],
          ['maxAttempts', 'attempts in all, the first included'],
          [
            'queue',
            'wait in the queue when no node fits now; `false`: the `submit` fails at once with `NO_FIT` and the reason per node, and the task is not kept',
          ],
          [
            'timeoutMs',
            'bounds queueing and running together, counted from submission; when it runs out the task ends `failed` with `TIMEOUT` (a running attempt is cancelled on its node first). null: no limit',
          ],
          [
            'lostAfterMs',
            "how long the task's node may be disconnected before the attempt is lost; null: the node's own `offer.lostAfterMs`",
          ],
          ['priority', 'queued tasks are placed by priority (higher first), then age (older first)'],
        ]),
      ],
      examples: [
        { title: 'what a client sends', value: exampleOptionsIn },
        { title: 'all defaults', value: {} },
      ],
    }),
    schemaDoc({
      name: 'RestartPolicy',
      schema: RestartPolicySchema,
      about: [
        `The \`restart\` of [TaskOptions](#taskoptions). A retry is a new attempt (\`attempt\` + 1) that goes back to \`queued\` with a \`reason\` and is placed again, on any node that fits, after a backoff, while \`attempt < maxAttempts\`. ${backoffSentence()} A lost attempt is one the node lost (node offline past its window, lease expired, agent shut down or stopped the run, node busy or without the executor); a failed one ended by the task itself (non-zero exit, OOM kill, image pull or start failure). A cancel or a timeout is never retried.`,
        restartTable(),
      ],
      examples: [{ title: 'the default', value: 'on-lost' }],
    }),
  ];

  const nodeView = {
    node: NODE,
    state: 'online',
    drained: false,
    offlineReason: null,
    lastSeenAgoMs: 850,
    reservedMemory: 0,
    status: exampleOnline,
  } satisfies z.input<typeof NodeViewSchema>;
  const results = [
    schemaDoc({
      name: 'NodeView',
      schema: NodeViewSchema,
      about: [
        "A node as the controller sees it: its last [NodeStatus](#nodestatus) plus freshness on the controller's clock.",
        bullets([
          [
            'state',
            `\`online\`; \`draining\` (by its own word, or drained with \`node.drain\`): takes no new tasks; \`offline\`: it said so, its last will fired, or it has been silent for more than ${staleAfter} (then \`status.state\` may still say online)`,
          ],
          ['drained', 'drained with a `node.drain` request (kept by the controller across restarts)'],
          ['offlineReason', 'why the controller considers it offline (its `reason`, or how long it has been silent); null while it is not'],
          ['reservedMemory', 'bytes held for tasks placed there that its heartbeat does not list yet'],
        ]),
      ],
      examples: [
        { title: 'online node', value: nodeView },
        { title: 'drained node', value: { ...nodeView, state: 'draining', drained: true } },
        { title: 'silent node', value: { ...nodeView, state: 'offline', offlineReason: 'no heartbeat for 5.1 s', lastSeenAgoMs: 5_100 } },
      ],
    }),
    schemaDoc({
      name: 'TaskListResult',
      schema: TaskListResultSchema,
      about: ['`result` of `task.list`.'],
      examples: [{ title: 'one task', value: { tasks: [exampleTaskState] } }],
    }),
    schemaDoc({
      name: 'TaskLogsResult',
      schema: TaskLogsResultSchema,
      about: [
        `\`result\` of \`task.logs\`: the [TaskEvent](#taskevent)s the controller kept for the task, ordered by attempt then \`seq\` (none with \`summaryOnly\`). \`truncated\`: some output was not kept. \`more\`: the page is full (a reply stays under 1 MiB); ask again with \`after\` set to the last event's attempt and seq.`,
        `\`output\`: what of the task's output was kept and dropped (null from a server before it). Past the per-task limit (server setting \`maxLogBytes\`, default ${formatBytes(serverDefault('maxLogBytes'))}) the controller keeps the head and the tail: the first half of the limit (\`headBytes\`) and the last half (\`tailBytes\`) of the task's output, all streams together in the order written, every attempt; the middle is dropped. So each stream loses at most one contiguous range: \`dropped\` bytes from offset \`droppedFrom\` of that stream. \`written\` = \`kept\` + \`dropped\` + \`lost\`; \`lost\`: output that arrived while the controller's data dir refused writes (position unknown). \`chunks\` counts the JSON of ollama chunks, dropped whole events at a time. \`uncounted\`: an older server dropped output without counting it. A log event in the tail may read back as only its last bytes (the first half of the limit stops inside one event: it reads as its head bytes then its kept tail bytes).`,
      ],
      examples: [
        {
          title: 'one attempt',
          value: {
            events: (['accepted', 'progress', 'started', 'log', 'result'] as const).map((type) => exampleEvents[type]),
            truncated: false,
            more: false,
            output: {
              limit: serverDefault('maxLogBytes') as number,
              headBytes: 12,
              tailBytes: 0,
              stdout: { written: 12, kept: 12, dropped: 0, droppedFrom: 12, lost: 0 },
              stderr: { written: 0, kept: 0, dropped: 0, droppedFrom: 0, lost: 0 },
              chunks: { written: 0, kept: 0, dropped: 0, droppedFrom: 0, lost: 0 },
              uncounted: false,
            },
          },
        },
        {
          title: 'cut: 10 MB of stdout past a 4 MiB limit (summaryOnly)',
          value: {
            events: [],
            truncated: true,
            more: false,
            output: {
              limit: 4_194_304,
              headBytes: 2_097_152,
              tailBytes: 2_097_152,
              stdout: { written: 10_000_000, kept: 4_194_304, dropped: 5_805_696, droppedFrom: 2_097_152, lost: 0 },
              stderr: { written: 0, kept: 0, dropped: 0, droppedFrom: 0, lost: 0 },
              chunks: { written: 0, kept: 0, dropped: 0, droppedFrom: 0, lost: 0 },
              uncounted: false,
            },
          },
        },
      ],
    }),
    schemaDoc({
      name: 'NodeListResult',
      schema: NodeListResultSchema,
      about: ['`result` of `node.list` (every node) and of `node.drain` (the one node).'],
      examples: [{ title: 'one node', value: { nodes: [nodeView] } }],
    }),
  ];
  return { payloads, shared, results };
}
