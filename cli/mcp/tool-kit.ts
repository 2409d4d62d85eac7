/**
 * What the MCP tools share (cli/mcp/server.ts, cli/mcp/ops-tools.ts): the result shape, the audit
 * wrapper that turns every throw into an `isError` result the assistant reads, and the task helpers.
 */
import type { AuditLog } from '../../shared/audit.js';
import { type MeshClient, outcomeError, runTask, type TaskOutcome } from '../../shared/client/index.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { formatRejection } from '../../shared/reasons.js';
import type { Rejection, Requirements, TaskSpec, TaskState } from '../../shared/schemas/index.js';

/** Most output returned in one tool result, characters (the rest is cut, with a note). */
export const MAX_OUTPUT = 64 * 1024;

/** One tool call's answer (MCP `CallToolResult`: text content, optional structured content). */
export type ToolResult = { content: { type: 'text'; text: string }[]; isError?: boolean; structuredContent?: Record<string, unknown> };

/** A text result, with its structured twin when given. */
export const text = (t: string, structured?: Record<string, unknown>): ToolResult => ({
  content: [{ type: 'text', text: t }],
  ...(structured ? { structuredContent: structured } : {}),
});

/** `s` cut to MAX_OUTPUT characters, with a note naming how much more there was. */
export const clipOut = (s: string): string =>
  s.length > MAX_OUTPUT ? `${s.slice(0, MAX_OUTPUT)}\n… (${s.length - MAX_OUTPUT} more characters: use task_logs)` : s;

/** Who calls, where calls are recorded, and what the MCP server allows (`cutter mcp` flags). */
export interface McpOptions {
  client: MeshClient;
  /** Who the calls run as (the token's username), for the audit log. */
  who: string;
  audit: AuditLog;
  /** Allow `run_task` (and pipeline steps) with kind exec (shell jobs). */
  allowExec: boolean;
  /**
   * `--files-dir`: the one local directory copy_file and run_pipeline may read or write by path
   * on the machine running `cutter mcp`; absent = inline content only.
   */
  filesDir?: string;
}

/** Wraps a tool body: audits the call (action `mcp.call`) and returns a throw as an `isError` result. */
export type Audited = <A>(tool: string, summary: (a: A) => string, fn: (a: A) => Promise<ToolResult>) => (args: A) => Promise<ToolResult>;

/** The Audited wrapper for one caller (shared/audit.ts records: who, action, outcome, detail ≤ 500 characters). */
export function auditedFor(opts: Pick<McpOptions, 'audit' | 'who'>): Audited {
  return (tool, summary, fn) => async (args) => {
    let result: ToolResult;
    try {
      result = await fn(args);
    } catch (err) {
      const code = err instanceof CutterError ? err.code : 'INTERNAL';
      const rejections =
        err instanceof CutterError && Array.isArray(err.details)
          ? `\n${(err.details as Rejection[]).map((r) => `  ${r.node}: ${formatRejection(r)}`).join('\n')}`
          : '';
      result = { content: [{ type: 'text', text: `${code}: ${errorMessage(err)}${rejections}` }], isError: true };
    }
    opts.audit.record({
      who: opts.who,
      action: 'mcp.call',
      outcome: result.isError ? 'failed' : 'ok',
      detail: `${tool} ${summary(args)}`.slice(0, 500),
    });
    return result;
  };
}

/**
 * Submits a task and waits for its end, at most `ms` (shared/client/run-task.ts; the task options
 * are the defaults of its kind, shared/client/task-options.ts, plus `queue` when given).
 * @returns the outcome: `end` is `terminal`, or `timeout` with the last state seen.
 * @throws CutterError from the submit (NO_FIT …), or NO_CONTROLLER when the connection was gone.
 */
export async function submitAndWait(
  client: MeshClient,
  spec: TaskSpec,
  requirements: Partial<Requirements>,
  ms: number,
): Promise<TaskOutcome> {
  const run = await runTask(client, { spec, requirements }, { followTimeoutMs: ms, buffer: false });
  const o = await run.result;
  if (o.end === 'disconnected' || o.end === 'stopped') throw outcomeError(o);
  return o;
}

/** One line for a task state: `task ID STATE on node N (exit code C): CODE: message`. */
export function describeTask(s: TaskState): string {
  const exit = s.exitCode === null ? '' : ` (exit code ${s.exitCode})`;
  const err = s.error && s.error.code !== 'EXIT_CODE' ? `: ${s.error.code}: ${s.error.message}` : '';
  return `task ${s.taskId} ${s.state}${s.node ? ` on node ${s.node}` : ''}${exit}${err}`;
}
