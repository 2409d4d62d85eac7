import type { ExecutorContext } from './executors/executor.js';

/**
 * Flow control for a task's output: the bytes of log events published but not yet acknowledged by
 * the broker (QoS 1 PUBACK). Past `limit` the executor is told to stop reading the workload's
 * output (`open` false) until the count falls to half of it (`drained()` resolves): a process or
 * container that writes faster than the mesh carries its output then blocks on its own pipe, as
 * it would under `docker run` or `ssh host cmd` with a slow terminal, instead of the agent's
 * memory growing with everything it has read and not yet sent.
 */
export class OutputWindow {
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  /** @param limit bytes in flight at which output pauses (resumes at half of it). */
  constructor(private readonly limit: number) {}

  /** False while the executor should not read more output. */
  get open(): boolean {
    return this.inFlight < this.limit;
  }

  /** Bytes published and not yet acknowledged. */
  get bytes(): number {
    return this.inFlight;
  }

  /** `n` bytes were handed to the broker connection. */
  add(n: number): void {
    this.inFlight += n;
  }

  /** `n` bytes were acknowledged (or given up on): wakes the waiters once below half the limit. */
  settle(n: number): void {
    this.inFlight = Math.max(0, this.inFlight - n);
    if (this.inFlight <= this.limit / 2 && this.waiters.length > 0) {
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    }
  }

  /** Resolves once fewer than half the limit's bytes are in flight (at once when already so). */
  drained(): Promise<void> {
    if (this.inFlight <= this.limit / 2) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Hands one chunk of a workload's output to `ctx` and, when the mesh is behind (`output()` says
 * false), stops reading `source` until `ctx.drained()` resolves: the executors' one way to honour
 * the window (exec pauses the child's pipe, docker the container's attach stream).
 */
export function forwardOutput(
  ctx: Pick<ExecutorContext, 'output' | 'drained'>,
  source: { pause(): unknown; resume(): unknown; isPaused(): boolean },
  stream: 'stdout' | 'stderr',
  chunk: Buffer,
): void {
  if (ctx.output(stream, chunk) || !ctx.drained || source.isPaused()) return;
  source.pause();
  void ctx.drained().then(() => source.resume());
}
