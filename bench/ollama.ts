/**
 * The Ollama-compatible API's cost: the official `ollama` npm client straight at a node's Ollama
 * versus the same client at the server's API (server → controller → agent → that Ollama and
 * back), in the same run. Real Ollama cannot run here, so the node's Ollama is the double from
 * test/doubles/ollama.ts (it follows Ollama's documented NDJSON streaming); what is measured is
 * what cutter adds, which does not depend on how fast the model is.
 *
 * - time to first token: a streamed generate, request sent → first chunk received (median, p95);
 * - per-chunk latency: each chunk carries the double's send time (`sent_at_ms`); latency is
 *   receive − send, for a stream of tokens 5 ms apart (a fast model, 200 tokens/s);
 * - throughput: chunks/s of one stream the double writes as fast as the socket takes them.
 * Targets (issue 18, ../shared/design.md): at most 3 ms added to the first token, at most 0.5 ms
 * added per chunk, and at least 0.95× the direct stream's chunks/s through the mesh.
 *
 * `npm run bench` includes it in bench/results.md; `node dist/bench/ollama.js` runs it alone and prints it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import { OllamaDouble } from '../test/doubles/ollama.js';
import { freePort, startDaemon } from '../scripts/procs.js';

/** Sizes: time-to-first-token runs, tokens of the paced stream, chunks of the unpaced one. */
export interface OllamaBenchSizes {
  ttftRuns: number;
  pacedTokens: number;
  floodTokens: number;
}
export const FULL_SIZES: OllamaBenchSizes = {
  ttftRuns: Number(process.env.BENCH_TTFT_RUNS ?? 60),
  pacedTokens: Number(process.env.BENCH_PACED_TOKENS ?? 400),
  floodTokens: Number(process.env.BENCH_FLOOD_TOKENS ?? 50_000),
};

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const median = (xs: number[]) => quantile(xs, 0.5);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const now = () => performance.timeOrigin + performance.now();
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Time to the first streamed chunk of a generate, ms. */
async function ttft(host: string, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const client = new Ollama({ host });
    const t0 = now();
    const stream = await client.generate({ model: 'bench:latest', prompt: `hello ${i}`, stream: true, options: { num_predict: 3 } });
    let first = true;
    for await (const _ of stream) {
      if (first) out.push(now() - t0);
      first = false;
    }
  }
  return out;
}

/** Per-chunk latency (receive − the double's send time), ms, of one paced stream. */
async function chunkLatency(host: string, tokens: number): Promise<number[]> {
  const out: number[] = [];
  const stream = await new Ollama({ host }).generate({
    model: 'bench:latest',
    prompt: 'paced',
    stream: true,
    options: { num_predict: tokens },
  });
  for await (const part of stream) {
    const sent = (part as unknown as { sent_at_ms?: number }).sent_at_ms;
    if (typeof sent === 'number') out.push(now() - sent);
  }
  return out;
}

/** Chunks per second of one unpaced stream. */
async function throughput(host: string, tokens: number): Promise<{ chunksPerSec: number; chunks: number; ms: number }> {
  const t0 = now();
  let n = 0;
  for await (const _ of await new Ollama({ host }).generate({
    model: 'bench:latest',
    prompt: 'flood',
    stream: true,
    options: { num_predict: tokens },
  }))
    n++;
  const ms = now() - t0;
  return { chunksPerSec: (n / ms) * 1000, chunks: n, ms };
}

export interface OllamaBench {
  ttft: {
    directMedianMs: number;
    meshMedianMs: number;
    directP95Ms: number;
    meshP95Ms: number;
    addedMs: number;
    ratio: number;
    runs: number;
  };
  chunk: { directMeanMs: number; meshMeanMs: number; directP99Ms: number; meshP99Ms: number; addedMs: number; tokens: number };
  throughput: { directChunksPerSec: number; meshChunksPerSec: number; ratio: number; tokens: number };
  targets: { name: string; target: string; measured: string; met: boolean }[];
}

