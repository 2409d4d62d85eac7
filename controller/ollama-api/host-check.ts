/**
 * The Host-header check Ollama makes against DNS rebinding (ollama/ollama `server/routes.go`
 * `allowedHostsMiddleware`, `allowedHost`, `isLocalIP`): when the API listens on loopback, a
 * request whose `Host` names anything other than a local address or name is refused with 403 — a
 * web page on `evil.example` whose DNS then points at 127.0.0.1 sends `Host: evil.example`, and so
 * cannot reach the open loopback API through the victim's browser. Bound beyond loopback the check
 * is off (there the token check applies).
 *
 * Allowed, as Ollama: no Host; `localhost`; this machine's hostname; names under `.localhost`,
 * `.local`, `.internal`; IP literals that are loopback (127.0.0.0/8, ::1), private (10/8,
 * 172.16/12, 192.168/16, fc00::/7), unspecified (0.0.0.0, ::) or an address of one of this
 * machine's interfaces. Ollama answers 403 with no body; here the body says why.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { sendJson } from './http.js';

/** The host part of a Host header (`[::1]:11434` → `::1`, `Example.COM:80` → `example.com`). */
export function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** True for loopback, private, unspecified IPv4/IPv6 literals (Go's netip IsLoopback/IsPrivate/IsUnspecified). */
function localIpLiteral(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a, b] = ip.split('.').map(Number);
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || ip === '0.0.0.0';
  }
  const v6 = ip.replace(/^::ffff:/, '');
  if (v6 !== ip && isIP(v6) === 4) return localIpLiteral(v6);
  return ip === '::1' || ip === '::' || /^f[cd][0-9a-f]{0,2}:/.test(ip);
}

/** True for an address of one of this machine's network interfaces. */
function interfaceAddress(ip: string): boolean {
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.address.toLowerCase() === ip));
}

/** True when a request with this Host header may reach a loopback-bound API (Ollama's rule). */
export function allowedHost(header: string | undefined): boolean {
  if (!header) return true;
  const host = hostOf(header);
  if (!host || host === 'localhost') return true;
  if (isIP(host)) return localIpLiteral(host) || interfaceAddress(host);
  if (host === hostname().toLowerCase()) return true;
  return ['.localhost', '.local', '.internal'].some((tld) => host.endsWith(tld));
}

/**
 * Applies the check to one request of an API bound to loopback.
 * @returns true when the request was refused here (403 with a JSON error saying why and what to do).
 */
export function refuseForeignHost(req: IncomingMessage, res: ServerResponse): boolean {
  if (allowedHost(req.headers.host)) return false;
  sendJson(res, 403, {
    error: `host ${String(req.headers.host).slice(0, 200)} is not allowed: this API listens on loopback and answers only requests addressed to a local name or address (a guard against DNS rebinding, as Ollama's). Use http://127.0.0.1:PORT or http://localhost:PORT, or bind the API beyond loopback with --ollama-host`,
  });
  return true;
}
