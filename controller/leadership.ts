/**
 * A server with PostgreSQL state (`cutter server --state postgres://…`) stands by until it leads
 * (controller/leader-lease.ts), then opens the state store under its term and runs the controller
 * as a restarted server would: tasks read back from PostgreSQL, lost attempts requeued after the
 * startup grace, running ones kept where their nodes still report them.
 *
 * While standing by, the server's HTTP ports (dashboard/metrics, the Ollama-compatible API) answer
 * every request 503 with the leader's address (`Location` and the JSON body), so a client or a
 * load balancer goes there; they are closed before the leader's own servers bind them.
 *
 * Losing the leadership (the lease not renewed in time, or a write refused for a newer term) ends
 * the process's leadership for good: the server stops assigning at once and stops, as
 * kube-controller-manager does when its leader election is lost; its supervisor (systemd
 * `Restart=always`, compose `restart: always`) starts it again, and it stands by.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { ServerConfig } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { LeaderLease } from './leader-lease.js';
import { redactUrl } from './pg-schema.js';
import { PgStateStore } from './pg-state-store.js';

/** What leading gives the server. */
export interface Leadership {
  term: number;
  store: PgStateStore;
  lease: LeaderLease;
  /** Registers what to do when the leadership is lost (called once). */
  onLost(fn: (why: string) => void): void;
  /** Ends the lease at once (a standby takes over without waiting) and closes its connection. */
  stop(): Promise<void>;
}

/** This server's HTTP address as standbys tell clients (the bind address, or the host name when it binds every interface). */
export function advertisedHttp(cfg: ServerConfig): string | undefined {
  if (!cfg.httpPort) return undefined;
  const host = cfg.httpHost === '0.0.0.0' || cfg.httpHost === '::' ? hostname() : cfg.httpHost;
  return `http://${host.includes(':') ? `[${host}]` : host}:${cfg.httpPort}`;
}

/**
 * Answers every request 503 with where the leader is, on the given ports, until closed.
 * @returns a function that closes them (resolves once the ports are free).
 */
async function standbyHttp(ports: { host: string; port: number }[], lease: LeaderLease, log: Logger): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  for (const { host, port } of ports) {
    const server = createServer((req, res) => {
      void lease.leader().then((leader) => {
        const address = leader?.live ? leader.address : null;
        const body = {
          error: address
            ? `this cutter server is a standby; the leader serves at ${address}`
            : 'this cutter server is a standby and no leader is known yet; try again in a few seconds',
          leader: address,
          term: leader?.term ?? null,
        };
        res.writeHead(503, {
          'content-type': 'application/json',
          'retry-after': '1',
          ...(address ? { location: `${address}${req.url ?? '/'}` } : {}),
        });
        res.end(`${JSON.stringify(body)}\n`);
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', (err) => {
        log.warn({ err, host, port }, 'standby cannot bind its HTTP port');
        resolve(false);
      });
      server.listen(port, host, () => resolve(true));
    });
    if (ok) servers.push(server);
  }
  return async () => {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
  };
}

/**
 * Stands by until this server leads, then opens the state store under the term won.
 * @returns null when `signal` stopped it first.
 * @throws pg's error when the store cannot be opened after winning (the lease is released first).
 */
export async function lead(cfg: ServerConfig & { state: string }, log: Logger, signal: { stopped: boolean }): Promise<Leadership | null> {
  const holder = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const lease = new LeaderLease({
    url: cfg.state,
    holder,
    address: advertisedHttp(cfg),
    leaseMs: cfg.leaderLeaseMs,
    renewMs: Math.max(100, Math.floor(cfg.leaderLeaseMs / 3)),
    log,
  });
  const ports = [
    ...(cfg.httpPort ? [{ host: cfg.httpHost, port: cfg.httpPort }] : []),
    ...(cfg.ollamaApi && cfg.ollamaPort ? [{ host: cfg.ollamaHost, port: cfg.ollamaPort }] : []),
  ];
  const closeStandby = await standbyHttp(ports, lease, log);
  log.info({ state: redactUrl(cfg.state), holder, leaseMs: lease.leaseMs }, 'standing by for the leadership');
  const stopper = setInterval(() => signal.stopped && void lease.stop(), 100);
  const startedAt = Date.now();
  const term = await lease.acquire().finally(() => clearInterval(stopper));
  await closeStandby();
  if (term === null) return null;
  let lostFn: ((why: string) => void) | undefined;
  let lostWhy: string | undefined;
  const lost = (why: string) => {
    if (lostWhy !== undefined) return;
    lostWhy = why;
    lostFn?.(why);
  };
  lease.hold(lost);
  let store: PgStateStore;
  try {
    store = await PgStateStore.open(cfg.state, { term, log, onFenced: (err) => lost(err.message) });
  } catch (err) {
    await lease.stop();
    throw err;
  }
  log.info({ term, holder, stoodByMs: Date.now() - startedAt, tasks: store.loadTasks().length }, 'leading');
  return {
    term,
    store,
    lease,
    onLost: (fn) => {
      lostFn = fn;
      if (lostWhy !== undefined) fn(lostWhy);
    },
    stop: () => lease.stop(),
  };
}
