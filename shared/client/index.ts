/**
 * The mesh client every process other than the controller and the agents uses (the CLI, the MCP
 * server, the server's Ollama-compatible API): requests to the controller (mesh-client.ts),
 * submitting and following a task with one rule for "done" (run-task.ts), the task option
 * defaults (task-options.ts) and the bounded event buffer (event-queue.ts).
 */
export { DEFAULT_BUFFER, EventQueue } from './event-queue.js';
export { type LinkState, MeshClient, type MeshClientOptions, newTaskId, type RequestBody, type TaskWatcher } from './mesh-client.js';
export {
  type EndingEvent,
  type FollowEnd,
  type FollowOptions,
  followTask,
  outcomeError,
  type RunRequest,
  runTask,
  type TaskOutcome,
  type TaskRun,
  type TaskUpdate,
} from './run-task.js';
export { busyOnly, CONNECTION_GRACE_MS, type QueueMode, type SubmitOptions, taskOptionsFor } from './task-options.js';
