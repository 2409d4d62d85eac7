/**
 * The MCP server behind `cutter mcp`: Model Context Protocol tools over the mesh, for desktop AI
 * assistants, built on the official TypeScript SDK (`McpServer.registerTool`, zod input schemas).
 *
 * Tools: list_nodes, run_task, task_logs, cancel_task, ask_model, and (issue 19, cli/mcp/ops-tools.ts)
 * copy_file, pull_model, run_pipeline, drain_node. Each call is appended to an audit
 * log (shared/audit.ts, action `mcp.call`: who = the token's username, tool, arguments summary,
 * outcome) on the machine running `cutter mcp`; the controller audits the submits and cancels
 * themselves under the same identity. Tool errors are returned as `isError` results with the
 * message (the assistant sees why), never thrown through the transport.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { CutterError } from '../../shared/errors.js';
import { newTaskId, taskOptionsFor } from '../../shared/client/index.js';
import { type LogEvent, logsText } from '../../shared/log-data.js';
import { NodeListResultSchema, SubmitResultSchema, TaskStateSchema, type TaskSpec } from '../../shared/schemas/index.js';
import { formatBytes, parseBytes } from '../../shared/units.js';
import { VERSION } from '../../shared/version.js';
import { outputOf } from '../pipeline-runner.js';
import { cutNotice, keptLogs } from '../kept-output.js';
import { registerOpsTools } from './ops-tools.js';
import { auditedFor, clipOut, describeTask as describe, type McpOptions, submitAndWait, text } from './tool-kit.js';

export type { McpOptions } from './tool-kit.js';

/** Builds the server with its tools (connect it to a transport to serve). */
export function createMcpServer(opts: McpOptions): McpServer {
  const { client } = opts;
  const server = new McpServer({ name: 'cutter', version: VERSION });
  const audited = auditedFor(opts);

  server.registerTool(
    'list_nodes',
    {
      title: 'List nodes',
      description:
        'The nodes of the cutter mesh: state, free memory, CPU load, running tasks, executors (docker, exec, ollama) and Ollama models.',
      inputSchema: {},
    },
    audited(
      'list_nodes',
      () => '',
      async () => {
        const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
        const lines = nodes.map((n) => {
          const s = n.status;
          const mem = s.capacity
            ? `${formatBytes(s.capacity.memory.available)} free of ${formatBytes(s.capacity.memory.total)}`
            : 'capacity unknown';
          const ex = s.offer?.executors.join(', ') || 'none';
          return `${n.node}: ${n.state}${n.drained ? ' (drained)' : ''}, ${mem}, ${s.running.length} task(s) running, executors: ${ex}`;
        });
        return text(lines.length ? lines.join('\n') : 'no nodes have joined the mesh', {
          nodes: nodes.map((n) => ({
            node: n.node,
            state: n.state,
            executors: n.status.offer?.executors ?? [],
            running: n.status.running.length,
            memoryAvailable: n.status.capacity?.memory.available ?? null,
          })),
        });
      },
    ),
  );

  server.registerTool(
    'run_task',
    {
      title: 'Run a task',
      description:
        'Runs a container (kind docker: image and command) or a shell job (kind exec: command, only where allowed) on the mesh, on the given node or wherever it fits, waits for it (up to waitSeconds) and returns its state and output.',
      inputSchema: {
        kind: z.enum(['docker', 'exec']).default('docker').describe('docker (a container) or exec (a command on the node)'),
        image: z.string().min(1).max(512).optional().describe('container image, for kind docker'),
        command: z.array(z.string().max(32_768)).max(1000).default([]).describe('command and arguments (docker: overrides the image CMD)'),
        env: z.record(z.string(), z.string()).optional().describe('environment variables'),
        node: z.string().max(64).optional().describe('run on this node (default: the scheduler chooses)'),
        memory: z.string().max(32).optional().describe('memory limit and reservation, e.g. 512m, 4g'),
        waitSeconds: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(300)
          .describe('how long to wait for the end (0: return the task id at once)'),
      },
    },
    audited(
      'run_task',
      (a) => JSON.stringify({ kind: a.kind, image: a.image, command: a.command, node: a.node }),
      async (a) => {
        let spec: TaskSpec;
        const env = a.env ?? {};
        const memory = a.memory ? parseBytes(a.memory) : undefined;
        if (a.kind === 'exec') {
          if (!opts.allowExec)
            throw new CutterError('POLICY_DENIED', 'exec tasks are off for this MCP server (start cutter mcp with --allow-exec)');
          if (a.command.length === 0) throw new CutterError('INVALID_ARGUMENT', 'an exec task needs a command');
          spec = { kind: 'exec', argv: a.command, env };
        } else {
          if (!a.image) throw new CutterError('INVALID_ARGUMENT', 'a docker task needs an image');
          spec = {
            kind: 'docker',
            image: a.image,
            cmd: a.command,
            env,
            labels: {},
            ...(memory !== undefined ? { memoryLimit: memory } : {}),
          };
        }
        const requirements = { ...(a.node ? { node: a.node } : {}), memory: memory ?? 0, cpus: 0 };
        if (a.waitSeconds === 0) {
          const { options } = taskOptionsFor(spec);
          const s = await client.request({ op: 'submit', taskId: newTaskId(), spec, requirements, options }, SubmitResultSchema);
          return text(`submitted task ${s.taskId}; follow it with task_logs`, { taskId: s.taskId });
        }
        const { taskId, end, state: s } = await submitAndWait(client, spec, requirements, a.waitSeconds * 1000);
        if (end !== 'terminal' || !s)
          return text(`task ${taskId} is still ${s?.state ?? 'queued'} after ${a.waitSeconds} s; follow it with task_logs`, {
            taskId,
            state: s?.state ?? 'queued',
          });
        const output = outputOf(await client.keptEvents(taskId), s.attempt);
        return {
          ...text(`${describe(s)}\n--- output ---\n${clipOut(output)}`, {
            taskId,
            state: s.state,
            node: s.node,
            exitCode: s.exitCode,
            output: clipOut(output),
          }),
          ...(s.state === 'succeeded' ? {} : { isError: true }),
        };
      },
    ),
  );

  server.registerTool(
    'task_logs',
    {
      title: 'Task output',
      description: "A task's state and the output the server kept (stdout and stderr of its latest attempt).",
      inputSchema: { taskId: z.string().min(1).max(64).describe('the task id') },
    },
    audited(
      'task_logs',
      (a) => a.taskId,
      async (a) => {
        const s = await client.request({ op: 'task.get', taskId: a.taskId }, TaskStateSchema);
        const kept = await keptLogs(client, a.taskId);
        const events = kept.events;
        const logs = events.filter((e): e is LogEvent => e.attempt === s.attempt && e.type === 'log');
        // Past maxLogBytes the server keeps the head and the tail: say so, or the two read as one.
        const cut = cutNotice(a.taskId, kept.truncated, kept.output).join('\n');
        const out = logsText(logs, (stream, t) => (stream === 'stderr' ? `[stderr] ${t}` : t));
        const chunks = outputOf(
          events.filter((e) => e.type === 'chunks'),
          s.attempt,
        );
        return text(`${describe(s)}\n--- output ---\n${clipOut(out + chunks)}${cut ? `\n--- not kept ---\n${cut}` : ''}`, {
          taskId: s.taskId,
          state: s.state,
          exitCode: s.exitCode,
          output: clipOut(out + chunks),
          ...(cut ? { notKept: cut } : {}),
        });
      },
    ),
  );

  server.registerTool(
    'cancel_task',
    {
      title: 'Cancel a task',
      description: 'Stops a queued or running task.',
      inputSchema: { taskId: z.string().min(1).max(64).describe('the task id') },
    },
    audited(
      'cancel_task',
      (a) => a.taskId,
      async (a) => {
        const s = await client.request({ op: 'cancel', taskId: a.taskId }, SubmitResultSchema);
        return text(`cancel sent: ${describe(s)}`, { taskId: s.taskId, state: s.state });
      },
    ),
  );

  server.registerTool(
    'ask_model',
    {
      title: 'Ask a model',
      description: 'Sends a prompt to an Ollama model on a node of the mesh that has it (an ollama generate task) and returns the answer.',
      inputSchema: {
        model: z.string().min(1).max(256).describe('Ollama model name, e.g. llama3.2:1b'),
        prompt: z.string().min(1).max(200_000).describe('the prompt'),
        system: z.string().max(50_000).optional().describe('system prompt'),
        node: z.string().max(64).optional().describe('ask on this node (default: the scheduler chooses one that has the model)'),
        waitSeconds: z.number().int().min(1).max(3600).default(300),
      },
    },
    audited(
      'ask_model',
      (a) => `${a.model} (${a.prompt.length} characters)${a.node ? ` on ${a.node}` : ''}`,
      async (a) => {
        const spec: TaskSpec = {
          kind: 'ollama',
          op: 'generate',
          model: a.model,
          request: { prompt: a.prompt, ...(a.system ? { system: a.system } : {}) },
          pull: false,
        };
        // The ollama defaults: when no node serves the model, the assistant hears why at once (NO_FIT).
        const { taskId, end, state: s } = await submitAndWait(client, spec, a.node ? { node: a.node } : {}, a.waitSeconds * 1000);
        if (end !== 'terminal' || !s) return text(`task ${taskId} is still ${s?.state ?? 'queued'}; follow it with task_logs`, { taskId });
        if (s.state !== 'succeeded') return { ...text(describe(s)), isError: true };
        const answer = outputOf(await client.keptEvents(taskId), s.attempt);
        return text(clipOut(answer), { taskId, node: s.node, model: a.model, answer: clipOut(answer) });
      },
    ),
  );
  registerOpsTools(server, opts, audited);
  return server;
}
