/**
 * The MCP tools for operations (issue 19), beside cli/mcp/server.ts's task tools:
 *
 * - copy_file: a file to or from a node (`cutter cp`, cli/files/: the node's own `--files-allow`
 *   and volumes decide where; inline content of at most MAX_INLINE bytes, or a path inside the
 *   `--files-dir` of `cutter mcp`, never elsewhere on its machine);
 * - pull_model: `ollama pull` on a node (an ollama task with op `pull`);
 * - run_pipeline: a pipeline (shared/schemas/pipeline.ts) given inline as YAML or JSON, or as a
 *   file inside `--files-dir` (cli/pipeline-runner.ts);
 * - drain_node: drain or undrain a node (request `node.drain`).
 *
 * Each runs under the mcp token's own broker ACL (broker/acl.ts: MCP_OPS, file transfer under its
 * own client id, no image push), so the broker, not this process, is the boundary.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { NodeListResultSchema, type Pipeline, type TaskSpec } from '../../shared/schemas/index.js';
import { parsePipeline as parsePipelineDocument } from '../pipeline-file.js';
import { formatBytes } from '../../shared/units.js';
import { getFile } from '../../shared/transfer/get.js';
import { FileLink } from '../../shared/transfer/link.js';
import { putFile } from '../files/put.js';
import type { TransferResult } from '../../shared/transfer/transfer.js';
import { runPipeline } from '../pipeline-runner.js';
import { type Audited, clipOut, describeTask, type McpOptions, submitAndWait, text } from './tool-kit.js';

/** Most bytes copy_file moves as inline content (either way): 1 MiB. */
export const MAX_INLINE = 1024 * 1024;
/** Largest inline pipeline, characters. */
const MAX_PIPELINE_TEXT = 256 * 1024;

/**
 * `rel` inside `dir`, with symbolic links resolved (the file for reads, its directory for writes).
 * @throws CutterError POLICY_DENIED without `--files-dir` or for a path leaving it, NOT_FOUND.
 */
async function confined(dir: string | undefined, rel: string, forWrite: boolean): Promise<string> {
  if (!dir)
    throw new CutterError(
      'POLICY_DENIED',
      'local paths are off for this MCP server: pass content inline, or start cutter mcp with --files-dir DIR',
    );
  const root = await realpath(dir);
  const target = resolve(root, rel);
  let real: string;
  try {
    real = forWrite ? join(await realpath(dirname(target)), basename(target)) : await realpath(target);
  } catch {
    throw new CutterError('NOT_FOUND', `${rel} does not exist in ${root}${forWrite ? ' (its directory must exist)' : ''}`);
  }
  if (real !== root && !real.startsWith(root + sep)) throw new CutterError('POLICY_DENIED', `${rel} is outside --files-dir ${root}`);
  if (forWrite && (await lstat(real).catch(() => null))?.isSymbolicLink())
    throw new CutterError('POLICY_DENIED', `${rel} is a symbolic link; not written`);
  return real;
}

/**
 * A pipeline from inline YAML/JSON text, checked as `cutter pipeline run` checks a file (strict keys
 * with the nearest valid one, `command` as the command field: cli/pipeline-file.ts).
 * @throws CutterError INVALID_ARGUMENT naming the first bad field.
 */
function parsePipeline(source: string, textIn: string): Pipeline {
  let raw: unknown;
  try {
    raw = parseYaml(textIn); // YAML is a superset of JSON
  } catch (err) {
    throw new CutterError('INVALID_ARGUMENT', `${source} is not valid YAML or JSON: ${errorMessage(err)}`);
  }
  return parsePipelineDocument(raw, source).pipeline;
}

