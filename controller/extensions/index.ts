/**
 * Starts the server's extensions in order — Home Assistant discovery, metrics, dashboard, HTTP —
 * from the server config, and stops them in reverse order.
 */
import { readFileSync } from 'node:fs';
import type { ServerConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { Dashboard } from './dashboard/dashboard.js';
import type { Extension, ExtensionContext } from './extension.js';
import { HomeAssistantExtension } from './ha/ha-extension.js';
import { HttpServer } from './http-server.js';
import { MetricsExtension } from './metrics.js';

export interface RunningExtensions {
  /** The HTTP server, when `httpPort` is not 0. */
  http?: HttpServer;
  stop(): Promise<void>;
}

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
 * Starts what the config asks for.
 * @throws the first extension's start error (the ones already started are stopped first).
 */
export async function startExtensions(ctx: ExtensionContext, cfg: ServerConfig): Promise<RunningExtensions> {
  const started: Extension[] = [];
  const stop = async () => {
    for (const ext of [...started].reverse()) {
      await ext.stop().catch((err: unknown) => ctx.log.warn({ extension: ext.name, err: errorMessage(err) }, 'extension stop failed'));
    }
  };
  let http: HttpServer | undefined;
  try {
    if (cfg.ha) {
      const ha = new HomeAssistantExtension(ctx, {
        haPrefix: cfg.haPrefix,
        removeAfterMs: cfg.haRemoveAfterMs,
        ...(cfg.haBroker ? { haBroker: { url: cfg.haBroker, caFile: cfg.haCaFile, ...haCredentials(cfg) } } : {}),
      });
      await ha.start();
      started.push(ha);
    } else if (cfg.haBroker) {
      ctx.log.warn('haBroker is set but Home Assistant discovery is off (--no-ha)');
    }
    if (cfg.httpPort !== 0) {
      const metrics = new MetricsExtension(ctx);
      await metrics.start();
      started.push(metrics);
      const dashboard = new Dashboard(ctx);
      await dashboard.start();
      started.push(dashboard);
      http = new HttpServer({ host: cfg.httpHost, port: cfg.httpPort, log: ctx.log, metrics, dashboard });
      await http.start();
      started.push(http);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { http, stop };
}
