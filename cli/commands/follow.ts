/**
 * Following a task from a terminal: prints its output and the changes of its state as they
 * happen, fills gaps from the controller's kept events (after a reconnect, or when attaching
 * late), and resolves with the terminal state.
 */
import { TaskLogsResultSchema, isTerminal, type TaskEvent, type TaskState } from '../../shared/schemas/index.js';
import { formatBytes } from '../../shared/units.js';
import type { CliClient } from '../client.js';

export interface FollowOptions {
  json: boolean;
  /** Print the kept events first (attaching to a task that already ran). */
  history: boolean;
  /** Print state changes (placement, queueing, node lost) on stderr. */
  narrate: boolean;
}

export class TaskFollower {
  private readonly printed = new Set<string>();
  private final?: TaskState;
  private lastState?: string;
  private lastProgress = '';
  private resultSeen = false;
  private resolveDone!: (s: TaskState) => void;
  /** Resolves with the terminal state once its last output is printed. */
  readonly done = new Promise<TaskState>((r) => (this.resolveDone = r));

  constructor(
    private readonly client: CliClient,
    private readonly taskId: string,
    private readonly opts: FollowOptions,
  ) {}

  /** Subscribes (before a submit, so nothing is missed) and, with `history`, prints what was kept. */
  async start(): Promise<void> {
    await this.client.follow(
      this.taskId,
      (e) => this.onEvent(e),
      (s) => this.onState(s),
    );
    this.client.onReconnect(() => void this.fillGap());
    if (this.opts.history) await this.fillGap();
  }

  /** Prints kept events this follower has not printed yet. */
  async fillGap(): Promise<void> {
    try {
      let after: { attempt: number; seq: number } | undefined;
      for (;;) {
        const page = await this.client.request({ op: 'task.logs', taskId: this.taskId, ...(after ? { after } : {}) }, TaskLogsResultSchema);
        for (const e of page.events) this.onEvent(e);
        const last = page.events.at(-1);
        if (!page.more || !last) break;
        after = { attempt: last.attempt, seq: last.seq };
      }
    } catch {
      // the controller may be restarting; live events keep coming
    }
  }

  private onEvent(e: TaskEvent): void {
    const key = `${e.attempt}:${e.seq}`;
    if (this.printed.has(key)) return;
    this.printed.add(key);
    if (this.opts.json) process.stdout.write(`${JSON.stringify(e)}\n`);
    else if (e.type === 'log') (e.stream === 'stdout' ? process.stdout : process.stderr).write(e.data);
    else if (e.type === 'progress' && e.phase === 'pull') {
      const pct = e.total ? ` ${formatBytes(e.current ?? 0)} / ${formatBytes(e.total)}` : '';
      const line = `pull: ${e.message}${pct}`;
      if (line !== this.lastProgress) process.stderr.write(`cutter: ${line}\n`);
      this.lastProgress = line;
    }
    if (e.type === 'result' || e.type === 'failed') {
      this.resultSeen = true;
      if (this.final) this.resolveDone(this.final);
    }
  }

  private onState(s: TaskState): void {
    const shown = `${s.state}/${s.attempt}/${s.node}/${s.reason}`;
    if (this.opts.narrate && !this.opts.json && shown !== this.lastState && !isTerminal(s.state)) {
      if (s.state === 'queued' && s.reason) process.stderr.write(`cutter: task ${s.taskId} queued: ${s.reason}\n`);
      else if (s.state === 'assigned')
        process.stderr.write(
          `cutter: task ${s.taskId} placed on ${s.placement ?? s.node}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}\n`,
        );
      else if (s.state === 'unknown') process.stderr.write(`cutter: task ${s.taskId}: ${s.reason}\n`);
    }
    this.lastState = shown;
    if (!isTerminal(s.state)) return;
    this.final = s;
    // The result event carries the last output in order; wait briefly for it if it is still in flight.
    if (this.resultSeen || s.exitCode === null) this.resolveDone(s);
    else setTimeout(() => void this.fillGap().then(() => this.resolveDone(s)), 1_000);
  }
}
