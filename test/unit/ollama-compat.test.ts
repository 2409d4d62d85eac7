/**
 * The pure parts of the endpoints added for issues 19 and 22: which browser origins may call the
 * API (Ollama's AllowedOrigins and gin-contrib/cors wildcard rules), the OpenAI → Ollama
 * translations of /v1/completions and /v1/embeddings (openai.go), base64 embeddings as the OpenAI
 * SDKs decode them, and that a delete or copy goes to a node that has the model without needing the
 * memory to load it.
 */
import { describe, expect, it } from 'vitest';
import { CorsPolicy } from '../../controller/ollama-api/cors.js';
import { toOllamaGenerate } from '../../controller/ollama-api/openai-completions.js';
import { floatsToBase64, toOllamaEmbed } from '../../controller/ollama-api/openai-embeddings.js';
import { modelTier } from '../../controller/scheduler/ollama.js';
import type { NodeSnapshot } from '../../controller/scheduler/snapshot.js';
import { NodeStatusSchema } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;

describe('CORS origins', () => {
  it("allows Ollama's defaults: loopback with any port, app schemes, browser extensions", () => {
    const p = new CorsPolicy();
    for (const o of [
      'http://localhost',
      'https://localhost:8443',
      'http://127.0.0.1:5173',
      'http://0.0.0.0:3000',
      'app://obsidian.md',
      'file://',
      'tauri://localhost',
      'vscode-webview://abc',
      'chrome-extension://abcdef',
      'moz-extension://1234',
    ])
      expect(p.allows(o), o).toBe(true);
    for (const o of ['https://evil.example', 'http://localhost.evil.example', 'http://192.168.1.5:3000', 'null'])
      expect(p.allows(o), o).toBe(false);
  });

  it('adds configured origins, with one * as a wildcard and * alone for every origin', () => {
    const p = new CorsPolicy(' https://app.example.com , http://*.lan:8080');
    expect(p.allows('https://app.example.com')).toBe(true);
    expect(p.allows('https://app.example.com:444')).toBe(false);
    expect(p.allows('http://printer.lan:8080')).toBe(true);
    expect(p.allows('http://printer.lan:8081')).toBe(false);
    expect(p.allows('http://localhost:1')).toBe(true);
    expect(new CorsPolicy('*').allows('https://anything.example')).toBe(true);
  });
});

describe('/v1/completions → /api/generate', () => {
  it('moves the sampling fields into options with Ollama defaults (temperature and top_p 1)', () => {
    expect(toOllamaGenerate({ model: 'm', prompt: 'p', max_tokens: 9, stop: ['a', 'b'], seed: 3, suffix: 's' })).toEqual({
      prompt: 'p',
      suffix: 's',
      options: { num_predict: 9, stop: ['a', 'b'], seed: 3, temperature: 1, top_p: 1, frequency_penalty: 0, presence_penalty: 0 },
    });
    expect(toOllamaGenerate({ prompt: 'p', stop: 'x', temperature: 0.2, top_p: 0.5 }).options).toMatchObject({
      stop: ['x'],
      temperature: 0.2,
      top_p: 0.5,
    });
  });

  it('refuses a prompt that is not a string and a stop list of non-strings (400)', () => {
    expect(() => toOllamaGenerate({ prompt: ['a'] })).toThrow(expect.objectContaining({ status: 400 }));
    expect(() => toOllamaGenerate({ prompt: 'a', stop: [1] })).toThrow(/invalid type for 'stop' field/);
  });
});

describe('/v1/embeddings → /api/embed', () => {
  it('passes input as given, an empty string as [""], and refuses none or an empty array', () => {
    expect(toOllamaEmbed({ model: 'm', input: ['a', 'b'], dimensions: 8 })).toEqual({
      request: { model: 'm', input: ['a', 'b'], dimensions: 8 },
      base64: false,
    });
    expect(toOllamaEmbed({ model: 'm', input: '' }).request.input).toEqual(['']);
    expect(toOllamaEmbed({ model: 'm', input: 'x', encoding_format: 'base64' }).base64).toBe(true);
    expect(() => toOllamaEmbed({ model: 'm' })).toThrow('invalid input');
    expect(() => toOllamaEmbed({ model: 'm', input: [] })).toThrow('invalid input');
    expect(() => toOllamaEmbed({ model: 'm', input: 'x', encoding_format: 'hex' })).toThrow(/encoding_format/);
  });

  it('encodes base64 as float32 little-endian, what the OpenAI SDKs read back', () => {
    const b64 = floatsToBase64([0.5, -1, 0.1]);
    const buf = Buffer.from(b64, 'base64');
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4))).toEqual([0.5, -1, Math.fround(0.1)]);
  });
});

describe('placement of delete and copy', () => {
  const node = (models: [string, number][], maxMemory: number): NodeSnapshot => ({
    node: 'n',
    status: NodeStatusSchema.parse({
      v: 1,
      node: 'n',
      state: 'online',
      version: '0.1.0',
      seq: 1,
      ts: 0,
      heartbeatMs: 1_000,
      capacity: {
        cpu: { cores: 8, loadPercent: 10 },
        memory: { total: 64 * GiB, available: 60 * GiB },
        gpus: [],
        docker: { available: false },
        ollama: { available: true, version: '0.12.6', models: models.map(([name, size]) => ({ name, size })), loaded: [] },
      },
      offer: { maxMemory, maxTasks: 8, executors: ['ollama'], labels: {}, lostAfterMs: 0 },
      running: [],
    }),
    lastSeenMs: 0,
    reservedMemory: 0,
    reservedTasks: 0,
  });

  it('needs the model on disk, not the memory to load it', () => {
    const big = node([['llama3:70b', 40 * GiB]], 8 * GiB);
    expect(modelTier(big, { op: 'generate', model: 'llama3:70b', pull: false }, 40 * GiB)).toMatchObject({
      rejection: { code: 'model-too-big' },
    });
    expect(modelTier(big, { op: 'delete', model: 'llama3:70b', pull: false }, 40 * GiB)).toEqual({ tier: 1 });
    expect(modelTier(big, { op: 'copy', model: 'llama3:70b', pull: false }, 40 * GiB)).toEqual({ tier: 1 });
    expect(modelTier(big, { op: 'delete', model: 'phi3', pull: false }, null)).toMatchObject({ rejection: { code: 'model-missing' } });
  });
});