/** Starts server + agent + double, measures, stops them. */
export async function benchOllama({
  ttftRuns: TTFT_RUNS,
  pacedTokens: PACED_TOKENS,
  floodTokens: FLOOD_TOKENS,
}: OllamaBenchSizes = FULL_SIZES): Promise<OllamaBench> {
  const children: ChildProcess[] = [];
  const paced = new OllamaDouble({
    models: [{ name: 'bench:latest', size: 1_000_000 }],
    loaded: ['bench:latest'],
    stamp: true,
    tokenDelayMs: 5,
    reply: () => ['tok '],
  });
  const fast = new OllamaDouble({
    models: [{ name: 'bench:latest', size: 1_000_000 }],
    loaded: ['bench:latest'],
    stamp: true,
    reply: () => ['tok '],
  });
  try {
    const [pacedUrl, fastUrl, port, apiPort] = await Promise.all([paced.start(), fast.start(), freePort(), freePort()]);
    const dataDir = mkdtempSync(join(tmpdir(), 'cutter-bench-ollama-'));
    const env = { ...process.env, XDG_CONFIG_HOME: dataDir, CUTTER_LOG_LEVEL: 'warn' };
    children.push(
      await startDaemon(
        [
          'server',
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--insecure',
          '--data-dir',
          dataDir,
          '--ollama-port',
          String(apiPort),
          '--log-level',
          'info',
        ],
        'Ollama-compatible API listening',
        env,
      ),
    );
    const broker = `mqtt://127.0.0.1:${port}`;
    children.push(
      await startDaemon(
        ['agent', '--broker', broker, '--node-id', 'paced', '--ollama-url', pacedUrl, '--max-tasks', '64', '--log-level', 'info'],
        'agent started',
        env,
      ),
    );
    const api = `http://127.0.0.1:${apiPort}`;
    // Wait until the API sees the node's model.
    for (let i = 0; ; i++) {
      const tags = (await (await fetch(`${api}/api/tags`)).json()) as { models: unknown[] };
      if (tags.models.length > 0) break;
      if (i > 100) throw new Error('the API never listed the node’s model');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Warm both paths (JIT, connections), then interleave direct and mesh runs.
    await ttft(pacedUrl, 5);
    await ttft(api, 5);
    const direct: number[] = [];
    const mesh: number[] = [];
    for (let i = 0; i < Math.ceil(TTFT_RUNS / 10); i++) {
      direct.push(...(await ttft(pacedUrl, Math.min(10, TTFT_RUNS))));
      mesh.push(...(await ttft(api, Math.min(10, TTFT_RUNS))));
    }
    const chunkDirect = await chunkLatency(pacedUrl, PACED_TOKENS);
    const chunkMesh = await chunkLatency(api, PACED_TOKENS);

    // Throughput: a second agent beside the unpaced double.
    children.push(
      await startDaemon(
        ['agent', '--broker', broker, '--node-id', 'fast', '--ollama-url', fastUrl, '--log-level', 'info'],
        'agent started',
        env,
      ),
    );
    await new Promise((r) => setTimeout(r, 1_500));
    const tDirect = await throughput(fastUrl, FLOOD_TOKENS);
    // Pin the flood to the fast node through the placement: only it is unpaced, so stop routing to paced.
    children[1].kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_000));
    const tMesh = await throughput(api, FLOOD_TOKENS);

    const ttftRes = {
      directMedianMs: r2(median(direct)),
      meshMedianMs: r2(median(mesh)),
      directP95Ms: r2(quantile(direct, 0.95)),
      meshP95Ms: r2(quantile(mesh, 0.95)),
      addedMs: r2(median(mesh) - median(direct)),
      ratio: r2(median(mesh) / median(direct)),
      runs: direct.length,
    };
    const chunk = {
      directMeanMs: r2(mean(chunkDirect)),
      meshMeanMs: r2(mean(chunkMesh)),
      directP99Ms: r2(quantile(chunkDirect, 0.99)),
      meshP99Ms: r2(quantile(chunkMesh, 0.99)),
      addedMs: r2(mean(chunkMesh) - mean(chunkDirect)),
      tokens: PACED_TOKENS,
    };
    const tp = {
      directChunksPerSec: Math.round(tDirect.chunksPerSec),
      meshChunksPerSec: Math.round(tMesh.chunksPerSec),
      ratio: r2(tMesh.chunksPerSec / tDirect.chunksPerSec),
      tokens: FLOOD_TOKENS,
    };
    return {
      ttft: ttftRes,
      chunk,
      throughput: tp,
      targets: [
        {
          name: 'time to first token added by the mesh',
          target: '≤ 3 ms',
          measured: `${ttftRes.addedMs} ms (${ttftRes.ratio}× direct)`,
          met: ttftRes.addedMs <= 3,
        },
        {
          name: 'latency added per streamed chunk',
          target: '≤ 0.5 ms',
          measured: `${chunk.addedMs} ms (mean; p99 ${chunk.meshP99Ms} vs ${chunk.directP99Ms} ms)`,
          met: chunk.addedMs <= 0.5,
        },
        {
          name: 'chunks/s through the mesh',
          target: '≥ 0.95× direct',
          measured: `${tp.meshChunksPerSec}/s (${tp.ratio}× direct ${tp.directChunksPerSec}/s)`,
          met: tp.ratio >= 0.95,
        },
      ],
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all([paced.stop(), fast.stop()]);
  }
}

/** Markdown section for results.md. */
export function ollamaMarkdown(b: OllamaBench): string {
  return [
    '## Ollama-compatible API (official `ollama` client; node Ollama = the documented-API double)',
    '',
    '| measure | straight at the node | through the server | added | ratio |',
    '|---|---|---|---|---|',
    `| time to first token, median (p95), ${b.ttft.runs} runs | ${b.ttft.directMedianMs} ms (${b.ttft.directP95Ms}) | ${b.ttft.meshMedianMs} ms (${b.ttft.meshP95Ms}) | ${b.ttft.addedMs} ms | ${b.ttft.ratio}× |`,
    `| per-chunk latency, mean (p99), ${b.chunk.tokens} tokens 5 ms apart | ${b.chunk.directMeanMs} ms (${b.chunk.directP99Ms}) | ${b.chunk.meshMeanMs} ms (${b.chunk.meshP99Ms}) | ${b.chunk.addedMs} ms | |`,
    `| throughput, ${b.throughput.tokens} unpaced chunks | ${b.throughput.directChunksPerSec}/s | ${b.throughput.meshChunksPerSec}/s | | ${b.throughput.ratio}× |`,
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...b.targets.map((t) => `| ${t.name} | ${t.target} | ${t.measured} | ${t.met ? 'met' : 'not met'} |`),
    '',
  ].join('\n');
}

if (process.argv[1]?.endsWith('bench/ollama.js')) {
  // Standalone: print only. The published figures are in results.md, from `npm run bench`.
  process.stdout.write(`# cutter — Ollama API benchmark\n\n${ollamaMarkdown(await benchOllama())}`);
  process.exit(0);
}
