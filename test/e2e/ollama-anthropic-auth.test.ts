/**
 * The Anthropic API key beyond loopback (issue 22): with the Ollama-compatible API bound to
 * 0.0.0.0 on a secured server, the official Anthropic client is answered when its API key is a
 * cutter token, sent as `x-api-key` (`apiKey`, what Claude Code's ANTHROPIC_API_KEY sends) or as
 * `Authorization: Bearer` (`authToken`, ANTHROPIC_AUTH_TOKEN), and refused with Anthropic's 401
 * body (`authentication_error`) otherwise. The node's Ollama is the documented double
 * (test/doubles/ollama.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { cli, describeEmbeddedBroker, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

type Creds = { username: string; password: string };

describeEmbeddedBroker('Anthropic API key beyond loopback', () => {
  let server: Daemon;
  let agent: Daemon;
  let api: string;
  let observer: string;
  let agentToken: string;
  const ollama = new OllamaDouble({ models: [{ name: 'gemma2:2b', size: 1_600_000_000 }], predictAsLimit: true });
  const ask = { model: 'gemma2:2b', max_tokens: 32, messages: [{ role: 'user' as const, content: 'hello there' }] };

  beforeAll(async () => {
    const [ollamaUrl, port] = await Promise.all([ollama.start(), freePort()]);
    const s = await startServer(['--ollama-host', '0.0.0.0', '--ollama-port', String(port)], { secure: true });
    server = s.daemon;
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    const env = { CUTTER_TOKEN_FILE: join(s.dataDir, 'admin.json') };
    const token = async (args: string[]) => {
      const r = await cli(['token', 'create', ...args, '--json'], { broker: s.url, env });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Creds;
    };
    const o = await token(['--role', 'observer', '--name', 'claude']);
    observer = `${o.username}:${o.password}`;
    const a = await token(['--role', 'agent', '--node', 'pi']);
    agentToken = `${a.username}:${a.password}`;
    agent = await startAgent(s.url, 'pi', ['--max-memory', '4g', '--ollama-url', ollamaUrl], {
      CUTTER_USERNAME: a.username,
      CUTTER_PASSWORD: a.password,
    });
    const admin = JSON.parse(readFileSync(join(s.dataDir, 'admin.json'), 'utf8')) as Creds;
    const bearer = { authorization: `Bearer ${admin.username}:${admin.password}` };
    await eventually(
      async () => ((await (await fetch(`${api}/api/tags`, { headers: bearer })).json()) as { models: unknown[] }).models.length === 1,
    );
  }, 60_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop();
    await ollama.stop();
  });

  it('answers with the cutter token as x-api-key and as Authorization: Bearer', async () => {
    const viaKey = await new Anthropic({ baseURL: api, apiKey: observer, maxRetries: 0 }).messages.create(ask);
    expect(viaKey.content).toEqual([{ type: 'text', text: 'echo: hello there' }]);
    const viaBearer = await new Anthropic({ baseURL: api, apiKey: null, authToken: observer, maxRetries: 0 }).messages.create(ask);
    expect(viaBearer.content).toEqual([{ type: 'text', text: 'echo: hello there' }]);
    const count = await new Anthropic({ baseURL: api, apiKey: observer, maxRetries: 0 }).messages.countTokens(ask);
    expect(count.input_tokens).toBeGreaterThan(0);
  });

  it("refuses a missing, wrong or agent key with Anthropic's 401 authentication_error, naming the fix", async () => {
    for (const key of ['ollama', `${observer}x`, agentToken]) {
      const err = await new Anthropic({ baseURL: api, apiKey: key, maxRetries: 0 }).messages.create(ask).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(Anthropic.AuthenticationError);
      expect((err as Anthropic.APIError).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
      expect((err as Anthropic.APIError).error).toMatchObject({
        error: { message: expect.stringMatching(/cutter token ROLE:NAME:PASSWORD/) },
      });
    }
    const none = await fetch(`${api}/v1/messages`, { method: 'POST', body: JSON.stringify(ask) });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: expect.stringMatching(/^unauthorized: no x-api-key or Authorization header/) },
    });
    // The other routes keep their own 401 body, and take the key as x-api-key too.
    expect((await fetch(`${api}/api/tags`)).status).toBe(401);
    expect((await fetch(`${api}/api/tags`, { headers: { 'x-api-key': observer } })).status).toBe(200);
  });
});
