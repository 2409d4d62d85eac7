/**
 * The dashboard's data side: a snapshot of the mesh (nodes, recent tasks, the tail of each live
 * task's output) as JSON, and a server-sent-events stream
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html) that pushes
 * - `snapshot` (the whole picture) when nodes or tasks changed, at most every SNAPSHOT_EVERY_MS;
 * - `log` `{taskId, stream, data}` for each batch of task output as it arrives (`data`: the batch's
 *   bytes as UTF-8 text, for display).
 * The page itself is controller/extensions/dashboard/page.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { logText } from '../../../shared/log-data.js';
import type { NodeView, TaskState } from '../../../shared/schemas/index.js';
import { isTerminal } from '../../../shared/schemas/index.js';
import type { Extension, ExtensionContext } from '../extension.js';
import { type OllamaGroup, ollamaGroups } from './ollama-groups.js';

/** A browser gets at most this many snapshots a second, whatever the mesh's churn. */
const SNAPSHOT_EVERY_MS = 300;
/** Output kept per task for the log tail, characters. */
const TAIL_CHARS = 4_000;
/** Tasks in a snapshot: every live one plus the most recent finished ones, up to this many. */
const MAX_TASKS = 200;
/** Ollama tasks among those MAX_TASKS, at most (the rest are only counted in the snapshot's `ollama` groups). */
const MAX_OLLAMA_TASKS = 50;
/** An SSE comment this often keeps proxies from closing an idle stream, ms. */
const KEEPALIVE_MS = 15_000;

export interface DashboardSnapshot {
  /** Server time, ms epoch. */
  now: number;
  nodes: NodeView[];
  tasks: TaskState[];
  /** taskId → last TAIL_CHARS characters of output. */
  tails: Record<string, string>;
  /** Ollama calls grouped by model and node (ollama-groups.ts); the page shows these instead of one task row per call. */
  ollama: OllamaGroup[];
}

export class Dashboard implements Extension {
  readonly name = 'dashboard';
  private readonly clients = new Set<ServerResponse>();
  private readonly tails = new Map<string, string>();
  private readonly off: (() => void)[] = [];
  private dirty = false;
  private timer?: NodeJS.Timeout;
  private keepalive?: NodeJS.Timeout;

  constructor(private readonly ctx: ExtensionContext) {}

  async start(): Promise<void> {
    const events = this.ctx.controller.events;
    this.off.push(
      events.on('node', () => (this.dirty = true)),
      events.on('nodeRemoved', () => (this.dirty = true)),
      events.on('task', () => (this.dirty = true)),
      events.on('taskEvent', (e) => {
        if (e.type !== 'log') return;
        // Display only: the batch's bytes as UTF-8 text (invalid bytes shown as U+FFFD).
        const text = logText(e);
        const tail = ((this.tails.get(e.taskId) ?? '') + text).slice(-TAIL_CHARS);
        this.tails.delete(e.taskId); // re-insert: the map's order is recency, oldest evicted first
        this.tails.set(e.taskId, tail);
        if (this.tails.size > MAX_TASKS) this.tails.delete(this.tails.keys().next().value!);
        this.send('log', { taskId: e.taskId, stream: e.stream, data: text.slice(-TAIL_CHARS) });
      }),
    );
    this.timer = setInterval(() => {
      if (!this.dirty || this.clients.size === 0) return;
      this.dirty = false;
      try {
        this.send('snapshot', this.snapshot());
      } catch (err) {
        this.ctx.log.error({ component: 'dashboard', err }, 'dashboard update failed');
      }
    }, SNAPSHOT_EVERY_MS);
    this.keepalive = setInterval(() => {
      for (const res of this.clients) res.write(': keepalive\n\n');
    }, KEEPALIVE_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    for (const off of this.off) off();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  /** The whole picture: every node, live tasks and the most recent finished ones (newest first). */
  snapshot(): DashboardSnapshot {
    const now = Date.now();
    const records = [...this.ctx.controller.tasks.all()];
    const all = records.map((r) => r.state);
    const live = all.filter((s) => !isTerminal(s.state));
    const done = all.filter((s) => isTerminal(s.state)).sort((a, b) => b.updatedAt - a.updatedAt);
    // Ollama calls are summed up in `ollama`: at most MAX_OLLAMA_TASKS of them take places in the
    // list, so a busy Ollama front-end does not push every other task out of it.
    let ollamaKept = 0;
    const tasks = [...live.sort((a, b) => b.createdAt - a.createdAt), ...done]
      .filter((s) => s.kind !== 'ollama' || ollamaKept++ < MAX_OLLAMA_TASKS)
      .slice(0, MAX_TASKS);
    const tails: Record<string, string> = {};
    for (const t of tasks) {
      const tail = this.tails.get(t.taskId);
      if (tail) tails[t.taskId] = tail;
    }
    return { now, nodes: this.ctx.controller.registry.views(now), tasks, tails, ollama: ollamaGroups(records, now) };
  }

  /** `GET /events`: an SSE stream starting with a snapshot. */
  handleEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    res.write(frame('snapshot', this.snapshot()));
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  private send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = frame(event, data);
    for (const res of this.clients) res.write(text);
  }
}

/** One SSE frame; JSON has no raw newlines, so one `data:` line suffices. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
