/**
 * `cutter mcp --http HOST:PORT`: the MCP Streamable HTTP transport (MCP spec 2025-03-26,
 * "Transports"; the SDK's StreamableHTTPServerTransport, stateless: one McpServer per POST) at
 * `POST /mcp`, beside the stdio transport, for assistants that connect over HTTP.
 *
 * Every request carries `Authorization: Bearer mcp:NAME:PASSWORD`, an `mcp`-role cutter token
 * (`cutter token create --role mcp`); anything else is answered 401. The token is checked by the
 * broker itself: the first request with a token opens a MeshClient with it (a refused CONNACK is a
 * 401), and every tool call of that caller runs over that link, under the broker's ACL for its own
 * identity (broker/acl.ts) and audited under its name. At start a made-up token is tried: a broker
 * that accepts it checks no tokens (e.g. a Mosquitto without a password file; cutter's own broker checks
 * given credentials even with `--insecure`), so `--http` refuses to start there (unless `--insecure`, which
 * serves without a token over the process's own credentials).
 *
 * Why not `/mcp` on the server's own HTTP listener (controller/extensions/http-server.ts): that
 * surface is read-only (GET/HEAD) and its MQTT link is the controller's, which the broker's ACL does
 * not restrict; here each caller's link is its own token's, so the ACL stays the one boundary.
 *
 * Bounds: request bodies at most MAX_BODY bytes (413), at most MAX_IN_FLIGHT requests at once and
 * MAX_CALLERS distinct tokens (503 beyond, saying why).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuditLog } from '../../shared/audit.js';
import { MeshClient } from '../../shared/client/index.js';
import type { CliConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { createMcpServer } from './server.js';

/** Largest request body, bytes (copy_file's inline content is at most 1 MiB, base64 ⅓ more). */
export const MAX_BODY = 4 * 1024 * 1024;
/** Requests served at once; more are answered 503. */
export const MAX_IN_FLIGHT = 32;
/** Distinct tokens with an open broker link; a new one beyond is answered 503. */
export const MAX_CALLERS = 16;

export interface McpHttpOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Broker URL, prefix, TLS and timeouts; its own credentials are used only with `insecure`. */
  cfg: CliConfig;
  audit: AuditLog;
  allowExec: boolean;
  filesDir?: string;
  /** Serve without tokens (only for a broker that checks none). */
  insecure: boolean;
  /** Where one-line notices go (stderr). */
  log: (line: string) => void;
}

type Caller = { who: string; client: Promise<MeshClient> };

