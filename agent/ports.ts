/**
 * Announces the node ports a docker task's container ports were published on (shared/schemas/
 * ports.ts), so the server can proxy to them, and clears the announcement when the task ends.
 */
import { encode } from '../shared/codec.js';
import type { Logger } from '../shared/logger.js';
import type { MqttClient } from '../shared/mqtt.js';
import type { PortAnnouncement } from '../shared/schemas/ports.js';
import type { Topics } from '../shared/topics.js';
import type { AgentService } from './service.js';

export class PortAnnouncer implements AgentService {
  private client?: MqttClient;
  /** Tasks with a retained announcement, by `taskId:attempt`. */
  private readonly announced = new Set<string>();

  constructor(private readonly opts: { node: string; t: Topics; log: Logger; address: string | undefined }) {}

  attach(client: MqttClient): void {
    this.client = client;
  }

  taskPublished(taskId: string, attempt: number, ports: { container: number; host: number; server: number }[]): void {
    const body: PortAnnouncement = {
      v: 1,
      node: this.opts.node,
      taskId,
      attempt,
      address: this.opts.address ?? null,
      ports,
      ts: Date.now(),
    };
    this.announced.add(`${taskId}:${attempt}`);
    this.opts.log.info({ taskId, attempt, address: body.address, ports }, 'ports published');
    void this.client
      ?.publishAsync(this.opts.t.nodePorts(this.opts.node, taskId), encode(body), { qos: 1, retain: true })
      .catch((err) => this.opts.log.warn({ err }, 'cannot announce ports'));
  }

  taskEnded(taskId: string, attempt: number): void {
    if (!this.announced.delete(`${taskId}:${attempt}`)) return;
    void this.client
      ?.publishAsync(this.opts.t.nodePorts(this.opts.node, taskId), '', { qos: 1, retain: true })
      .catch((err) => this.opts.log.warn({ err }, 'cannot clear the port announcement'));
  }
}
