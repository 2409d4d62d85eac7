/**
 * Aedes clustered through Redis: several `cutter server` processes (one with the controller, the
 * others `--broker-only`) share one Redis and carry one mesh. A message published on any instance
 * reaches subscribers on every instance, and retained messages, persistent sessions (subscriptions
 * and queued QoS 1 messages) and last wills live in Redis, so an agent may dial any instance and
 * reconnect to another.
 *
 * - mqemitter-redis: Aedes' message bus over Redis pub/sub (every instance sees every publish);
 * - aedes-persistence-redis: retained messages, subscriptions, offline queues and wills in Redis.
 *   Version 11, the range Aedes 1.2 declares as its peer (`aedes-persistence-redis@^11.2.1`); 12
 *   follows aedes-persistence 11 for Aedes 2.
 * Both are the moscajs projects Aedes' README names for clustering; both take ioredis options.
 * Aedes instances watch each other through `$SYS/<id>/heartbeat` (Aedes `heartbeatInterval`)
 * and publish the wills of a dead instance's clients.
 */
import aedesPersistenceRedis from 'aedes-persistence-redis';
import mqemitterRedis from 'mqemitter-redis';
import { CutterError } from '../shared/errors.js';

/** What `Aedes.createBroker` takes to cluster: the message bus and the persistence. */
export interface ClusterParts {
  mq: unknown;
  persistence: unknown;
  /** Closes both Redis-backed parts' connections (Aedes closes mq itself on close()). */
  close(): Promise<void>;
}

/**
 * ioredis options from a `redis://[user:password@]host[:port][/db]` URL (`rediss://` for TLS).
 * @throws CutterError INVALID_CONFIG for anything else.
 */
export function redisOptions(url: string): { host: string; port: number; db: number; username?: string; password?: string; tls?: object } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CutterError('INVALID_CONFIG', `invalid config: redis = "${url}" is not a URL (redis://host:6379/0)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new CutterError('INVALID_CONFIG', `invalid config: redis = "${url}": the scheme must be redis:// or rediss://`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new CutterError('INVALID_CONFIG', `invalid config: redis = "${url}": "${u.pathname.slice(1)}" is not a database number`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * ioredis 5.11 sends `CLIENT SETINFO` on connect and runs its ready check (INFO) only after the
 * replies; meanwhile mqemitter-redis' PSUBSCRIBEs go out on the same connection, which then is in
 * subscriber mode, the INFO is refused ("Connection in subscriber mode, only subscriber commands
 * may be used") and the error kills the process. Without the client info the ready check runs
 * first, before any queued command. (Seen here with mqemitter-redis 7.2.1 and ioredis 5.11.1.)
 */
const IOREDIS_FIXES = { disableClientInfo: true };

type Sub = { topic: string };
type RedisPersistence = {
  destroy(): Promise<void>;
  addSubscriptions(client: { id: string }, subs: Sub[], cb?: (err: Error | null, client?: unknown) => void): unknown;
};

/**
 * Aedes 1.2 calls `persistence.addSubscriptions(client, packet.subscriptions)` once per topic of
 * a SUBSCRIBE packet, all at once (lib/handlers/subscribe.js, storeSubscriptions), and the Redis
 * persistence waits for its own `$SYS/sub/add` broadcast keyed by client id and first topic —
 * one waiter per key (aedes-persistence's BroadcastPersistence), so with two or more topics in one
 * SUBSCRIBE every call but the last waits forever and the SUBACK never comes. Concurrent calls for
 * the same client and the same topics share one promise here instead.
 */
function shareConcurrentAddSubscriptions(persistence: RedisPersistence): void {
  const original = persistence.addSubscriptions.bind(persistence);
  const inflight = new Map<string, Promise<unknown>>();
  persistence.addSubscriptions = (client, subs, cb) => {
    if (cb) return original(client, subs, cb);
    const key = `${client.id}\u0000${subs.map((s) => s.topic).join('\u0000')}`;
    let p = inflight.get(key);
    if (!p) {
      p = (original(client, subs) as Promise<unknown>).finally(() => inflight.delete(key));
      inflight.set(key, p);
    }
    return p;
  };
}

/**
 * The Redis-backed message bus and persistence for one Aedes instance of a cluster.
 * @throws CutterError INVALID_CONFIG for a bad URL. Connection errors surface later, from ioredis
 *   (it retries), and from Aedes' `createBroker` while persistence sets up.
 */
export function redisCluster(url: string): ClusterParts {
  const opts = redisOptions(url);
  const mq = mqemitterRedis({ ...opts, ...IOREDIS_FIXES });
  const persistence = aedesPersistenceRedis({ ...opts, ...IOREDIS_FIXES }) as RedisPersistence;
  shareConcurrentAddSubscriptions(persistence);
  return {
    mq,
    persistence,
    // Without a callback destroy() returns its promise (aedes-persistence's CallBackPersistence);
    // with one it would wait for a 'ready' event that Aedes' `await setup()` path never emits.
    close: () => persistence.destroy().catch(() => undefined),
  };
}