/** `HOST:PORT` (IPv6 as `[::1]:PORT`). @throws CutterError INVALID_ARGUMENT. */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec) ?? /^()()(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new CutterError('INVALID_ARGUMENT', `--http ${spec}: expected HOST:PORT, e.g. 127.0.0.1:8765`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export class McpHttpServer {
  private server?: Server;
  private readonly callers = new Map<string, Caller>();
  private inFlight = 0;
  private shared?: Promise<MeshClient>;
  /** The port bound, once started. */
  port = 0;

  constructor(private readonly opts: McpHttpOptions) {}

  /**
   * Checks that the broker checks tokens, then listens.
   * @throws CutterError INVALID_CONFIG for a broker that accepts any token (without `insecure`),
   *   BROKER_UNREACHABLE, or Error naming the address when it cannot be bound.
   */
  async start(): Promise<void> {
    const { opts } = this;
    if (opts.insecure) this.shared = MeshClient.connect(opts.cfg);
    else {
      const probe = await MeshClient.connect({
        ...opts.cfg,
        username: `mcp:probe-${randomBytes(4).toString('hex')}`,
        password: randomBytes(16).toString('hex'),
      }).catch((err: unknown) => {
        if (err instanceof CutterError && (err.details as { connackCode?: number } | undefined)?.connackCode !== undefined) return null;
        throw err;
      });
      if (probe) {
        await probe.close();
        throw new CutterError(
          'INVALID_CONFIG',
          `the broker at ${opts.cfg.broker} accepts any username and password (e.g. a Mosquitto without a password file), so --http could not check callers' tokens: use a broker that checks them (cutter server does), or pass --insecure to serve without a token`,
        );
      }
    }
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.log(`cutter mcp: request failed: ${errorMessage(err)}`);
        if (!res.headersSent) this.refuse(res, 500, 'internal error');
        else res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cutter mcp cannot listen on ${opts.host}:${opts.port}: ${err.message}`)));
      server.listen(opts.port, opts.host, () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : opts.port;
  }

  private refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
    const body = JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/mcp') return this.refuse(res, 404, `not found: the MCP endpoint is POST /mcp`);
    if (req.method !== 'POST')
      return this.refuse(res, 405, 'method not allowed: this MCP server is stateless, send JSON-RPC with POST', { allow: 'POST' });
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY) return this.refuse(res, 413, `request body over ${MAX_BODY} bytes`, { connection: 'close' });
    const caller = await this.callerOf(req, res);
    if (!caller) return;
    if (this.inFlight >= MAX_IN_FLIGHT) return this.refuse(res, 503, `busy: ${MAX_IN_FLIGHT} requests in flight, retry shortly`);
    this.inFlight++;
    const mcp = createMcpServer({
      client: caller.client,
      who: caller.who,
      audit: this.opts.audit,
      allowExec: this.opts.allowExec,
      ...(this.opts.filesDir ? { filesDir: this.opts.filesDir } : {}),
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: MAX_BODY });
    res.on('close', () => {
      this.inFlight--;
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  }

  /** The caller's broker link, or null after answering 401/503. */
  private async callerOf(req: IncomingMessage, res: ServerResponse): Promise<{ client: MeshClient; who: string } | null> {
    if (this.shared) return { client: await this.shared, who: this.opts.cfg.username ?? 'anonymous' };
    const unauthorized = (why: string) => {
      this.refuse(
        res,
        401,
        `unauthorized: ${why}. Send "Authorization: Bearer mcp:NAME:PASSWORD", an mcp token (cutter token create --role mcp --name NAME --json)`,
        { 'www-authenticate': 'Bearer realm="cutter"' },
      );
      return null;
    };
    const m = /^Bearer\s+(\S{1,1024})$/i.exec(req.headers.authorization?.trim() ?? '');
    if (!m) return unauthorized(req.headers.authorization ? 'Authorization is not "Bearer <token>"' : 'no Authorization header');
    const secret = m[1];
    const at = secret.lastIndexOf(':');
    const username = at > 0 ? secret.slice(0, at) : '';
    if (!username.startsWith('mcp:'))
      return unauthorized(`this is not an mcp token (${username ? `${username.split(':')[0]}:…` : 'not ROLE:NAME:PASSWORD'})`);
    // Keyed by the secret's SHA-256: the password itself is kept only inside the MQTT client.
    const id = createHash('sha256').update(secret).digest('hex');
    let caller = this.callers.get(id);
    if (!caller) {
      if (this.callers.size >= MAX_CALLERS) {
        this.refuse(res, 503, `too many distinct tokens (${MAX_CALLERS}) in use on this MCP server; restart it or use fewer`);
        return null;
      }
      caller = { who: username, client: MeshClient.connect({ ...this.opts.cfg, username, password: secret.slice(at + 1) }) };
      this.callers.set(id, caller);
    }
    try {
      return { client: await caller.client, who: caller.who };
    } catch (err) {
      this.callers.delete(id);
      if (err instanceof CutterError && (err.details as { connackCode?: number } | undefined)?.connackCode !== undefined)
        return unauthorized('the broker refused this token (unknown, revoked or wrong)');
      this.refuse(res, 503, `cannot reach the mesh: ${errorMessage(err)}`);
      return null;
    }
  }

  /** Stops listening and closes every broker link. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server)
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    const links = [...this.callers.values()].map((c) => c.client);
    if (this.shared) links.push(this.shared);
    this.callers.clear();
    await Promise.all(links.map((p) => p.then((c) => c.close()).catch(() => undefined)));
  }
}
