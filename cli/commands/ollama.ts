/**
 * `cutter ollama run|pull|list|ps`: Ollama's own commands, across the mesh. `run` streams the
 * answer as it is generated (interactive, with history, when no prompt is given and stdin is a
 * terminal, like `ollama run`), pulling the model onto the chosen node first when it lacks it;
 * `pull` shows a progress bar; `list` and `ps` show every node's models with a NODE column.
 */
import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { CutterError } from '../../shared/errors.js';
import { type MeshClient, outcomeError, runTask } from '../../shared/client/index.js';
import { NodeListResultSchema, type OllamaSpec, type TaskEvent, type TaskState } from '../../shared/schemas/index.js';
import { formatBytes } from '../../shared/units.js';
import { printJson, table } from '../output.js';
import { ProgressBar } from '../progress.js';
import { isTerminal } from '../tty.js';
import { withClient, withClientOptions, type GlobalFlags } from './common.js';
import { pullProgress } from './follow.js';
import { registerOllamaModels } from './ollama-models.js';

type Json = Record<string, unknown>;

interface OllamaFlags extends GlobalFlags {
  node?: string;
  pull?: boolean;
}

/**
 * Runs one ollama task (shared/client/run-task.ts, with the ollama defaults of task-options.ts) and
 * calls `onChunk` for each response object as it arrives; Ctrl-C cancels it.
 * @returns the final task state.
 * @throws CutterError with the node's code (MODEL_NOT_FOUND, OLLAMA_ERROR …), NO_FIT, CANCELLED,
 *   NODE_LOST, or NO_CONTROLLER when the connection was gone.
 */
