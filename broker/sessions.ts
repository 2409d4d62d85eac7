/**
 * One node id, one live agent. MQTT-3.1.4-2 makes the broker close the older connection when a
 * second one brings the same client id, and Aedes then publishes the older one's last will (the
 * node's retained `offline` status) unless it had sent DISCONNECT (aedes lib/client.js `close()`).
 * Two agents started with one node id therefore knocked each other off once a second, forever, and
 * every `offline` cost the node's tasks an attempt (issue 14, plan F1).
 *
 * So, when agent N connects while `cutter-agent-N` is connected:
 * - the same agent process (its last will names the same `runId`, e.g. over a half-open socket it
 *   has not noticed yet) takes its session over, without the old connection's `offline`;
 * - an old connection silent for longer than 1.5 × its keepalive (MQTT-3.1.2-24: the broker would
 *   close it by now) is taken over once, its last will suppressed;
 * - otherwise the newcomer is refused (CONNACK 2, identifier rejected) with the reason logged.
 * Agents are recognised by their token, and anonymous ones (`--insecure`) by their client id.
 */
import type { Aedes } from 'aedes';

/** What to do with an agent's connection: admit it (maybe taking the old session over) or refuse it. */
export type Admission = { refuse: string; address: string } | { takeover: string | null };

type AedesClient = { id: string; conn?: unknown; will?: unknown; _will?: unknown; _keepaliveInterval?: number; closed?: boolean };

/** The `runId` a last will (the node's `offline` NodeStatus) names, if any. */
function runIdOf(will: unknown): string | undefined {
  const payload = (will as { payload?: unknown } | null | undefined)?.payload;
  if (!payload) return undefined;
  try {
    const runId = (JSON.parse(Buffer.from(payload as Buffer).toString('utf8')) as { runId?: unknown })?.runId;
    return typeof runId === 'string' ? runId : undefined;
  } catch {
    return undefined;
  }
}

/** The remote address of a client's connection (IPv4-mapped IPv6 unwrapped; `in-process` for the server's own link). */
export function remoteAddressOf(client: { conn?: unknown } | undefined): string | undefined {
  const raw = (client?.conn as { remoteAddress?: string } | undefined)?.remoteAddress;
  return raw?.startsWith('::ffff:') ? raw.slice(7) : raw;
}

/** Tracks when each connection last sent a packet and decides on a second connection for one client id. */
export class AgentSessions {
  private readonly lastSeen = new WeakMap<object, number>();
  private readonly since = new WeakMap<object, number>();

  /** @param now clock, ms epoch. */
  constructor(
    private readonly aedes: Aedes,
    private readonly now: () => number = Date.now,
  ) {
    const seen = (_p: unknown, client: unknown) => {
      if (client) this.lastSeen.set(client as object, this.now());
    };
    aedes.on('ping', seen);
    aedes.on('publish', seen);
    aedes.on('ack', seen);
    aedes.on('subscribe', seen);
    aedes.on('client', (client) => {
      this.since.set(client, this.now());
      this.lastSeen.set(client, this.now());
    });
  }

  /** The connected client with this id, if any. */
  client(clientId: string): AedesClient | undefined {
    return (this.aedes as unknown as { clients: Record<string, AedesClient> }).clients[clientId];
  }

  /**
   * Decides on `client` (authenticated as agent `node`), and suppresses the old session's last
   * will when it is taken over.
   * @returns `takeover` (null: nobody held the id; else why the old session is replaced) or `refuse` with the reason.
   */
  admit(client: AedesClient, node: string): Admission {
    const old = this.client(client.id);
    if (!old || old === client || old.closed) return { takeover: null };
    const suppress = (why: string) => {
      old.will = null;
      old._will = null;
      return { takeover: why };
    };
    const oldRun = runIdOf(old.will ?? old._will);
    const newRun = runIdOf(client._will);
    if (oldRun && oldRun === newRun) return suppress(`the same agent (run ${oldRun}) reconnected`);
    const last = this.lastSeen.get(old) ?? 0;
    const limit = old._keepaliveInterval && old._keepaliveInterval > 0 ? old._keepaliveInterval : Number.POSITIVE_INFINITY;
    const silentMs = this.now() - last;
    if (silentMs > limit) return suppress(`the old connection was silent for ${silentMs} ms (over 1.5 × its keepalive)`);
    const address = remoteAddressOf(old) ?? 'unknown';
    const since = this.since.get(old);
    const details = [oldRun && `run ${oldRun}`, since && `since ${new Date(since).toISOString()}`].filter(Boolean).join(', ');
    return {
      address,
      refuse: `node ${node} is already served by an agent at ${address}${details ? ` (${details})` : ''}; a second agent with this node id was refused — give each machine its own node id`,
    };
  }
}
