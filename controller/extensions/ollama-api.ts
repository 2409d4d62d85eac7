/**
 * The Ollama-compatible HTTP API (controller/ollama-api/server.ts) as an extension: it submits
 * tasks with the controller's own broker credentials, and its client id is exempt from the
 * per-identity submit rate limit (it submits for every HTTP caller). It starts after the broker
 * listens, the last part of the server.
 */
import type { Logger } from '../../shared/logger.js';
import type { Extension, ExtensionContext } from './extension.js';

export interface OllamaApiSettings {
  /** Address it binds (loopback by default: it has no authentication). */
  host: string;
  /** TCP port; 0 = any free port. */
  port: number;
  /** Browser origins allowed beside Ollama's loopback defaults, comma-separated (controller/ollama-api/cors.ts). */
  origins?: string;
  /** Level of its MQTT client's logs. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** The API's own surface, as this adapter uses it (controller/ollama-api/server.ts's OllamaApi). */
interface OllamaApiLike {
  readonly port: number;
  readonly clientId: string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class OllamaApiExtension implements Extension {
  readonly name = 'ollama-api';
  readonly afterListen = true;
  private api?: OllamaApiLike;
  private readonly log: Logger;

  constructor(
    private readonly ctx: ExtensionContext,
    private readonly settings: OllamaApiSettings,
  ) {
    this.log = ctx.log;
  }

  /** The port it listens on (0 before it started). */
  get port(): number {
    return this.api?.port ?? 0;
  }

  /**
   * Connects to the mesh and listens.
   * @throws Error naming the address and `--ollama-port` when the port is taken (a local Ollama often holds 11434).
   */
  async start(): Promise<void> {
    // Loaded here: a server without the API does not pay for it.
    const { OllamaApi } = await import('../ollama-api/server.js');
    const { host, port, logLevel, origins } = this.settings;
    this.api = new OllamaApi({
      host,
      port,
      origins,
      log: this.log,
      streamBuilder: this.ctx.streamBuilder,
      verifyToken: this.ctx.verifyToken,
      insecure: this.ctx.insecure ?? false,
      mqtt: {
        broker: this.ctx.brokerUrl,
        prefix: this.ctx.prefix,
        logLevel,
        username: this.ctx.username,
        password: this.ctx.password,
        timeoutMs: 10_000,
      },
    });
    try {
      await this.api.start();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      throw new Error(`${host}:${port} is taken (an Ollama on this machine? use --ollama-port)`, { cause: err });
    }
    const clientId = this.api.clientId;
    if (clientId) this.ctx.exemptFromRateLimit(clientId);
  }

  async stop(): Promise<void> {
    await this.api?.stop();
    this.api = undefined;
  }
}
