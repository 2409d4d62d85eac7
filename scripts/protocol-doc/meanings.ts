/**
 * What the words of the protocol mean: the result of each request op, each task state, restart
 * policy and error code. Each is a Record over its type, so a new op, state, policy or code is a
 * compile error until it is described here.
 */
import { type AttemptEnd, wantsRetry } from '../../controller/task-record.js';
import type { ErrorCode } from '../../shared/errors.js';
import { type Request, type RestartPolicy, RestartPolicySchema, type TaskStatus } from '../../shared/schemas/index.js';
import { code, table } from './format.js';

/** What each op's successful reply carries in `result`. */
export const resultOf: Record<Request['op'], string> = {
  submit:
    '[TaskState](#taskstate) of the new task: `assigned` when a node takes it now, else `queued` with a `reason` saying what it waits for (with `options.queue: false` the reply is a `NO_FIT` error instead and the task is not kept). When the `taskId` already exists, its current state (a retried submit is idempotent)',
  cancel:
    '[TaskState](#taskstate) as it is once the cancel is handled: already `cancelled` when the task was queued, is `unknown` or its node is offline, otherwise the terminal state follows on the state topic',
  'task.get': '[TaskState](#taskstate)',
  'task.list': '[TaskListResult](#tasklistresult), newest first',
  'task.logs':
    '[TaskLogsResult](#tasklogsresult): a page of the events the controller kept for the task, every attempt, oldest first (after `after` when given)',
  'node.list': '[NodeListResult](#nodelistresult), sorted by node id',
  'node.drain':
    '[NodeListResult](#nodelistresult) with that one node, as it is after the change (`NOT_FOUND` for a node the controller has never heard from)',
  'node.forget':
    '[NodeListResult](#nodelistresult) with the node as it was (`NOT_FOUND` for an unknown node, `INVALID_REQUEST` for one that is online or draining, or still has unfinished tasks); its retained status is cleared',
  'node.wake':
    '`{"node", "mac", "address", "port", "bytes", "broadcast"}`: the Wake-on-LAN magic packet the server sent (6 × 0xFF, then the MAC 16 times: 102 bytes, UDP), to `address`/`port` when given, else the server\'s `wakeAddress`/`wakePort`, else the node\'s announced broadcast address (only when it is on one of the server\'s networks) on port 9. `NOT_FOUND` for an unknown node; `INVALID_REQUEST` for one that is online or draining, has no MAC known, or whose broadcast address is not on the server\'s networks; `WAKE_FAILED` when the datagram cannot be sent',
  'token.create':
    '`{"username", "password"}`: MQTT credentials for any client (`ROLE:NAME` and a random secret, shown once; the server keeps only its scrypt hash). `INVALID_REQUEST` when the server uses an external broker',
  'token.list': '`{"tokens": [{"username", "role", "name", "createdAt", "revokedAt"}]}` (never a secret)',
  'token.revoke':
    '`{"tokens": [the revoked token]}`; the username is refused from its next connection on (`NOT_FOUND` when it has no live token)',
};

/** Every task state; the Record makes a new state a compile error until it is described. */
export const stateMeaning: Record<TaskStatus, string> = {
  queued:
    'waiting for a node: a new task that fits nowhere yet, or a retry waiting out its backoff. `reason` says what it waits for; `node` is null',
  assigned: 'placed on `node`, the [Assignment](#assignment) is sent; the agent must accept it before its lease expires',
  running: 'the node reported `started`',
  unknown:
    'its node went offline; the task may still run there. Back to `running` (`assigned` if it had not started) when the node returns within its lost-after window, else the attempt is lost. `reason` names the node and the window',
  succeeded: 'final: the run exited with code 0',
  failed:
    "final: the run exited non-zero, was OOM-killed or could not be started and the restart policy asks for no other attempt, or the task's timeout ran out (`error` says which)",
  cancelled: 'final: cancelled by a `cancel` request',
  lost: 'final: its last attempt was lost (node lost, lease expired, agent shut down or stopped it, node busy or without the executor) and the restart policy asks for no other attempt',
};

/** Every restart policy; the Record makes a new policy a compile error until it is described. */
const policyMeaning: Record<RestartPolicy, string> = {
  never: 'one attempt only',
  'on-lost': "default: retry only when the node lost the attempt, never after the task's own failure",
  'on-failure': 'also retry after a non-zero exit code, an OOM kill or a start failure',
  always: 'also run again after success, until `maxAttempts`',
};

