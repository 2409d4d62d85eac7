/**
 * HTTP surfaces bound beyond loopback need a cutter token (plan-14 §8): the dashboard's /metrics
 * and /api/state and the Ollama API answer 401 with a JSON error without one, 200 with
 * `Authorization: Bearer ROLE:NAME:PASSWORD` (or Basic); /healthz stays open; agent tokens are refused;
 * a revoked token is refused from the next request on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, describeEmbeddedBroker, freePort, startServer, type Daemon } from '../harness.js';

describeEmbeddedBroker('HTTP beyond loopback needs a token', () => {
  let server: Daemon;
  let http: string;
  let api: string;
  let admin: string;
  let agentToken: string;
  let url: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const [httpPort, ollamaPort] = await Promise.all([freePort(), freePort()]);
    const s = await startServer(
      ['--http-host', '0.0.0.0', '--http-port', String(httpPort), '--ollama-host', '0.0.0.0', '--ollama-port', String(ollamaPort)],
      { secure: true },
    );
    server = s.daemon;
    await server.waitForMsg('Ollama-compatible API listening');
    http = `http://127.0.0.1:${httpPort}`;
    api = `http://127.0.0.1:${ollamaPort}`;
    const a = JSON.parse(readFileSync(join(s.dataDir, 'admin.json'), 'utf8')) as { username: string; password: string };
    admin = `${a.username}:${a.password}`;
    url = s.url;
    env = { CUTTER_TOKEN_FILE: join(s.dataDir, 'admin.json') };
    const r = await cli(['token', 'create', '--role', 'agent', '--node', 'n1', '--json'], { broker: s.url, env });
    expect(r.code, r.stderr).toBe(0);
    const t = JSON.parse(r.stdout) as { username: string; password: string };
    agentToken = `${t.username}:${t.password}`;
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('refuses /metrics, /api/state and the Ollama API without a token, with a JSON error naming the fix', async () => {
    for (const url of [`${http}/metrics`, `${http}/api/state`, `${api}/api/tags`, `${api}/v1/models`]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(401);
      const body = (await res.json()) as { error: string };
      expect(body.error).toMatch(/^unauthorized: no Authorization header\. .*Bearer ROLE:NAME:PASSWORD.*--insecure/);
    }
    const wrong = await fetch(`${api}/api/tags`, { headers: { authorization: 'Bearer admin:local:nope' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/unknown, revoked or wrong token/);
    const agent = await fetch(`${http}/metrics`, { headers: { authorization: `Bearer ${agentToken}` } });
    expect(agent.status).toBe(401);
  });

  it('answers with a Bearer or Basic token; /healthz stays open', async () => {
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
    const bearer = { authorization: `Bearer ${admin}` };
    const m = await fetch(`${http}/metrics`, { headers: bearer });
    expect(m.status).toBe(200);
    // The six refusals of the test before are counted (and logged once, rate-limited).
    expect(await m.text()).toMatch(/^cutter_input_rejected_total\{kind="http-unauthorized"\} 6$/m);
    expect(server.lines.filter((l) => l.msg === 'http request refused: no valid token').length).toBeLessThanOrEqual(2);
    expect((await fetch(`${api}/api/tags`, { headers: bearer })).status).toBe(200);
    const basic = { authorization: `Basic ${Buffer.from(admin).toString('base64')}` };
    expect((await fetch(`${http}/api/state`, { headers: basic })).status).toBe(200);
  });

  it('refuses a token from the request after its revocation on', async () => {
    const created = await cli(['token', 'create', '--role', 'observer', '--name', 'dash', '--json'], { broker: url, env });
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout) as { username: string; password: string };
    const bearer = { authorization: `Bearer ${t.username}:${t.password}` };
    expect((await fetch(`${http}/metrics`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${api}/api/tags`, { headers: bearer })).status).toBe(200);
    const revoked = await cli(['token', 'revoke', t.username], { broker: url, env });
    expect(revoked.code, revoked.stderr).toBe(0);
    for (const u of [`${http}/metrics`, `${api}/api/tags`]) {
      const res = await fetch(u, { headers: bearer });
      expect(res.status, u).toBe(401);
      expect(((await res.json()) as { error: string }).error).toMatch(/unknown, revoked or wrong token/);
    }
  });
});
