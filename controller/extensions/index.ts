/**
 * The server's extensions, built from its config in the order they start — file-transfer audit,
 * port proxy, Home Assistant discovery, metrics, dashboard, HTTP, then (once the broker listens)
 * the Ollama-compatible API — and stopped in reverse order. One that fails to start is logged
 * with its stack and left out; the server runs on without it (and without what requires it).
 */
import { readFileSync } from 'node:fs';
import type { ServerConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { Dashboard } from './dashboard/dashboard.js';
import type { Extension, ExtensionContext } from './extension.js';
import { HomeAssistantExtension } from './ha/ha-extension.js';
import { HttpServer } from './http-server.js';
import { FileAuditExtension, PortProxyExtension } from './mesh-parts.js';
import { MetricsExtension } from './metrics.js';
import { OllamaApiExtension } from './ollama-api.js';

/**
 * Credentials for `--ha-broker`: `haUsername`/`haPassword`, or `haTokenFile` (`{"username", "password"}`).
 * @throws CutterError INVALID_CONFIG when the token file cannot be read.
 */
export function haCredentials(cfg: ServerConfig): { username?: string; password?: string } {
  if (!cfg.haTokenFile) return { username: cfg.haUsername, password: cfg.haPassword };
  try {
    const creds = JSON.parse(readFileSync(cfg.haTokenFile, 'utf8')) as { username?: unknown; password?: unknown };
    if (typeof creds.username !== 'string' || typeof creds.password !== 'string') throw new Error('expected {"username", "password"}');
    return { username: creds.username, password: creds.password };
  } catch (err) {
    throw new CutterError('INVALID_CONFIG', `invalid config: haTokenFile = "${cfg.haTokenFile}": ${errorMessage(err)}`);
  }
}

/**
 * The extensions the config asks for, in start order (nothing is started).
 * @throws CutterError INVALID_CONFIG for settings only readable now (a bad `haTokenFile`): the server does not start.
 */
export function buildExtensions(ctx: ExtensionContext, cfg: ServerConfig): Extension[] {
  const list: Extension[] = [];
  if (ctx.audit) list.push(new FileAuditExtension(ctx, ctx.audit));
  list.push(new PortProxyExtension(ctx, cfg.forwardHost, cfg.forwardTrustAnnounced));
  if (cfg.ha) {
    list.push(
      new HomeAssistantExtension(ctx, {
        haPrefix: cfg.haPrefix,
        removeAfterMs: cfg.haRemoveAfterMs,
        ...(cfg.haBroker ? { haBroker: { url: cfg.haBroker, caFile: cfg.haCaFile, ...haCredentials(cfg) } } : {}),
      }),
    );
  } else if (cfg.haBroker) {
    ctx.log.warn('haBroker is set but Home Assistant discovery is off (--no-ha)');
  }
  if (cfg.httpPort !== 0) {
    const metrics = new MetricsExtension(ctx);
    const dashboard = new Dashboard(ctx);
    list.push(
      metrics,
      dashboard,
      new HttpServer({
        host: cfg.httpHost,
        port: cfg.httpPort,
        log: ctx.log,
        metrics,
        dashboard,
        verifyToken: ctx.verifyToken,
        insecure: ctx.insecure,
      }),
    );
  }
  if (cfg.ollamaApi)
    list.push(
      new OllamaApiExtension(ctx, { host: cfg.ollamaHost, port: cfg.ollamaPort, origins: cfg.ollamaOrigins, logLevel: cfg.logLevel }),
    );
  return list;
}

/** Starts and stops a list of extensions; one failing never stops the others. */
export class ExtensionRunner {
  private readonly running: Extension[] = [];
  private readonly failed = new Set<string>();

  constructor(
    readonly extensions: readonly Extension[],
    private readonly log: Logger,
  ) {}

  /** The started extension of this class, if it runs. */
  get<T extends Extension>(type: abstract new (...args: never[]) => T): T | undefined {
    return this.running.find((e): e is T => e instanceof type);
  }

  /** Names of the extensions running now, in start order. */
  get names(): string[] {
    return this.running.map((e) => e.name);
  }

  /**
   * Starts, in list order, the extensions of this phase (`afterListen` or not). One that throws is
   * logged with its stack (`err`), stopped (it may be half started) and left out; so is one that
   * requires a failed one. Never throws.
   */
  async start(phase: { afterListen: boolean }): Promise<void> {
    for (const ext of this.extensions) {
      if (Boolean(ext.afterListen) !== phase.afterListen) continue;
      const missing = ext.requires?.filter((name) => this.failed.has(name)) ?? [];
      if (missing.length > 0) {
        this.failed.add(ext.name);
        this.log.error({ extension: ext.name, requires: missing }, `extension ${ext.name} not started: ${missing.join(', ')} failed`);
        continue;
      }
      try {
        await ext.start();
        this.running.push(ext);
      } catch (err) {
        this.failed.add(ext.name);
        this.log.error({ err, extension: ext.name }, `extension ${ext.name} not started: ${errorMessage(err)}`);
        await ext.stop().catch((stopErr: unknown) => this.log.warn({ err: stopErr, extension: ext.name }, 'extension stop failed'));
      }
    }
  }

  /** Stops the running extensions in reverse start order; a failing stop is logged. Never throws. */
  async stop(): Promise<void> {
    while (this.running.length > 0) {
      const ext = this.running.pop()!;
      await ext.stop().catch((err: unknown) => this.log.warn({ err, extension: ext.name }, 'extension stop failed'));
    }
  }
}
