/**
 * Ollama's Host-header rule against DNS rebinding (server/routes.go `allowedHostsMiddleware`), as
 * the loopback-bound API applies it (controller/ollama-api/host-check.ts).
 */
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { allowedHost, hostOf } from '../../controller/ollama-api/host-check.js';

describe('Host check of the loopback Ollama API', () => {
  it('reads the host out of a Host header, IPv6 brackets and ports too', () => {
    expect(hostOf('127.0.0.1:11434')).toBe('127.0.0.1');
    expect(hostOf('[::1]:11434')).toBe('::1');
    expect(hostOf('Evil.Example')).toBe('evil.example');
  });

  it('lets local names and addresses through', () => {
    for (const h of [
      undefined,
      'localhost:11434',
      '127.0.0.1:11434',
      '127.8.9.1',
      '[::1]:11434',
      '0.0.0.0:11434',
      '10.1.2.3',
      '172.20.0.1:80',
      '192.168.1.5:11434',
      '[fd00::1]:11434',
      'app.localhost',
      'nas.local:11434',
      'host.docker.internal:11434',
      hostname(),
    ])
      expect(allowedHost(h), String(h)).toBe(true);
  });

  it('refuses public names and addresses (a rebinding page sends its own name)', () => {
    for (const h of ['evil.example', 'evil.example:11434', '8.8.8.8', '172.32.0.1', '[2001:db8::1]:11434', 'localhost.evil.example'])
      expect(allowedHost(h), h).toBe(false);
  });
});
