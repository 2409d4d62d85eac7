/**
 * Audits file transfers and image pushes, which go straight between a client and an agent (the
 * controller is not in their data path): an MQTT client of the server's broker with the
 * controller identity reads the control topics (`nodes/+/files/in/+`, `nodes/+/files/out/+`,
 * never the chunk topics) and writes one audit record per transfer request and one per outcome:
 * `{who, action: file.put|file.get|image.push, outcome: requested|ok|failed|denied, node, detail}`.
 */
import type { AuditAction, AuditLog } from '../shared/audit.js';
import type { Logger } from '../shared/logger.js';
import { FileInSchema, FileOutSchema } from '../shared/schemas/files.js';
import { topics } from '../shared/topics.js';
import { connectServerClient, type ServerConnection } from './server-client.js';

export interface FileAuditOptions extends ServerConnection {
  prefix: string;
  audit: AuditLog;
  /** The identity a client id authenticated as (the broker knows), or undefined. */
  whoIs(clientId: string): string | undefined;
  log: Logger;
}

const KEEP = 10_000;

/** Starts auditing. @returns a function that stops it. */
export async function startFileAudit(opts: FileAuditOptions): Promise<() => Promise<void>> {
  const t = topics(opts.prefix);
  const log = opts.log.child({ component: 'file-audit' });
  /** Transfers seen, by id: requested once, finished once (requests are re-sent on a resume). */
  const seen = new Map<string, { who: string; action: AuditAction; detail: string; ended: boolean }>();
  const client = await connectServerClient('audit', opts, log, (router) => {
    router.route(t.filesIn('+', '+'), FileInSchema, (m, topic) => {
      // Volume changes (shared/schemas/volumes.ts): one record per request id, who asked for what.
      const vol = t.parse(topic);
      if ((m.type === 'vol.create' || m.type === 'vol.rm') && vol?.kind === 'filesIn' && !seen.has(m.xfer)) {
        const who = opts.whoIs(vol.client) ?? vol.client;
        const action = m.type === 'vol.create' ? 'volume.create' : 'volume.rm';
        seen.set(m.xfer, { who, action, detail: m.volume, ended: true });
        opts.audit.record({ who, action, outcome: 'requested', node: vol.node, detail: m.volume });
        return;
      }
      if (m.type !== 'put' && m.type !== 'get' && m.type !== 'image.put') return;
      if (seen.has(m.xfer)) return;
      const parsed = t.parse(topic);
      if (parsed?.kind !== 'filesIn') return;
      const { node, client } = parsed;
      const who = opts.whoIs(client) ?? client;
      const action = m.type === 'put' ? 'file.put' : m.type === 'get' ? 'file.get' : 'image.push';
      const detail =
        m.type === 'image.put'
          ? `${m.image} (${m.size} bytes)`
          : m.type === 'put'
            ? `${m.path} (${m.size} bytes, sha256 ${m.sha256})`
            : m.path;
      seen.set(m.xfer, { who, action, detail, ended: false });
      if (seen.size > KEEP) seen.delete(seen.keys().next().value!);
      opts.audit.record({ who, action, outcome: 'requested', node, detail });
    });
    router.route(t.filesOut('+', '+'), FileOutSchema, (m, topic) => {
      const s = seen.get(m.xfer);
      if (!s || s.ended) return;
      const parsed = t.parse(topic);
      if (parsed?.kind !== 'filesOut') return;
      const node = parsed.node;
      if (m.type === 'error') {
        s.ended = true;
        opts.audit.record({
          who: s.who,
          action: s.action,
          outcome: m.code === 'PATH_DENIED' || m.code === 'FILES_DISABLED' ? 'denied' : 'failed',
          node,
          detail: `${s.detail}: ${m.message}`,
        });
      } else if (m.type === 'done') {
        s.ended = true;
        opts.audit.record({
          who: s.who,
          action: s.action,
          outcome: m.ok ? 'ok' : 'failed',
          node,
          detail: m.ok ? `${m.path ?? s.detail}${m.imageId ? ` → ${m.imageId}` : ''}` : `${s.detail}: ${m.message ?? ''}`,
        });
      } else if (m.type === 'meta' && s.action === 'file.get') {
        // A get ends at the client (it checks the SHA-256): the agent's meta is its last word.
        s.ended = true;
        opts.audit.record({ who: s.who, action: s.action, outcome: 'ok', node, detail: `${m.path} (${m.size} bytes, sha256 ${m.sha256})` });
      }
    });
  });
  return async () => {
    await client.endAsync().catch((err) => log.warn({ err }, 'file audit disconnect failed'));
  };
}
