/**
 * A per-task topic under the agent's own node, subscribed with a `+` for the task: the shape task
 * stdin (`nodes/N/stdin/{task}`, agent/stdin.ts) and reader credit (`nodes/N/credit/{task}`,
 * agent/output-credit.ts) share. Both are binary or tiny payloads routed outside the JSON router, at
 * QoS 1 so a persistent session keeps what was sent while the link was down. Messages for another
 * node's topic never reach the handler (the broker's ACL already refuses them; this is the second
 * check). A handler that throws is logged, never crashes the agent (shared/mqtt.ts guardListener).
 */
import type { Logger } from '../shared/logger.js';
import { guardListener, type MqttClient } from '../shared/mqtt.js';
import type { Topics } from '../shared/topics.js';

/** The per-task kinds of shared/topics.ts served this way. */
export type NodeTaskKind = 'nodeStdin' | 'nodeCredit';

export class NodeTaskTopic {
  private client?: MqttClient;

  /**
   * @param opts the agent's node id, topics and logger.
   * @param kind which per-task topic.
   * @param handle receives each message for this node: the task id from the topic, the raw payload (unchecked).
   */
  constructor(
    private readonly opts: { node: string; t: Topics; log: Logger },
    private readonly kind: NodeTaskKind,
    private readonly handle: (taskId: string, payload: Buffer) => void,
  ) {}

  /** Listens on the client (before it connects, so a persistent session's queued messages are not missed). */
  attach(client: MqttClient): void {
    this.client = client;
    const { node, t, log } = this.opts;
    client.on(
      'message',
      guardListener(log, (topic: string, payload: Buffer) => {
        const p = t.parse(topic);
        if (p?.kind === this.kind && p.node === node) this.handle(p.task, payload);
      }),
    );
  }

  /** Subscribes `<kind>(node, '+')` at QoS 1. @throws when the subscription is refused or the client is not attached. */
  async subscribe(): Promise<void> {
    if (!this.client) throw new Error(`${this.kind}: subscribe before attach`);
    await this.client.subscribeAsync(this.opts.t[this.kind](this.opts.node, '+'), { qos: 1 });
  }
}
