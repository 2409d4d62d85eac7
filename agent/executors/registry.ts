/**
 * The node's executors by kind, with what each last said it can do (Nomad's drivermanager:
 * `Dispense(name)` is a lookup by name, and each driver's Fingerprint feeds the node). The agent
 * reaches executors only through here: it dispatches a task by `spec.kind`, offers the kinds whose
 * fingerprint is available and announces their merged capacity, without knowing any kind.
 */
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { TaskKind } from '../../shared/schemas/index.js';
import type { Executor, Fingerprint } from './executor.js';

/** Longest wait for one executor's fingerprint, ms; one that takes longer counts as unavailable. */
export const FINGERPRINT_TIMEOUT_MS = 30_000;

/** Where a task of some kind goes: its executor, or why this node cannot run it (a failed event's code and message). */
export type Dispatch =
  | { executor: Executor }
  | {
      /** EXECUTOR_DISABLED: the node's owner turned the kind off; EXECUTOR_UNAVAILABLE: no such executor, or it is failing. */
      code: 'EXECUTOR_DISABLED' | 'EXECUTOR_UNAVAILABLE';
      message: string;
    };

/** The node's executors, one per kind, and their last fingerprints. */
export class ExecutorRegistry {
  private readonly byKind = new Map<string, Executor>();
  private readonly last = new Map<string, Fingerprint>();
  /** Per kind, how many fingerprints its watch has pushed: a probe that began before one is stale. */
  private readonly pushed = new Map<string, number>();

  /**
   * @param executors in the order their kinds are offered and their capacity merged.
   * @param timeoutMs longest wait for one fingerprint, ms.
   * @throws Error when two executors claim the same kind (a wiring mistake).
   */
  constructor(
    executors: Executor[],
    private readonly log: Logger,
    private readonly timeoutMs = FINGERPRINT_TIMEOUT_MS,
  ) {
    for (const e of executors) {
      if (this.byKind.has(e.kind)) throw new Error(`two executors for kind ${e.kind}`);
      this.byKind.set(e.kind, e);
    }
  }

  /** Every executor, in registry order. */
  all(): Executor[] {
    return [...this.byKind.values()];
  }

  /** The last fingerprint of `kind`'s executor; undefined when there is none. */
  fingerprintOf(kind: string): Fingerprint | undefined {
    if (!this.byKind.has(kind)) return undefined;
    return this.last.get(kind) ?? { available: false, error: `the ${kind} executor has not been fingerprinted yet` };
  }

  /** The last fingerprints, in registry order. */
  fingerprints(): Fingerprint[] {
    return this.all().map((e) => this.fingerprintOf(e.kind)!);
  }

  /** The kinds this node offers now (NodeStatus `offer.executors`): those whose last fingerprint is available. */
  offered(): TaskKind[] {
    return this.all()
      .filter((e) => this.last.get(e.kind)?.available)
      .map((e) => e.kind);
  }

  /**
   * Fingerprints every executor at once and keeps the results. Never throws: an executor whose
   * fingerprint throws, or does not answer within the timeout, is recorded as unavailable (with
   * no capacity of its own) and the others are kept. Logs each executor that becomes available or
   * stops being so.
   */
  async refresh(): Promise<void> {
    await Promise.all(
      this.all().map(async (e) => {
        const before = this.pushed.get(e.kind);
        const fp = await this.probe(e);
        // The executor's watch said something newer meanwhile (the engine died under the probe).
        if (this.pushed.get(e.kind) === before) this.record(e.kind, fp);
      }),
    );
  }

  /**
   * Starts the watches of the executors that have one (`Executor.watch`): each fingerprint they
   * push is kept at once and `onChange` is called (the heartbeat announces the node's status).
   * @returns a function that stops them all.
   */
  watch(onChange: () => void): () => void {
    const stops = this.all().flatMap((e) => {
      if (!e.watch) return [];
      return [
        e.watch((fp) => {
          this.pushed.set(e.kind, (this.pushed.get(e.kind) ?? 0) + 1);
          this.record(e.kind, fp);
          onChange();
        }),
      ];
    });
    return () => {
      for (const stop of stops) stop();
    };
  }

  /**
   * Where a task of `kind` goes.
   * @param node this node's id, for the message.
   * @returns the executor, or the failed event's code and message when there is none for the
   *   kind (EXECUTOR_UNAVAILABLE), it is turned off (EXECUTOR_DISABLED) or it is failing
   *   (EXECUTOR_UNAVAILABLE, with its fingerprint's error).
   */
  dispatch(kind: string, node: string): Dispatch {
    const executor = this.byKind.get(kind);
    if (!executor) return { code: 'EXECUTOR_UNAVAILABLE', message: `node ${node} has no ${kind} executor` };
    const fp = this.fingerprintOf(kind)!;
    if (fp.available) return { executor };
    return {
      code: fp.disabled ? 'EXECUTOR_DISABLED' : 'EXECUTOR_UNAVAILABLE',
      message: fp.error ?? `the ${kind} executor on node ${node} is not available`,
    };
  }

  /** One executor's fingerprint, never throwing, bounded by the timeout. */
  private async probe(e: Executor): Promise<Fingerprint> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Fingerprint>((resolve) => {
      timer = setTimeout(
        () => resolve({ available: false, error: `the ${e.kind} executor did not answer within ${this.timeoutMs} ms` }),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([e.fingerprint(), late]);
    } catch (err) {
      this.log.warn({ executor: e.kind, err }, 'executor fingerprint failed');
      return { available: false, error: `the ${e.kind} executor cannot say what it can do: ${errorMessage(err)}` };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Keeps a fingerprint; logs the first one and every change of availability. */
  private record(kind: TaskKind, fp: Fingerprint): void {
    const before = this.last.get(kind);
    this.last.set(kind, fp);
    if (before && before.available === fp.available && before.disabled === fp.disabled) return;
    if (fp.available) this.log.info({ executor: kind }, 'executor available');
    else if (fp.disabled) this.log.info({ executor: kind, reason: fp.error }, 'executor turned off');
    else this.log.info({ executor: kind, reason: fp.error }, 'executor not available: its tasks are not offered');
  }
}