/** Every error code with where it shows up; the Record makes a new ErrorCode a compile error until it is described. */
export const errorCodes: Record<ErrorCode, string> = {
  INVALID_SIZE: 'local (CLI): a size argument such as `-m 24g` does not parse',
  INVALID_CONFIG: 'local: a config file, environment variable or flag is invalid',
  INVALID_ARGUMENT: 'local (CLI): an argument is not accepted (e.g. an unsupported `docker run` flag)',
  INVALID_REQUEST:
    'reply: the request did not validate (the message names the first bad field); a request without a usable `id` is dropped and logged',
  NO_FIT:
    'reply to `submit` with `options.queue: false`: no node can take the task now; `error.rejections` gives the reason per node. The task is not kept',
  NOT_FOUND:
    'reply to `task.get`, `task.logs`, `cancel`: the controller does not know the task; to `node.drain`: it has never heard from the node',
  ALREADY_FINISHED: 'reply to `cancel`: the task is already in a terminal state',
  NO_CONTROLLER: 'local (client): no reply within the timeout, so no controller is answering',
  BROKER_UNREACHABLE: 'local: the broker refused the connection or did not answer in time',
  EXECUTOR_UNAVAILABLE:
    "`failed` event: the node has no working executor of the task's kind (e.g. Docker engine not reachable); the attempt counts as lost",
  EXECUTOR_DISABLED:
    '`failed` event: the node does not run `exec` tasks (agent started without `--allow-exec`); the attempt counts as lost',
  IMAGE_PULL_FAILED: '`failed` event: the image is not on the node and could not be pulled; the attempt failed',
  START_FAILED: '`failed` event: the container or process could not be created or started; the attempt failed',
  COMMAND_NOT_FOUND:
    "`failed` event (with `exitCode` 127): the task's command does not exist (exec: not on the task's PATH; docker: not in the image). The task fails; no restart policy retries it. `cutter run` exits 127",
  COMMAND_NOT_INVOKABLE:
    "`failed` event (with `exitCode` 126): the task's command exists but cannot be executed (no execute permission, a directory). The task fails; no restart policy retries it. `cutter run` exits 126",
  LEASE_EXPIRED:
    'TaskState.error: the node did not accept the assignment before `leaseExpiresAt`; the attempt is lost (retried per the restart policy, else state `lost`)',
  NODE_LOST:
    'TaskState.error: the attempt was lost on its node: the node went offline and did not come back within its lost-after window (at once when that is 0), stopped listing the accepted attempt in its heartbeats, or stopped the run without being asked (state `lost` when not retried)',
  AGENT_SHUTDOWN: '`failed` event: the agent was shutting down; the attempt counts as lost',
  CANCELLED:
    '`failed` event: the run was cancelled before it started; TaskState.error: the task was cancelled while its node was offline (state `cancelled`)',
  EXIT_CODE: 'TaskState.error: the run exited with a non-zero code (state `failed` when not retried)',
  OOM_KILLED: 'TaskState.error: the run was killed for running out of memory (state `failed` when not retried)',
  NODE_BUSY: '`failed` event: the node already runs as many tasks as it offers; the attempt counts as lost',
  TIMEOUT:
    "TaskState.error: the task's `options.timeoutMs` ran out, while it waited in the queue or while it ran (state `failed`; a running task is cancelled on its node)",
  NODE_RESTARTED:
    '`failed` event: the assignment was placed on an earlier run of the agent (a persistent session redelivered it after the agent restarted); the attempt counts as lost and is placed again',
  RATE_LIMITED:
    'reply to `submit`: the identity is over its submissions per minute (server setting, default 120); the message says when to retry. The task is not kept',
  POLICY_DENIED:
    "`failed` event: the node's execution policy refuses the task (image allowlist, memory cap, exec command allowlist); the message names the rule. The task fails (not retried elsewhere)",
  MODEL_NOT_FOUND:
    '`failed` event of an ollama task: the node\'s Ollama has no such model (its HTTP 404); the server\'s Ollama API answers 404 `{"error"}` as Ollama does',
  OLLAMA_ERROR: "`failed` event of an ollama task: the node's Ollama answered with an error, kept in the message",
  STORAGE_UNAVAILABLE:
    "reply (submit, token.create, token.revoke, node.drain, node.forget): the server's data dir is full, read-only or failing; the message names the dir, the free space and the error. Reads, logins and running tasks carry on; new work is accepted again once the data dir takes writes",
  INTERNAL: 'reply: an unexpected controller error; locally, a reply that does not validate',
  WAKE_FAILED:
    'reply to `node.wake`: the magic packet could not be sent (no route, a broadcast the server may not send); the message has the reason from the operating system',
  EXECUTOR_LOST:
    "`failed` event: the node's Docker engine died or hung under the running task and did not answer again within the agent's grace (`--docker-engine-grace`, default 30 s), or came back without the container; the result is unknown and the attempt counts as lost",
  GPU_UNAVAILABLE:
    "`failed` event: the GPUs the assignment names are not on the node or are held by another task there (the controller's picture was stale); the attempt counts as lost and is placed again",
  PREEMPTED:
    "`failed` event: the node stopped lending (issue 17: its owner came back, it went on battery, it left its time window) and stopped the task after it stayed suspended past the node's preempt time, or refused a new one while not lending; the attempt counts as lost and is placed again",
  STAGING_FAILED:
    "`failed` event: the task's inputs (`cutter run --input`) could not be staged on its node (refused, never sent, disk full); the task was not started, `cutter run` exits 125",
  COLLECT_FAILED:
    "the task's outputs (`cutter run --output`) could not be collected from its node; `cutter run` says why and exits non-zero",
};

/** Which attempt ends each restart policy retries after, read from the controller's own rule. */
export function restartTable(): string {
  const ends: AttemptEnd[] = ['lost', 'failed', 'succeeded'];
  return table(
    ['restart', ...ends.map((e) => `after ${e === 'lost' ? 'a lost' : e === 'failed' ? 'a failed' : 'a succeeded'} attempt`), 'meaning'],
    RestartPolicySchema.options.map((p) => [code(p), ...ends.map((e) => (wantsRetry(p, e) ? 'retry' : 'end')), policyMeaning[p]]),
  );
}
