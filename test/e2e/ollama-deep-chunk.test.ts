/**
 * Plan-14 F3: one `chunks` event with a 20,000-deep object, published on a running Ollama API
 * task's event topic, crashed `cutter server` (JSON.stringify's RangeError in the API relay, thrown
 * inside MQTT.js's packet handling = uncaught); on main before this fix the relay caught it and the
 * request broke off with `{"error":"Maximum call stack size exceeded"}`. Now the API's mesh client refuses it by its limits
 * before parsing, the relay's listener is guarded, and the server stays up; the HTTP request still
 * gets its answer (the real chunks that follow).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { OllamaDouble } from '../doubles/ollama.js';
import { eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

const t = topics('cutter');

describe('a 20,000-deep chunk on an Ollama API task does not crash the server (F3)', () => {
  let server: Daemon;
  let agent: Daemon;
  let api: string;
  let raw: mqtt.MqttClient;
  const double = new OllamaDouble({
    models: [{ name: 'qwen2:0.5b', size: 352_000_000, family: 'qwen2' }],
    loaded: ['qwen2:0.5b'],
    reply: () => Array.from({ length: 40 }, (_, i) => `w${i} `),
    tokenDelayMs: 50,
  });

  beforeAll(async () => {
    const [ollamaUrl, port] = await Promise.all([double.start(), freePort()]);
    let url: string;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    agent = await startAgent(url, 'box', ['--ollama-url', ollamaUrl]);
    raw = await mqtt.connectAsync(url, { clientId: 'f3-raw' });
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: unknown[] };
      return tags.models.length === 1;
    }, 20_000);
  }, 60_000);

  afterAll(async () => {
    await raw?.endAsync();
    await agent?.stop('SIGKILL');
    await server?.stop();
    await double.stop();
  });

  it('server stays up, the request is answered', async () => {
    const running = new Promise<{ taskId: string; attempt: number }>((resolve) => {
      raw.on('message', (_topic, payload) => {
        if (payload.length === 0) return;
        const s = JSON.parse(payload.toString()) as { taskId: string; state: string; attempt: number };
        if (s.state === 'running') resolve(s);
      });
    });
    await raw.subscribeAsync(t.allTaskState(), { qos: 1 });
    const answer = fetch(`${api}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'qwen2:0.5b', prompt: 'hi' }) });
    const { taskId, attempt } = await running;
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const chunks = `{"v":1,"taskId":"${taskId}","attempt":${attempt},"node":"box","seq":1000,"ts":${Date.now()},"type":"chunks","chunks":[${deep}]}`;
    await raw.publishAsync(t.taskEvents(taskId), chunks, { qos: 1 });
    const res = await answer;
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('w39');
    await new Promise((r) => setTimeout(r, 500));
    expect(server.child.exitCode).toBeNull();
    expect(server.child.signalCode).toBeNull();
    expect(server.lines.filter((l) => (l.level ?? 0) >= 60)).toEqual([]);
  }, 60_000);
});
