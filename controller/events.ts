/**
 * The controller's event bus (Zigbee2MQTT's `lib/eventBus.ts` shape): server extensions (Home
 * Assistant discovery, Prometheus metrics, the dashboard) observe the mesh here, and the
 * controller knows nothing of them. Listeners run synchronously inside controller work, so they
 * must be quick and should not throw: a throwing listener is caught by `emit`, logged with its
 * stack (pino `err`) and the event, and the other listeners still run.
 */
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../shared/logger.js';
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
  /** No node fits a task (emitted when the answer changes, not at every retry); one entry per rejected node, as data. */
  rejected: [info: { taskId: string; kind: TaskKind; rejections: Rejection[] }];
}

/** The bus's own logger when it was given none (a controller built without one). */
let fallbackLog: Logger | undefined;

export class ControllerEvents {
  private readonly emitter = new EventEmitter();
  private log?: Logger;

  /** @param log where a throwing listener is reported; see {@link useLogger}. */
  constructor(log?: Logger) {
    this.emitter.setMaxListeners(50);
    if (log) this.useLogger(log);
  }

  /** Reports throwing listeners to this logger (the server's), as `component: events`. */
  useLogger(log: Logger): void {
    this.log = log.child({ component: 'events' });
  }

  on<K extends keyof ControllerEventMap>(event: K, listener: (...args: ControllerEventMap[K]) => void): () => void {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    return () => this.emitter.off(event, listener as (...args: unknown[]) => void);
  }

  emit<K extends keyof ControllerEventMap>(event: K, ...args: ControllerEventMap[K]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (err) {
        // An extension's bug must never break the controller: it is logged, with its stack.
        this.log ??= fallbackLog ??= createLogger('info').child({ component: 'events' });
        this.log.error({ err, event, listener: listener.name || undefined }, 'event listener failed');
      }
    }
  }
}
