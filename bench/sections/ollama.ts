/** The Ollama-compatible API benchmark (bench/ollama.ts) as result rows: time to first token, chunk latency, throughput. */
import { benchOllama } from '../ollama.js';
import type { Results } from '../results.js';
import { QUICK } from '../settings.js';

/** Streams through the server's Ollama API against straight at the node's Ollama (a double of its documented API). */
export async function ollamaApi(results: Results): Promise<void> {
  const b = await benchOllama(QUICK ? { ttftRuns: 10, pacedTokens: 30, floodTokens: 2_000 } : undefined);
  results.json.ollama = b;
  const [first, chunk, tput] = b.targets;
  results.rows.push({
    name: `Ollama-compatible API: time to first token of a streamed generate, median of ${b.ttft.runs} (official \`ollama\` client; the node's Ollama is the documented-API double)`,
    baseline: `same client straight at the node's Ollama: ${b.ttft.directMedianMs} ms (p95 ${b.ttft.directP95Ms})`,
    measured: `through the server: ${b.ttft.meshMedianMs} ms (p95 ${b.ttft.meshP95Ms}), +${b.ttft.addedMs} ms`,
    ratio: `${b.ttft.ratio}×`,
    target: `${first.target} added`,
    met: first.met ? 'met' : 'not met',
  });
  results.rows.push({
    name: `Ollama-compatible API: latency of each streamed chunk, ${b.chunk.tokens} tokens 5 ms apart (send → client)`,
    baseline: `straight at the node: mean ${b.chunk.directMeanMs} ms, p99 ${b.chunk.directP99Ms} ms`,
    measured: `through the server: mean ${b.chunk.meshMeanMs} ms, p99 ${b.chunk.meshP99Ms} ms, +${b.chunk.addedMs} ms`,
    ratio: '-',
    target: `${chunk.target} added`,
    met: chunk.met ? 'met' : 'not met',
  });
  results.rows.push({
    name: `Ollama-compatible API: one unpaced stream of ${b.throughput.tokens.toLocaleString('en')} chunks`,
    baseline: `straight at the node: ${b.throughput.directChunksPerSec.toLocaleString('en')} chunks/s`,
    measured: `through the server: ${b.throughput.meshChunksPerSec.toLocaleString('en')} chunks/s`,
    ratio: `${b.throughput.ratio}×`,
    target: tput.target,
    met: tput.met ? 'met' : 'not met',
  });
}