/** Registers copy_file, pull_model, run_pipeline and drain_node on `server`. */
export function registerOpsTools(server: McpServer, opts: McpOptions, audited: Audited): void {
  const { client } = opts;

  server.registerTool(
    'copy_file',
    {
      title: 'Copy a file to or from a node',
      description: `Copies one file to a node (direction to_node: inline content, or localPath) or from it (from_node: returns the content, or writes localPath). Paths on the node are absolute, inside the node's --files-allow directories, or relative to a volume. Inline content is at most ${formatBytes(MAX_INLINE)}; localPath works only inside the --files-dir of this MCP server.`,
      inputSchema: {
        direction: z.enum(['to_node', 'from_node']),
        node: z.string().min(1).max(64).describe('the node'),
        path: z.string().min(1).max(4096).describe('path on the node (relative to volume when given)'),
        volume: z.string().min(1).max(64).optional().describe("one of the node's volumes (cutter volume ls)"),
        content: z
          .string()
          .max(2 * MAX_INLINE)
          .optional()
          .describe('to_node: the file content'),
        encoding: z.enum(['utf8', 'base64']).default('utf8').describe('how content is (or is to be) written'),
        localPath: z.string().min(1).max(4096).optional().describe('a path inside --files-dir instead of inline content'),
      },
    },
    audited(
      'copy_file',
      (a) => `${a.direction} ${a.node}:${a.volume ? `${a.volume}/` : ''}${a.path}${a.localPath ? ` local ${a.localPath}` : ''}`,
      async (a) => {
        const link = new FileLink(client.mqtt, client.topics, a.node, client.clientId);
        const tmp = await mkdtemp(join(tmpdir(), 'cutter-mcp-'));
        const transfer = { ...(a.volume ? { volume: a.volume } : {}) };
        await link.open();
        try {
          let r: TransferResult;
          if (a.direction === 'to_node') {
            let local: string;
            if (a.localPath !== undefined) local = await confined(opts.filesDir, a.localPath, false);
            else {
              if (a.content === undefined) throw new CutterError('INVALID_ARGUMENT', 'to_node needs content or localPath');
              const bytes = Buffer.from(a.content, a.encoding);
              if (bytes.length > MAX_INLINE)
                throw new CutterError(
                  'INVALID_SIZE',
                  `content is ${formatBytes(bytes.length)}, over ${formatBytes(MAX_INLINE)}: use localPath`,
                );
              local = join(tmp, 'content');
              await writeFile(local, bytes);
            }
            r = await putFile(link, local, { kind: 'put', remotePath: a.path }, transfer);
            return text(`copied ${formatBytes(r.bytes)} to ${a.node}:${r.remotePath} (SHA-256 ${r.sha256})`, {
              node: a.node,
              path: r.remotePath,
              bytes: r.bytes,
              sha256: r.sha256,
            });
          }
          const local =
            a.localPath !== undefined ? await confined(opts.filesDir, a.localPath, true) : join(tmp, randomBytes(4).toString('hex'));
          r = await getFile(link, a.path, local, { ...transfer, ...(a.localPath === undefined ? { maxBytes: MAX_INLINE } : {}) });
          const summary = { node: a.node, path: r.remotePath, bytes: r.bytes, sha256: r.sha256 };
          if (a.localPath !== undefined)
            return text(`copied ${formatBytes(r.bytes)} from ${a.node}:${r.remotePath} to ${local}`, { ...summary, localPath: local });
          const content = (await readFile(local)).toString(a.encoding);
          return text(content, { ...summary, encoding: a.encoding, content });
        } finally {
          await link.close();
          await rm(tmp, { recursive: true, force: true });
        }
      },
    ),
  );

  server.registerTool(
    'pull_model',
    {
      title: 'Pull an Ollama model',
      description: 'Pulls an Ollama model onto a node of the mesh (the given one, or where the scheduler places it) and waits for the end.',
      inputSchema: {
        model: z.string().min(1).max(256).describe('e.g. llama3.2:1b'),
        node: z.string().max(64).optional().describe('pull onto this node'),
        waitSeconds: z.number().int().min(1).max(7200).default(1800),
      },
    },
    audited(
      'pull_model',
      (a) => `${a.model}${a.node ? ` on ${a.node}` : ''}`,
      async (a) => {
        const spec: TaskSpec = { kind: 'ollama', op: 'pull', model: a.model, request: {}, pull: true };
        const { taskId, end, state: s } = await submitAndWait(client, spec, a.node ? { node: a.node } : {}, a.waitSeconds * 1000);
        if (end !== 'terminal' || !s) return text(`task ${taskId} is still ${s?.state ?? 'queued'}; follow it with task_logs`, { taskId });
        if (s.state !== 'succeeded') return { ...text(describeTask(s)), isError: true };
        return text(`${a.model} pulled on ${s.node}`, { taskId, model: a.model, node: s.node });
      },
    ),
  );

  server.registerTool(
    'run_pipeline',
    {
      title: 'Run a pipeline',
      description:
        'Runs a cutter pipeline (steps that are tasks, each fed the output of the steps it needs; the format of `cutter pipeline FILE`), given inline as YAML or JSON, or as a file inside --files-dir, and returns every step.',
      inputSchema: {
        spec: z.string().max(MAX_PIPELINE_TEXT).optional().describe('the pipeline as YAML or JSON text'),
        file: z.string().max(4096).optional().describe('a pipeline file inside --files-dir'),
      },
    },
    audited(
      'run_pipeline',
      (a) => (a.file ? `file ${a.file}` : `inline (${a.spec?.length ?? 0} characters)`),
      async (a) => {
        if ((a.spec === undefined) === (a.file === undefined))
          throw new CutterError('INVALID_ARGUMENT', 'give exactly one of spec and file');
        const pipeline =
          a.file !== undefined
            ? parsePipeline(`pipeline ${a.file}`, await readFile(await confined(opts.filesDir, a.file, false), 'utf8'))
            : parsePipeline('the pipeline', a.spec!);
        const exec = pipeline.steps.find((s) => s.task.kind === 'exec');
        if (exec && !opts.allowExec)
          throw new CutterError(
            'POLICY_DENIED',
            `step ${exec.id} is an exec task, off for this MCP server (start cutter mcp with --allow-exec)`,
          );
        const { runId, steps } = await runPipeline(client, pipeline);
        const ok = steps.every((s) => s.status === 'succeeded');
        const lines = steps.map(
          (s) =>
            `${s.id}: ${s.status}${s.node ? ` on ${s.node}` : ''}${s.exitCode !== null ? ` (exit code ${s.exitCode})` : ''}${s.reason ? `: ${s.reason}` : ''}`,
        );
        const last = [...steps].reverse().find((s) => s.status === 'succeeded' && s.output);
        const out = last?.output ? `\n--- output of ${last.id} ---\n${clipOut(last.output)}` : '';
        return {
          ...text(`pipeline ${pipeline.name ?? runId} ${ok ? 'succeeded' : 'failed'}\n${lines.join('\n')}${out}`, {
            runId,
            ok,
            steps: steps.map((s) => ({ ...s, output: s.output === null ? null : clipOut(s.output) })),
          }),
          ...(ok ? {} : { isError: true }),
        };
      },
    ),
  );

  server.registerTool(
    'drain_node',
    {
      title: 'Drain or undrain a node',
      description: 'drain true: no new tasks are placed on the node (running ones finish); drain false: it takes tasks again.',
      inputSchema: { node: z.string().min(1).max(64), drain: z.boolean().default(true) },
    },
    audited(
      'drain_node',
      (a) => `${a.node} ${a.drain ? 'drain' : 'undrain'}`,
      async (a) => {
        const { nodes } = await client.request({ op: 'node.drain', node: a.node, drain: a.drain }, NodeListResultSchema);
        const n = nodes.find((x) => x.node === a.node);
        const running = n?.status.running.length ?? 0;
        return text(`${a.node} ${a.drain ? 'drained: no new tasks' : 'takes tasks again'}; ${running} task(s) running`, {
          node: a.node,
          drained: n?.drained ?? a.drain,
          running,
        });
      },
    ),
  );
}
