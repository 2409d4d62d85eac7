/**
 * The audit log: an append-only JSON-lines file of every submission, placement, cancel, drain,
 * token change and denial — who, what, where, when, outcome. One line per record:
 * `{"ts": ms epoch, "who": identity or client id, "action", "outcome", …details}`.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export type AuditAction =
  | 'submit'
  | 'placement'
  | 'cancel'
  | 'finish'
  | 'drain'
  | 'resume'
  | 'forget'
  | 'token.create'
  | 'token.revoke'
  | 'connect.refused'
  | 'publish.denied'
  | 'subscribe.denied'
  | 'rate.limited'
  | 'file.put'
  | 'file.get'
  | 'image.push'
  | 'port.forward'
  | 'mcp.call';

export interface AuditRecord {
  who: string;
  action: AuditAction;
  /** ok, denied, failed, or the task's final state. */
  outcome: string;
  taskId?: string;
  node?: string;
  topic?: string;
  detail?: string;
}

export class AuditLog {
  private readonly out: WriteStream;

  /** Opens `path` for appending (mode 0600), creating its directory. */
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  /** Appends one record (buffered; written in order). */
  record(r: AuditRecord, now = Date.now()): void {
    this.out.write(`${JSON.stringify({ ts: now, ...r })}\n`);
  }

  /** Flushes and closes. */
  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
