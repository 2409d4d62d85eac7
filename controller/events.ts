/**
 * The controller's event bus (Zigbee2MQTT's `lib/eventBus.ts` shape): server extensions (Home
 * Assistant discovery, Prometheus metrics, the dashboard) observe the mesh here, and the
 * controller knows nothing of them. Listeners run synchronously inside controller work, so they
 * must be quick and must not throw (a throwing listener is caught and ignored by `emit`).
 */
import { EventEmitter } from 'node:events';
import type { Rejection, TaskEvent, TaskKind, TaskState } from '../shared/schemas/index.js';

/** Events and their payloads. */
export interface ControllerEventMap {
  /** A node's status arrived, or the controller marked it down, drained or resumed it: read the registry for its view. */
  node: [node: string];
  /** A node was forgotten (`cutter nodes forget`): it is no longer in the registry. */
  nodeRemoved: [node: string];
  /** A task's state was published (retained) — every change, terminal ones included. */
  task: [state: TaskState];
  /** A task event from the task's current attempt (log lines, progress, result …), after it was stored. */
  taskEvent: [event: TaskEvent];
  /** An attempt was placed on a node. */
  placed: [info: { taskId: string; node: string; kind: TaskKind; attempt: number }];
  /**
   * No node fits a task (emitted when the answer changes, not at every retry); one entry per rejected
   * node, as data. `reason` is the same in words (shared/reasons.ts), kept only until the metrics
   * extension labels by `code` instead of classifying the words with `rejectionKind()`.
   */
  rejected: [info: { taskId: string; kind: TaskKind; rejections: (Rejection & { reason: string })[] }];
}

export class ControllerEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(50);
  }

  on<K extends keyof ControllerEventMap>(event: K, listener: (...args: ControllerEventMap[K]) => void): () => void {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return () => this.emitter.off(event, listener as (...args: unknown[]) => void);
  }

  emit<K extends keyof ControllerEventMap>(event: K, ...args: ControllerEventMap[K]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch {
        // an extension's bug must never break the controller
      }
    }
  }
}

/**
 * Classifies a scheduler rejection reason (free text, e.g. `needs 1.0 GiB, 512 MiB free`) into a
 * short, bounded label for metrics (`memory`, `offline`, …), so label cardinality stays small.
 */
export function rejectionKind(reason: string): string {
  const r = reason.toLowerCase();
  const rules: [RegExp, string][] = [
    [/^offline/, 'offline'],
    [/^(draining|drained)/, 'draining'],
    [/^stale/, 'stale'],
    [/^has not announced/, 'unannounced'],
    [/^unknown node|^not the requested|pinned/, 'pinned'],
    [/^no docker engine|^does not run|executor/, 'executor'],
    [/^busy/, 'tasks'],
    [/cpus?,/, 'cpu'],
    [/model|ollama/, 'model'],
    [/gpu/, 'gpu'],
    [/label/, 'label'],
    [/memory/, 'memory'],
  ];
  for (const [re, kind] of rules) if (re.test(r)) return kind;
  return 'other';
}
