/**
 * Token checks for the server's HTTP surfaces (the dashboard, `/api/state`, `/events`, `/metrics`,
 * the Ollama-compatible API). Bound to loopback (127.0.0.0/8, ::1, localhost) or with
 * `--insecure`, they stay open as before; bound beyond loopback, every request needs a cutter
 * token: `Authorization: Bearer ROLE:NAME:PASSWORD` (Ollama and OpenAI clients send their API key
 * so, https://platform.openai.com/docs/api-reference/authentication) or `Basic` (browsers; user
 * `ROLE:NAME`, the token's password). Agent tokens are refused: an agent's token is worth one node.
 * Each request is checked by the token store (broker/identities.ts `verifyAsync`): scrypt runs once
 * per token, on the thread pool, and a revoked token is refused from the next request on.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logger.js';
import { warnLimiter } from '../../shared/warn-limiter.js';

/** Who a token names (broker/identities.ts `Identity`). */
export interface HttpIdentity {
  username: string;
  role: string;
}

/** Checks a username and password (broker/identities.ts `IdentityStore.verifyAsync`); never rejects. */
export type VerifyToken = (username: string, password: string) => Promise<HttpIdentity | null>;

export interface HttpAuthOptions {
  /** The address the surface binds. */
  host: string;
  /** `--insecure`: no token needed anywhere. */
  insecure: boolean;
  /** The token store; absent with an external broker (then a non-loopback bind refuses every request). */
  verify?: VerifyToken;
  log: Logger;
  /** The surface's name in messages, e.g. `dashboard` or `Ollama API`. */
  surface: string;
}

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

export class HttpAuth {
  /** True when requests need a token (bound beyond loopback, not `--insecure`). */
  readonly required: boolean;

  constructor(private readonly opts: HttpAuthOptions) {
    this.required = !opts.insecure && !isLoopback(opts.host);
  }

  /**
   * Lets the request through (true) or answers it with 401 and a JSON `{"error"}` (false). Callers
   * skip it when `required` is false (it would answer true).
   * Failures are logged rate-limited (one line per 10 s with a count).
   */
  async allow(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (!this.required) return true;
    const why = await this.check(req.headers.authorization);
    if (why === null) return true;
    warnLimiter(this.opts.log).warn(
      'http-unauthorized',
      { surface: this.opts.surface, remote: req.socket.remoteAddress, reason: why },
      'http request refused: no valid token',
    );
    const body = JSON.stringify({
      error: `unauthorized: ${why}. The ${this.opts.surface} listens on ${this.opts.host} (beyond loopback), so it needs a cutter token: send "Authorization: Bearer ROLE:NAME:PASSWORD" (cutter token create --role observer --name me), or bind it to 127.0.0.1, or start the server with --insecure`,
    });
    if (res.destroyed) return false;
    res.writeHead(401, {
      'content-type': 'application/json; charset=utf-8',
      'www-authenticate': 'Basic realm="cutter", charset="UTF-8"',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return false;
  }

  /** @returns null when the header carries a valid non-agent token, else why not. */
  async check(header: string | undefined): Promise<string | null> {
    if (!header) return 'no Authorization header';
    const m = /^(Bearer|Basic)\s+(\S{1,1024})$/i.exec(header.trim());
    if (!m) return 'Authorization is not "Bearer <token>" or "Basic <credentials>"';
    const secret = m[1].toLowerCase() === 'basic' ? Buffer.from(m[2], 'base64').toString('utf8') : m[2];
    if (!this.opts.verify) return 'this server has no token store (external broker)';
    const at = secret.lastIndexOf(':');
    if (at <= 0) return 'the token is not ROLE:NAME:PASSWORD';
    const identity = await this.opts.verify(secret.slice(0, at), secret.slice(at + 1));
    if (!identity) return 'unknown, revoked or wrong token';
    return identity.role === 'agent' ? 'agent tokens are not accepted here' : null;
  }
}
