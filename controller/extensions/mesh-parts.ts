/**
 * The server's MQTT-side parts as extensions: the file-transfer audit (controller/file-audit.ts)
 * and the port proxy (controller/port-proxy.ts). Each runs its own MQTT client with the
 * controller's credentials (controller/server-client.ts).
 */
import type { AuditLog } from '../../shared/audit.js';
import { startFileAudit } from '../file-audit.js';
import { startPortProxy } from '../port-proxy.js';
import type { Extension, ExtensionContext } from './extension.js';

/** The connection fields of the context, as controller/server-client.ts takes them. */
const connection = (ctx: ExtensionContext) => ({
  url: ctx.brokerUrl,
  username: ctx.username,
  password: ctx.password,
  streamBuilder: ctx.streamBuilder,
});

/** Audits direct client ↔ agent traffic (file transfer, image push): one record per request and per outcome. */
export class FileAuditExtension implements Extension {
  readonly name = 'file-audit';
  private stopAudit?: () => Promise<void>;

  constructor(
    private readonly ctx: ExtensionContext,
    private readonly audit: AuditLog,
  ) {}

  /** @throws CutterError BROKER_UNREACHABLE when its client cannot connect. */
  async start(): Promise<void> {
    this.stopAudit = await startFileAudit({
      ...connection(this.ctx),
      prefix: this.ctx.prefix,
      audit: this.audit,
      whoIs: (c) => this.ctx.whoIs(c),
      log: this.ctx.log,
    });
  }

  async stop(): Promise<void> {
    await this.stopAudit?.();
    this.stopAudit = undefined;
  }
}

/** Forwarded ports (`cutter run -p`): a TCP proxy from this server to the nodes. */
export class PortProxyExtension implements Extension {
  readonly name = 'port-proxy';
  private stopProxy?: () => Promise<void>;

  /**
   * @param host the interface forwarded ports listen on (`forwardHost`).
   * @param trustAnnounced dial the address a node announces when the broker cannot say where it connects from (`forwardTrustAnnounced`).
   */
  constructor(
    private readonly ctx: ExtensionContext,
    private readonly host: string,
    private readonly trustAnnounced = false,
  ) {}

  /** @throws CutterError BROKER_UNREACHABLE when its client cannot connect. */
  async start(): Promise<void> {
    this.stopProxy = await startPortProxy({
      ...connection(this.ctx),
      prefix: this.ctx.prefix,
      host: this.host,
      assignmentOf: (taskId) => this.ctx.controller.assignmentOf(taskId),
      nodeAddress: (node) => this.ctx.broker?.addressOf(`cutter-agent-${node}`),
      trustAnnounced: this.trustAnnounced,
      audit: this.ctx.audit,
      log: this.ctx.log,
    });
  }

  async stop(): Promise<void> {
    await this.stopProxy?.();
    this.stopProxy = undefined;
  }
}
