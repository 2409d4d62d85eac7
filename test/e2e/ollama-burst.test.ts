/**
 * Ollama routing under load (issue 14), end to end: `cutter server` with its Ollama-compatible API,
 * three `cutter agent`s (at most 2 tasks each) beside Ollama doubles (test/doubles/ollama.ts), the
 * model on two of them. 12 concurrent /api/generate requests from the official `ollama` client
 * must all succeed: the burst queues behind the two nodes that have the model instead of spilling
 * to the node without it, where Ollama would answer 404.
 */
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaDouble } from '../doubles/ollama.js';
import { eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

const MODEL = 'qwen2:0.5b';
const qwen = { name: MODEL, size: 352_000_000, family: 'qwen2', parameterSize: '494M', quantization: 'Q4_0' };
const phi = { name: 'phi3:latest', size: 2_200_000_000, family: 'phi3', parameterSize: '3.8B', quantization: 'Q4_0' };

describe('Ollama burst over nodes of which only some have the model', () => {
  let server: Daemon;
  let api: string;
  const agents: Daemon[] = [];
  // Slow enough that requests overlap: each answer streams 6 tokens 40 ms apart.
  const reply = () => ['one ', 'two ', 'three ', 'four ', 'five ', 'six'];
  const doubles = {
    a: new OllamaDouble({ models: [qwen], loaded: [MODEL], reply, tokenDelayMs: 40 }),
    b: new OllamaDouble({ models: [qwen, phi], reply, tokenDelayMs: 40 }),
    c: new OllamaDouble({ models: [phi], loaded: ['phi3:latest'], reply, tokenDelayMs: 40 }),
  };

  beforeAll(async () => {
    const [aUrl, bUrl, cUrl, port] = await Promise.all([doubles.a.start(), doubles.b.start(), doubles.c.start(), freePort()]);
    let url: string;
    ({ daemon: server, url } = await startServer(['--ollama-port', String(port)]));
    await server.waitForMsg('Ollama-compatible API listening');
    api = `http://127.0.0.1:${port}`;
    agents.push(
      ...(await Promise.all([
        startAgent(url, 'burst-a', ['--max-tasks', '2', '--ollama-url', aUrl]),
        startAgent(url, 'burst-b', ['--max-tasks', '2', '--ollama-url', bUrl]),
        startAgent(url, 'burst-c', ['--max-tasks', '2', '--ollama-url', cUrl]),
      ])),
    );
    await eventually(async () => {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: { name: string }[] };
      return tags.models.length === 2;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await server?.stop();
    await Promise.all(Object.values(doubles).map((d) => d.stop()));
  });

  const generates = (d: OllamaDouble) => d.requests.filter((r) => r.path === '/api/generate');
  const inFlight = (d: OllamaDouble) => generates(d).filter((r) => !r.finished && !r.aborted).length;

  it('12 concurrent /api/generate: 12 answers, no 404, none on the node without the model, at most 2 at once per node', async () => {
    const most = { a: 0, b: 0 };
    const sampler = setInterval(() => {
      most.a = Math.max(most.a, inFlight(doubles.a));
      most.b = Math.max(most.b, inFlight(doubles.b));
    }, 5);
    const client = new Ollama({ host: api });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => client.generate({ model: MODEL, prompt: `request ${i}`, stream: false })),
    ).finally(() => clearInterval(sampler));

    const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    for (const r of results) expect(r.status === 'fulfilled' && r.value.response).toBe('one two three four five six');
    expect(generates(doubles.c)).toHaveLength(0);
    expect(generates(doubles.a).length + generates(doubles.b).length).toBe(12);
    // Both holders served (the burst was spread), neither beyond its task limit.
    expect(generates(doubles.a).length).toBeGreaterThan(0);
    expect(generates(doubles.b).length).toBeGreaterThan(0);
    expect(most.a).toBeLessThanOrEqual(2);
    expect(most.b).toBeLessThanOrEqual(2);
  }, 60_000);
});
