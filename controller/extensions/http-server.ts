/**
 * The server's HTTP listener (`--http-port`, default 8088; `--http-host`, default 127.0.0.1):
 *
 * | path | what |
 * | --- | --- |
 * | `/` | the dashboard (controller/extensions/dashboard/page.ts) |
 * | `/events` | the dashboard's server-sent events |
 * | `/api/state` | the dashboard's snapshot as JSON |
 * | `/metrics` | Prometheus metrics (controller/extensions/metrics.ts) |
 * | `/healthz` | `ok` while the server runs (Docker healthchecks) |
 *
 * Read-only. It shows task output, so it listens on loopback unless told otherwise; bound beyond
 * loopback, every path but `/healthz` needs a cutter token (http-auth.ts) unless `--insecure`.
 * Only GET and HEAD are answered.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logger.js';
import type { Dashboard } from './dashboard/dashboard.js';
import { DASHBOARD_HTML } from './dashboard/page.js';
import type { Extension } from './extension.js';
import { HttpAuth, type VerifyToken } from './http-auth.js';
import type { MetricsExtension } from './metrics.js';

export interface HttpOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  log: Logger;
  metrics: MetricsExtension;
  dashboard: Dashboard;
  /** Token check for binds beyond loopback (http-auth.ts); absent = no token store. */
  verifyToken?: VerifyToken;
  /** `--insecure`: no token needed beyond loopback. */
  insecure?: boolean;
}

export class HttpServer implements Extension {
  readonly name = 'http';
  readonly requires = ['metrics', 'dashboard'];
  private server?: Server;
  /** The port bound, once started. */
  port = 0;

  constructor(private readonly opts: HttpOptions) {}

  /** @throws Error naming the address when the port cannot be bound (e.g. EADDRINUSE). */
  async start(): Promise<void> {
    const log = this.opts.log.child({ component: 'http' });
    const auth = new HttpAuth({
      host: this.opts.host,
      insecure: this.opts.insecure ?? false,
      verify: this.opts.verifyToken,
      log,
      surface: 'dashboard and /metrics',
    });
    const server = createServer((req, res) => {
      const go = () =>
        this.route(req, res).catch((err: unknown) => {
          log.warn({ url: req.url, err }, 'http request failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('internal error\n');
        });
      // /healthz stays open (Docker healthchecks); everything else needs a token beyond loopback.
      if (!auth.required || new URL(req.url ?? '/', 'http://x').pathname === '/healthz') return void go();
      void auth.allow(req, res).then((ok) => {
        if (ok && !res.destroyed) go();
      });
    });
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new Error(`http server cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message} (set --http-port, 0 = off)`)),
      );
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : this.opts.port;
    log.info({ host: this.opts.host, port: this.port }, 'http listening');
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          // The page's own script and style only; nothing from elsewhere.
          'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        });
        res.end(req.method === 'HEAD' ? undefined : DASHBOARD_HTML);
        return;
      case '/events':
        this.opts.dashboard.handleEvents(req, res);
        return;
      case '/api/state':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(this.opts.dashboard.snapshot()));
        return;
      case '/metrics': {
        const text = await this.opts.metrics.metrics();
        res.writeHead(200, { 'content-type': this.opts.metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
