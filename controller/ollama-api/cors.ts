/**
 * Cross-origin requests as Ollama answers them, so browser front-ends can call the mesh.
 *
 * Facts from ollama/ollama: `envconfig/config.go` `AllowedOrigins()` — the origins in
 * `OLLAMA_ORIGINS` (comma-separated) are added to the defaults `http(s)://localhost`,
 * `http(s)://127.0.0.1`, `http(s)://0.0.0.0`, each also with any port (`:*`), and `app://*`,
 * `file://*`, `tauri://*`, `vscode-webview://*`, `vscode-file://*`; `server/routes.go`
 * `GenerateRoutes` — gin-contrib/cors with `AllowWildcard` (one `*` in an origin matches any run
 * of characters; `*` alone allows every origin), `AllowBrowserExtensions` (chrome-extension://,
 * moz-extension://, safari-extension://, ms-browser-extension://) and the AllowHeaders list below.
 * gin-contrib/cors `DefaultConfig`/`applyCors`: a request without `Origin`, or whose Origin is the
 * server's own `http(s)://Host`, is not a CORS request; a disallowed Origin is answered 403; a
 * preflight (OPTIONS) is answered 204 with Allow-Methods, Allow-Headers and Max-Age (12 h); an
 * allowed origin is echoed in `Access-Control-Allow-Origin` (`*` when every origin is allowed),
 * with `Vary: Origin`.
 *
 * Here the extra origins come from `--ollama-origins` / `CUTTER_OLLAMA_ORIGINS` (same format as
 * OLLAMA_ORIGINS). The check runs before the token check: a browser's preflight carries no token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http.js';

/** Ollama's default origins (envconfig `AllowedOrigins`). */
export const DEFAULT_ORIGINS: readonly string[] = [
  ...['localhost', '127.0.0.1', '0.0.0.0'].flatMap((h) => [`http://${h}`, `https://${h}`, `http://${h}:*`, `https://${h}:*`]),
  'app://*',
  'file://*',
  'tauri://*',
  'vscode-webview://*',
  'vscode-file://*',
];

/**
 * Ollama's AllowHeaders (server/routes.go `GenerateRoutes`), the OpenAI SDKs' among them, plus the
 * headers the Anthropic SDK sends from a browser (`x-api-key`, `anthropic-version`,
 * `anthropic-beta`, `anthropic-dangerous-direct-browser-access`: its client code), so a front-end
 * may call the mesh's Messages API (./anthropic.ts) as it calls the OpenAI one.
 */
const ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'User-Agent',
  'Accept',
  'X-Requested-With',
  'OpenAI-Beta',
  'x-stainless-arch',
  'x-stainless-async',
  'x-stainless-custom-poll-interval',
  'x-stainless-helper-method',
  'x-stainless-lang',
  'x-stainless-os',
  'x-stainless-package-version',
  'x-stainless-poll-helper',
  'x-stainless-retry-count',
  'x-stainless-runtime',
  'x-stainless-runtime-version',
  'x-stainless-timeout',
  'x-api-key',
  'anthropic-version',
  'anthropic-beta',
  'anthropic-dangerous-direct-browser-access',
].join(',');

/** gin-contrib/cors DefaultConfig's AllowMethods. */
const ALLOW_METHODS = 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS';
const EXTENSION_SCHEMES = ['chrome-extension://', 'safari-extension://', 'moz-extension://', 'ms-browser-extension://'];
/** gin-contrib/cors DefaultConfig's MaxAge (12 h), seconds. */
const MAX_AGE_S = 12 * 3600;

/** Which origins may call the API; built once from the configured list. */
export class CorsPolicy {
  private readonly all: boolean;
  private readonly exact = new Set<string>();
  private readonly wild: { prefix: string; suffix: string }[] = [];

  /**
   * @param extra origins added to Ollama's defaults: a comma-separated string as OLLAMA_ORIGINS
   *   takes it (`https://app.example.com,http://192.168.1.*`), or a list; `*` allows every origin.
   */
  constructor(extra: string | readonly string[] = []) {
    const list = typeof extra === 'string' ? extra.split(',') : [...extra];
    const origins = [...list.map((o) => o.trim()).filter(Boolean), ...DEFAULT_ORIGINS];
    this.all = origins.includes('*');
    for (const o of origins) {
      const star = o.indexOf('*');
      if (star < 0) this.exact.add(o);
      else this.wild.push({ prefix: o.slice(0, star), suffix: o.slice(star + 1) });
    }
  }

  /** True when a browser page of `origin` may call the API. */
  allows(origin: string): boolean {
    if (this.all || this.exact.has(origin)) return true;
    if (EXTENSION_SCHEMES.some((s) => origin.startsWith(s))) return true;
    return this.wild.some(
      (w) => origin.length >= w.prefix.length + w.suffix.length && origin.startsWith(w.prefix) && origin.endsWith(w.suffix),
    );
  }

  /**
   * Applies the policy to one request: sets the CORS headers of an allowed origin on `res`, and
   * answers a preflight (204) or a disallowed origin (403 `{"error"}`) itself.
   * @returns true when the request is answered here (the caller does nothing more).
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (!origin) return false;
    const host = req.headers.host ?? '';
    if (origin === `http://${host}` || origin === `https://${host}`) return false;
    if (!this.allows(origin)) {
      sendJson(res, 403, { error: `origin ${origin.slice(0, 200)} is not allowed (add it with --ollama-origins)` });
      return true;
    }
    res.setHeader('Vary', 'Origin');
    res.setHeader('Access-Control-Allow-Origin', this.all ? '*' : origin);
    if (req.method !== 'OPTIONS') return false;
    res.setHeader('Access-Control-Allow-Methods', ALLOW_METHODS);
    res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
    res.setHeader('Access-Control-Max-Age', String(MAX_AGE_S));
    res.writeHead(204);
    res.end();
    return true;
  }
}
