/**
 * The "Flows" section of docs/protocol.md: how submit, leases, node failure, fencing, cancel,
 * draining, task logs, controller restart and presence play out, with timings read from the code.
 */
import { STALE_AFTER_HEARTBEATS } from '../../controller/scheduler/snapshot.js';
import { NODE_FAULT_CODES } from '../../controller/task-record.js';
import type { TaskEvent } from '../../shared/schemas/index.js';
import type { Topics } from '../../shared/topics.js';
import { formatBytes } from '../../shared/units.js';
import { code, quoteList } from './format.js';
import { FENCE_REPEAT_MS, MISSING_HEARTBEATS, seconds, serverDefault } from './timings.js';

/** The "## Flows" heading and its subsections, as Markdown blocks joined by blank lines in the document. */
export function flows(t: Topics): string[] {
  const ev = (type: TaskEvent['type']) => code(type);
  const leaseMs = serverDefault('leaseMs');
  const graceMs = serverDefault('startupGraceMs');
  const staleAfter = `${STALE_AFTER_HEARTBEATS} heartbeat intervals (${STALE_AFTER_HEARTBEATS} × its \`heartbeatMs\`, on the controller's clock)`;
  return [
    '## Flows',
    '### Submit and queueing',
    [
      `1. The client subscribes to ${code(t.replies('{client}'))}, then to ${code(t.taskEvents('{task}'))} and ${code(t.taskState('{task}'))} for a task id it chooses itself, so it misses nothing.`,
      `2. It publishes a ${code('submit')} [Request](#request) with that ${code('taskId')} and its [TaskOptions](#taskoptions) on ${code(t.requests('{client}'))}. A retry with the same ${code('taskId')} is idempotent: the reply is the task's current state.`,
      `3. The controller stores the task, then tries to place it at once with the scheduler (explicit node first, then feasibility and ranking).`,
      `4. Placed: the controller reserves the memory on the node, publishes the retained [TaskState](#taskstate) ${code('assigned')} on ${code(t.taskState('{task}'))}, then the [Assignment](#assignment) on ${code(t.nodeAssign('{node}'))}, and replies with the TaskState.`,
      `5. No node fits now: with ${code('options.queue: false')} the controller replies ${code('NO_FIT')} with the reason per node, clears the task's state topic and forgets the task. Otherwise the task is **queued**: it publishes and replies the TaskState ${code('queued')}, whose ${code('reason')} says what it waits for (the scheduler's message and the reason per node).`,
      `6. The controller tries the queue again whenever the mesh changes (a node status, an attempt that ends, a drain or resume) and regularly while tasks wait. Queued tasks are tried in order of ${code('options.priority')} (higher first), then age (older first); a task that does not fit is passed over, so it does not block smaller tasks behind it (a large task can wait while smaller ones are placed). A queued task's ${code('reason')} is updated when what it waits for changes.`,
      `7. ${code('options.timeoutMs')} counts from submission: a task still queued when it runs out ends ${code('failed')} with ${code('TIMEOUT')}; a placed one is cancelled on its node and then ends ${code('failed')} with ${code('TIMEOUT')}.`,
    ].join('\n'),
    '### Running an attempt',
    [
      `1. The agent publishes [TaskEvent](#taskevent)s for the attempt on ${code(t.taskEvents('{task}'))}: ${ev('accepted')} (before the lease expires), ${ev('progress')} (e.g. image pull), ${ev('started')}, ${ev('log')}…, then ${ev('result')} or ${ev('failed')}. On ${ev('started')} the controller publishes state ${code('running')}.`,
      `2. A ${ev('result')} with exit code 0 and no OOM kill ends the attempt **succeeded**; any other ${ev('result')} ends it **failed** (${code('EXIT_CODE')} or ${code('OOM_KILLED')}). A ${ev('failed')} event ends it **failed** with the event's code, except ${quoteList(NODE_FAULT_CODES)}, which are the node's doing: the attempt is **lost**. Its ${code('exitCode')}, when it has one (127 ${code('COMMAND_NOT_FOUND')}, 126 ${code('COMMAND_NOT_INVOKABLE')}, as a shell gives), becomes the TaskState's ${code('exitCode')}; those two codes end the task whatever its restart policy (another attempt would find the same command). A ${ev('result')} with ${code('"cancelled": true')} that nobody asked for (the agent shut down, or the run was fenced) is **lost** too (${code('NODE_LOST')}).`,
      `3. The controller releases the node's reservation, then decides by the task's [RestartPolicy](#restartpolicy): a requested cancel ends the task ${code('cancelled')}, a timeout ${code('failed')}; otherwise, when the policy asks for another attempt and ${code('attempt < maxAttempts')}, the task goes back to ${code('queued')} (its ${code('reason')} names the ended attempt, the next one and its backoff delay, see [RestartPolicy](#restartpolicy)) and is placed again as ${code('attempt')} + 1 once the delay is over; else it publishes the terminal TaskState: ${code('succeeded')}, ${code('failed')} or ${code('lost')}.`,
      `4. Finished tasks beyond the ${code('keepFinished')} newest are evicted: the controller forgets them and clears their state topic with an empty retained payload.`,
    ].join('\n'),
    '### Leases',
    [
      `- Every [Assignment](#assignment) carries ${code('leaseExpiresAt')}: the controller's clock at placement plus the lease (server setting ${code('leaseMs')}, default ${seconds(leaseMs)}). Until the agent's ${ev('accepted')} arrives, the node holds the task only on that lease.`,
      `- When the lease runs out before ${ev('accepted')}, the attempt is lost with ${code('LEASE_EXPIRED')}: the controller releases the reservation, fences the attempt (a [Cancel](#cancel) to the node, which makes a late agent refuse or stop it) and the restart policy decides (by default a new attempt, possibly elsewhere).`,
      `- After a controller restart, leases that ran out while it was down are judged only once nodes have had the startup grace (server setting ${code('startupGraceMs')}, default ${seconds(graceMs)}) to report back.`,
    ].join('\n'),
    '### Node failure',
    [
      `1. A node goes **offline** when its retained last will arrives (connection lost), when it publishes ${code('offline')} itself (clean stop), or when the controller has heard nothing from it for ${staleAfter}. It is then ${code('offline')} in [NodeView](#nodeview), with ${code('offlineReason')}, and takes no tasks.`,
      `2. Its live tasks (${code('assigned')}, ${code('running')}) become ${code('unknown')}: the node may still be running them. Each has a lost-after window: the task's ${code('options.lostAfterMs')}, else the node's ${code('offer.lostAfterMs')} (default 0). With a window of 0 the attempt is lost at once instead.`,
      `3. The node reports back (any status other than ${code('offline')}) within the window: its tasks return to ${code('running')} (${code('assigned')} if they had not started) and its heartbeat is reconciled as usual (see [Fencing](#fencing)).`,
      `4. The window passes: the attempt is lost with ${code('NODE_LOST')}, and the restart policy decides between a new attempt (${code('queued')} with a ${code('reason')}, then placed on any node that fits) and the end of the task as ${code('lost')}. If the node comes back later, the old attempt is fenced.`,
      `5. A ${code('cancel')} of an ${code('unknown')} task ends it ${code('cancelled')} at once (${code('CANCELLED')}); the [Cancel](#cancel) waits in the node's persistent session for when it is back.`,
    ].join('\n'),
    '### Fencing',
    `Only the task's current attempt, on the node it was placed on, counts. Everything else is a stale attempt (an old attempt on a node that was thought lost, a run the controller gave up on) and is stopped:`,
    [
      `- An event whose (${code('attempt')}, ${code('node')}) is not the task's current one, or that arrives while the task is ${code('queued')} or finished, is ignored (not kept, no state change), and the node that sent it gets a [Cancel](#cancel) for that attempt (not for ${ev('result')} or ${ev('failed')}, which end the run anyway). Repeated cancels for the same attempt are sent at most every ${seconds(FENCE_REPEAT_MS)}.`,
      `- Every heartbeat is reconciled: an entry of ${code('running')} the controller does not expect on that node (unknown task, finished task, other attempt, other node) gets a Cancel.`,
      `- An accepted attempt missing from ${MISSING_HEARTBEATS} consecutive heartbeats of its node is lost (${code('NODE_LOST')}).`,
      `- An attempt whose lease expired is fenced with a Cancel as well.`,
      `- An event of a task the controller does not know (evicted, or lost with its state) gets a Cancel with ${code('reason')} ${code('unknown-task')} (${code('stale-attempt')} for the other fences); the node stops that work and carries on with the rest: nothing disconnects it.`,
      `- ${ev('result')} and ${ev('failed')} are acknowledged with an [Ack](#ack) once the controller has committed them (duplicates and unknown tasks too). Until then the agent keeps them, sends them again at every heartbeat and reconnect, and lists them in ${code('finished')} of its status, where they count as present (not lost). A result is applied once per (task, attempt), so a task that succeeded never runs again after a server restart, even one whose disk was full when the result came.`,
    ].join('\n'),
    '### Cancel',
    [
      `1. The client publishes a ${code('cancel')} [Request](#request) (optional ${code('graceMs')}) on ${code(t.requests('{client}'))}.`,
      `2. The controller replies ${code('NOT_FOUND')} or ${code('ALREADY_FINISHED')} when it cannot cancel. A ${code('queued')} task ends ${code('cancelled')} at once. Otherwise it publishes a [Cancel](#cancel) for the current attempt on ${code(t.nodeCancel('{node}'))}; if the task is ${code('unknown')} or its node is offline, it also publishes the terminal state ${code('cancelled')} (error ${code('CANCELLED')}) at once, and the node gets the Cancel when it is back. It replies with the TaskState as it is then.`,
      `3. The agent stops the run (SIGTERM, SIGKILL after ${code('graceMs')}) and publishes ${ev('result')} with ${code('"cancelled": true')}, or ${ev('failed')} with ${code('CANCELLED')} if it had not started; the controller then publishes the terminal state ${code('cancelled')}. A cancelled task is never retried.`,
    ].join('\n'),
    '### Draining',
    [
      `- A ${code('node.drain')} request with ${code('drain: true')} stops the controller placing new tasks on the node; tasks already there run to their end. ${code('drain: false')} resumes it. The controller keeps the drained set across restarts; [NodeView](#nodeview) shows ${code('drained: true')} and state ${code('draining')}.`,
      `- An agent that is shutting down announces ${code('state: "draining"')} itself: no new tasks, its running ones finish (or are stopped at its drain timeout, and then count as lost).`,
    ].join('\n'),
    '### Task logs',
    [
      `- The controller keeps each task's events as they arrive, in its state store (only the current attempt's: events of stale attempts are ignored, see [Fencing](#fencing)). Every event except output (${ev('log')}, ${ev('chunks')}) is kept. Output is kept within the per-task limit (server setting ${code('maxLogBytes')}, default ${formatBytes(serverDefault('maxLogBytes'))}, counted in decoded bytes of ${code('data')}): all of it up to the limit; past it the head (the first half of the limit) and the tail (the last half), the middle dropped and counted per stream ([TaskLogsResult](#tasklogsresult) ${code('output')}). An output event at or before the last one kept of its task (a redelivery) is ignored.`,
      `- A ${code('task.logs')} request returns them in pages of at most 1 MiB, every attempt, ordered by attempt then ${code('seq')} ([TaskLogsResult](#tasklogsresult)), so a client can show the output of a task it did not follow live. They are forgotten with the task when it is evicted.`,
    ].join('\n'),
    '### Controller restart',
    [
      `- The controller's state is durable: tasks (with the current attempt's lease, acceptance and retry bookkeeping), their kept events and the drained nodes live in SQLite in its data directory (server setting ${code('dataDir')}), and every change is written before it is published or acted on.`,
      `- On start it subscribes to node statuses, task events and requests, republishes the retained [TaskState](#taskstate) of every task it keeps (the broker may have lost its retained messages: an embedded broker restarts with the controller), then announces ${code('online')} on ${code(t.controllerStatus())}. The embedded broker opens its public listener only after the controller has subscribed, so no event an agent re-sends on reconnect reaches a broker with nobody listening.`,
      `- Nodes report back with their retained status and heartbeats, and their ${code('running')} lists are reconciled as usual. A task placed on a node that has not reported within the startup grace (${code('startupGraceMs')}, default ${seconds(graceMs)}) is handled as if that node had gone offline (see [Node failure](#node-failure)). Queued tasks are placed as nodes appear.`,
    ].join('\n'),
    '### Presence',
    [
      `- Agents publish a retained [NodeStatus](#nodestatus) on connect, on change and every heartbeat; the broker publishes their retained ${code('offline')} last will when the connection is lost. A clean stop publishes ${code('offline')} itself.`,
      `- The controller does the same with [ControllerStatus](#controllerstatus) on ${code(t.controllerStatus())}.`,
    ].join('\n'),
  ];
}
