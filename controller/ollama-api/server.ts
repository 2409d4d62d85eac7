/**
 * The server's Ollama-compatible HTTP API (default 127.0.0.1:11434, Ollama's own default bind):
 * any Ollama or OpenAI client pointed at the server reaches the node that holds the model. Every
 * generation, chat, embedding, pull and show runs as an ollama task (visible in `cutter tasks`);
 * when the HTTP client disconnects, the task is cancelled on its node.
 *
 * Browser pages may call it from Ollama's default origins (loopback, app://, file:// …) and the
 * ones `--ollama-origins` adds; any other Origin is refused with 403, as Ollama does (cors.ts).
 *
 * On loopback (the default) it is open, like Ollama. Bound beyond loopback it needs a cutter token
 * as `Authorization: Bearer ROLE:NAME:PASSWORD` (the API key Ollama and OpenAI clients send) or as
 * `x-api-key: ROLE:NAME:PASSWORD` (the Anthropic SDKs' and Claude Code's), unless the server runs
 * with `--insecure` (controller/extensions/http-auth.ts, api-key.ts).
 *
 * Bound to loopback, a request whose Host header is not a local name or address is refused (403),
 * as Ollama refuses it against DNS rebinding (host-check.ts).
 *
 * Anthropic Messages API (anthropic.ts): `/v1/messages`, `/v1/messages/count_tokens`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CliConfig } from '../../shared/config.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { MESH_API_HEADER } from '../../shared/ollama.js';
import { VERSION } from '../../shared/version.js';
import { HttpAuth, isLoopback, type VerifyToken } from '../extensions/http-auth.js';
import { handleAnthropic } from './anthropic.js';
import { allowed } from './api-key.js';
import { refuseForeignHost } from './host-check.js';
import { CorsPolicy } from './cors.js';
import { sendJson, statusOf } from './http.js';
import { MeshGateway } from './mesh.js';
import { handleNative } from './native.js';
import { handleOpenAi } from './openai.js';

export interface OllamaApiOptions {
  host: string;
  /** TCP port; 0 = any free port. */
  port: number;
  /** How the API's MQTT client reaches the broker (URL, credentials, prefix). */
  mqtt: CliConfig;
  /** Dial the embedded broker in process instead of `mqtt.broker`. */
  streamBuilder?: () => Duplex;
  log: Logger;
  /** Token check for binds beyond loopback (controller/extensions/http-auth.ts); absent = no token store. */
  verifyToken?: VerifyToken;
  /** `--insecure`: no token needed beyond loopback. */
  insecure?: boolean;
  /**
   * Browser origins allowed beside Ollama's loopback defaults, comma-separated as OLLAMA_ORIGINS
   * (`--ollama-origins`; `*` = every origin); see cors.ts.
   */
  origins?: string;
}

export class OllamaApi {
  private server?: Server;
  private mesh?: MeshGateway;
  private readonly log: Logger;

  constructor(private readonly opts: OllamaApiOptions) {
    this.log = opts.log.child({ component: 'ollama-api' });
  }

  /** The port it listens on (after start). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** The MQTT client id it submits tasks with (after start). */
  get clientId(): string | undefined {
    return this.mesh?.clientId;
  }

  /**
   * Connects to the mesh, then listens.
   * @throws Error EADDRINUSE when the port is taken (often by a local Ollama: use --ollama-port).
   */
  async start(): Promise<void> {
    this.mesh = await MeshGateway.connect(this.opts.mqtt, this.log, this.opts.streamBuilder);
    const mesh = this.mesh;
    const auth = new HttpAuth({
      host: this.opts.host,
      insecure: this.opts.insecure ?? false,
      verify: this.opts.verifyToken,
      log: this.log,
      surface: 'Ollama API',
    });
    const cors = new CorsPolicy(this.opts.origins ?? '');
    // On loopback, Ollama's guard against DNS rebinding: only local Host names (host-check.ts).
    const checkHost = isLoopback(this.opts.host);
    this.server = createServer({ noDelay: true }, (req, res) => {
      // Says "this is the mesh, not an Ollama" to an agent probing this address (shared/ollama.ts).
      res.setHeader(MESH_API_HEADER, VERSION);
      if (checkHost && refuseForeignHost(req, res)) return;
      // CORS first: a browser's preflight carries no token.
      if (cors.handle(req, res)) return;
      if (!auth.required) return this.answer(req, res, mesh);
      // The token is checked on the thread pool (scrypt, once per token): the request waits for it.
      void allowed(auth, req, res, this.log).then((ok) => {
        if (ok && !res.destroyed) this.answer(req, res, mesh);
      });
    });
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port, this.opts.host, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    this.log.info({ host: this.opts.host, port: this.port }, 'Ollama-compatible API listening');
  }

  /** Answers one request that passed the host, CORS and token checks: Anthropic, OpenAI, then Ollama's native routes, else 404. */
  private answer(req: IncomingMessage, res: ServerResponse, mesh: MeshGateway): void {
    const abort = new AbortController();
    // The client went away before the answer was complete: cancel the task on its node.
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const path = (req.url ?? '/').split('?')[0];
    const t0 = performance.now();
    void (async () => {
      try {
        if (await handleAnthropic(req, res, path, mesh, abort.signal)) return;
        if (await handleOpenAi(req, res, path, mesh, abort.signal)) return;
        if (await handleNative(req, res, path, { mesh, signal: abort.signal })) return;
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('404 page not found');
      } catch (err) {
        const status = statusOf(err);
        if (status >= 500) this.log.warn({ path, err: errorMessage(err) }, 'request failed');
        if (!res.headersSent && !res.destroyed) sendJson(res, status, { error: errorMessage(err) });
        else if (!res.destroyed) res.end();
      } finally {
        this.log.debug(
          { method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - t0), aborted: abort.signal.aborted },
          'request',
        );
      }
    })();
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.mesh?.close();
  }
}