async function runOllama(
  client: MeshClient,
  spec: OllamaSpec,
  node: string | undefined,
  onChunk: (c: Json) => void,
  onEvent?: (e: TaskEvent) => void,
): Promise<TaskState> {
  const run = await runTask(client, { spec, requirements: node ? { node } : {} });
  const onSigint = () => void run.cancel(0).catch(() => undefined);
  process.once('SIGINT', onSigint);
  try {
    for await (const u of run.events) {
      if (u.type !== 'event') continue;
      onEvent?.(u.event);
      if (u.event.type === 'chunks') for (const c of u.event.chunks) onChunk(c);
    }
    const outcome = await run.result;
    const err = outcomeError(outcome);
    if (err) throw err;
    return outcome.state!;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Streams one answer to stdout (text, or Ollama's NDJSON objects with --json). @returns the whole text. */
async function answer(client: MeshClient, spec: OllamaSpec, flags: OllamaFlags): Promise<string> {
  let text = '';
  const pull = pullProgress(`pulling ${spec.model}`);
  await runOllama(
    client,
    spec,
    flags.node,
    (c) => {
      if (flags.json) return void process.stdout.write(`${JSON.stringify(c)}\n`);
      pull.end();
      const piece = spec.op === 'chat' ? String((c.message as Json | undefined)?.content ?? '') : String(c.response ?? '');
      text += piece;
      process.stdout.write(piece);
    },
    (e) => {
      if (flags.json) return;
      if (e.type === 'progress' && e.phase === 'pull') pull.show(e.message, e.current ?? 0, e.total ?? 0);
    },
  );
  pull.end();
  if (!flags.json && !text.endsWith('\n')) process.stdout.write('\n');
  return text;
}

/** Reads all of stdin (a prompt piped in). */
async function readStdin(): Promise<string> {
  let s = '';
  for await (const c of process.stdin) s += c;
  return s;
}

/** `ollama run` without a prompt on a terminal: a chat that keeps its history until /bye or Ctrl-D. */
async function interactive(client: MeshClient, model: string, flags: OllamaFlags): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  const messages: { role: string; content: string }[] = [];
  try {
    for (;;) {
      let line: string;
      try {
        line = await rl.question('>>> ');
      } catch {
        return; // Ctrl-D
      }
      if (line.trim() === '/bye') return;
      if (!line.trim()) continue;
      messages.push({ role: 'user', content: line });
      const reply = await answer(client, { kind: 'ollama', op: 'chat', model, request: { messages }, pull: flags.pull !== false }, flags);
      messages.push({ role: 'assistant', content: reply });
      process.stdout.write('\n');
    }
  } finally {
    rl.close();
  }
}

export function registerOllama(program: Command): void {
  const ollama = program.command('ollama').description('Ollama models across the mesh');
  registerOllamaModels(ollama);

  withClientOptions(
    ollama
      .command('run')
      .argument('<model>', 'model, e.g. llama3:70b')
      .argument('[prompt...]', 'prompt (default: stdin when piped, else an interactive chat)')
      .option('--node <node>', 'run on this node (default: where the model is loaded, then where it is pulled)')
      .option('--no-pull', 'fail instead of pulling a model the node does not have')
      .description('ask a model: the answer streams as it is generated'),
  ).action((model: string, promptWords: string[], flags: OllamaFlags) =>
    withClient(flags, async (client) => {
      let prompt = promptWords.join(' ');
      if (!prompt && process.stdin.isTTY && !flags.json) {
        await interactive(client, model, flags);
        return 0;
      }
      if (!prompt) prompt = (await readStdin()).trim();
      if (!prompt) throw new CutterError('INVALID_ARGUMENT', 'no prompt: give one after the model, or pipe it on stdin');
      await answer(client, { kind: 'ollama', op: 'generate', model, request: { prompt }, pull: flags.pull !== false }, flags);
      return 0;
    }),
  );

  withClientOptions(
    ollama
      .command('pull')
      .argument('<model>', 'model to pull, e.g. llama3:70b')
      .option('--node <node>', 'the node to pull onto (default: the node the scheduler picks)')
      .description('pull a model onto a node, with progress'),
  ).action((model: string, flags: OllamaFlags) =>
    withClient(flags, async (client) => {
      const tty = isTerminal(process.stderr) && !flags.json;
      const bar = new ProgressBar(model, 0, tty);
      let last = '';
      const s = await runOllama(client, { kind: 'ollama', op: 'pull', model, request: {}, pull: true }, flags.node, (c) => {
        if (flags.json) return void process.stdout.write(`${JSON.stringify(c)}\n`);
        if (typeof c.error === 'string') return;
        const status = String(c.status ?? '');
        if (typeof c.total === 'number' && c.total > 0) {
          if (tty) bar.update(typeof c.completed === 'number' ? c.completed : 0, c.total, status);
          else if (status !== last) process.stderr.write(`${status}\n`);
        } else {
          bar.end();
          process.stderr.write(`${status}\n`);
        }
        last = status;
      });
      bar.end();
      if (!flags.json) process.stdout.write(`${model} pulled on ${s.node}\n`);
      return 0;
    }),
  );

  withClientOptions(ollama.command('list').alias('ls').description('models pulled on every node')).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
      const rows = nodes.flatMap((n) => (n.status.capacity?.ollama?.models ?? []).map((m) => ({ node: n.node, state: n.state, ...m })));
      if (flags.json) printJson(rows);
      else if (rows.length === 0) process.stdout.write('no node reports Ollama models (agents find Ollama at --ollama-url)\n');
      else
        process.stdout.write(
          `${table(
            ['NAME', 'NODE', 'SIZE', 'PARAMS', 'QUANT', 'NODE STATE'],
            rows.map((r) => [r.name, r.node, formatBytes(r.size), r.parameterSize ?? '-', r.quantization ?? '-', r.state]),
          )}\n`,
        );
      return 0;
    }),
  );

  withClientOptions(ollama.command('ps').description('models loaded in memory on every node')).action((flags: GlobalFlags) =>
    withClient(flags, async (client) => {
      const { nodes } = await client.request({ op: 'node.list' }, NodeListResultSchema);
      const rows = nodes.flatMap((n) => (n.status.capacity?.ollama?.loaded ?? []).map((m) => ({ node: n.node, ...m })));
      const processor = (r: { size: number; sizeVram: number }) => {
        if (r.size === 0 || r.sizeVram === 0) return '100% CPU';
        if (r.sizeVram >= r.size) return '100% GPU';
        const gpu = Math.round((r.sizeVram / r.size) * 100);
        return `${100 - gpu}%/${gpu}% CPU/GPU`;
      };
      if (flags.json) printJson(rows);
      else if (rows.length === 0) process.stdout.write('no models loaded on any node\n');
      else
        process.stdout.write(
          `${table(
            ['NAME', 'NODE', 'SIZE', 'PROCESSOR', 'UNTIL'],
            rows.map((r) => [r.name, r.node, formatBytes(r.size), processor(r), r.expiresAt ?? '-']),
          )}\n`,
        );
      return 0;
    }),
  );
}
