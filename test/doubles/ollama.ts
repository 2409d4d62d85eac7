/**
 * AN OLLAMA DOUBLE — not Ollama. Real Ollama cannot be installed on these machines (it downloads
 * model weights at run time), so agent tests and benchmarks talk to this small HTTP server
 * instead. It follows Ollama's documented REST API (ollama/ollama `docs/api.md`, `docs/api/errors.mdx`,
 * `docs/api/streaming.mdx`, `api/types.go`; summarised with sources in
 * ../shared/reference/protocol-facts.md §2):
 *   - GET  /api/version → `{"version"}`; GET / → `Ollama is running`
 *   - GET  /api/tags    → `{"models":[{name, model, modified_at, size, digest, details{format, family, families, parameter_size, quantization_level}}]}`
 *   - GET  /api/ps      → `{"models":[{name, model, size, digest, details, expires_at, size_vram, context_length}]}`
 *   - POST /api/show    → `{modelfile, parameters, template, details, model_info, capabilities}`; 404 for an unknown model
 *   - POST /api/generate, /api/chat: NDJSON (`application/x-ndjson`) by default, one JSON object with
 *     `"stream": false`; chunks `{model, created_at, response|message, done:false}`, then a final chunk
 *     with `done:true, done_reason, total_duration, load_duration, prompt_eval_count,
 *     prompt_eval_duration, eval_count, eval_duration` (+ `context` for generate), durations in ns;
 *     with `predictAsLimit`, `options.num_predict` cuts the answer with `done_reason: "length"`
 *   - POST /api/embed → `{model, embeddings:[[…]], total_duration, load_duration, prompt_eval_count}`
 *   - POST /api/embeddings (legacy, docs/api.md "Generate Embedding") `{model, prompt}` → `{embedding:[…]}`
 *   - DELETE /api/delete `{model}` (or `name`) and POST /api/copy `{source, destination}` (docs/api.md
 *     "Delete a Model", "Copy a Model"): 200 with no body, 404 `{"error"}` when the model is not here
 *   - POST /api/create from an existing model (`{model, from, system, template, parameters}`) and POST
 *     /api/push (`{model}`) (docs/api.md "Create a Model", "Push a Model"): NDJSON status records ending
 *     in `{"status":"success"}` (create: `reading model metadata`, `using already created layer …`,
 *     `writing manifest`; push: `retrieving manifest`, `starting upload`, `pushing manifest`)
 *   - POST /api/pull → `pulling manifest`, `pulling <digest>` with `total`/`completed`, `verifying sha256 digest`,
 *     `writing manifest`, `success`; an unknown model gets `{"error":"pull model manifest: file does not exist"}`
 *     inside the 200 stream, as Ollama's server does once it has started streaming
 *   - tools in /api/chat (docs/api.md "Chat request (with tools)"): when the request carries `tools`
 *     and the test's `toolCall` option names a call, the answer's message is `{role: "assistant",
 *     content: "", tool_calls: [{id, function: {name, arguments}}]}` (one chunk, then the final one);
 *     `images` of chat messages are recorded as sent (base64 strings)
 *   - an unknown model on generate/chat/embed: 404 `{"error":"model 'x' not found"}`; no model: 400
 *     `{"error":"model is required"}`; bad JSON: 400 `{"error":…}`
 * The reply text is deterministic (`reply(prompt)`), so tests can assert what a client receives.
 * It records every request and whether its client went away before the response ended (the
 * cancellation a real Ollama sees as `context canceled`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A model the double knows; sizes in bytes. */
export interface DoubleModel {
  name: string;
  size: number;
  family?: string;
  parameterSize?: string;
  quantization?: string;
}

export interface OllamaDoubleOptions {
  version?: string;
  /** Models already pulled. */
  models?: DoubleModel[];
  /** Names of pulled models loaded in memory at start. */
  loaded?: string[];
  /** Models `/api/pull` can fetch (the "registry"). */
  registry?: DoubleModel[];
  /** Tokens of the answer to a prompt; default: the words of `echo: <prompt>`. */
  reply?: (prompt: string, model: string) => string[];
  /** Pause before each streamed token, ms (0 = as fast as the socket takes them). */
  tokenDelayMs?: number;
  /** Bytes of VRAM a loaded model gets (the double has no GPU: 0). */
  vram?: number;
  /**
   * Benchmarks only: add `sent_at_ms` (performance.timeOrigin + performance.now(), fractional ms)
   * to each streamed chunk when it is written, so a client in the same process can measure each
   * chunk's latency. Not an Ollama field; clients pass unknown fields through.
   */
  stamp?: boolean;
  /**
   * The tool call a chat request with `tools` gets (given the request body), or undefined to answer
   * with text. Without this option the double never calls tools.
   */
  /**
   * `options.num_predict` as Ollama treats it: a limit — the answer stops there with
   * `done_reason: "length"` (api/types.go `DoneReason`), shorter answers end on their own with
   * `stop`. Default (false): the answer is exactly num_predict tokens long, for benchmarks.
   */
  predictAsLimit?: boolean;
  toolCall?: (body: Record<string, unknown>) => { name: string; arguments: Record<string, unknown> } | undefined;
}

/** One request the double served. */
export interface RecordedRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
  /** The client closed the connection before the response was complete. */
  aborted: boolean;
  /** The response was complete. */
  finished: boolean;
}

const digestOf = (name: string) => {
  let h = 0n;
  for (const c of name) h = (h * 131n + BigInt(c.codePointAt(0)!)) % (1n << 252n);
  return h.toString(16).padStart(64, '0');
};
/** Ollama's default tag: `phi3` is `phi3:latest` (docs/api.md "Conventions"). */
const canonical = (name: string) => (name.slice(name.lastIndexOf('/') + 1).includes(':') ? name : `${name}:latest`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class OllamaDouble {
  readonly requests: RecordedRequest[] = [];
  readonly models = new Map<string, DoubleModel>();
  readonly loaded = new Map<string, number>();
  private server?: Server;
  private readonly sockets = new Set<import('node:net').Socket>();
  url = '';

  constructor(private readonly opts: OllamaDoubleOptions = {}) {
    for (const m of opts.models ?? []) this.models.set(canonical(m.name), { ...m, name: canonical(m.name) });
    for (const n of opts.loaded ?? []) this.loaded.set(canonical(n), Date.now());
  }

  /** Listens on 127.0.0.1 (port 0 = any free port); resolves with the base URL `http://127.0.0.1:PORT`. */
  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private tagOf(m: DoubleModel) {
    return {
      name: m.name,
      model: m.name,
      modified_at: '2026-11-01T10:00:00.000000000Z',
      size: m.size,
      digest: digestOf(m.name),
      details: {
        parent_model: '',
        format: 'gguf',
        family: m.family ?? 'llama',
        families: [m.family ?? 'llama'],
        parameter_size: m.parameterSize ?? '8.0B',
        quantization_level: m.quantization ?? 'Q4_0',
      },
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0],
      body: null,
      aborted: false,
      finished: false,
    };
    this.requests.push(rec);
    res.on('close', () => {
      if (!res.writableFinished) rec.aborted = true;
    });
    res.on('finish', () => (rec.finished = true));
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    let raw = '';
    for await (const chunk of req) raw += chunk;
    if (req.method === 'POST' || req.method === 'DELETE') {
      try {
        rec.body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      } catch (err) {
        return json(400, { error: `invalid character in JSON: ${(err as Error).message}` });
      }
    }
    const body = rec.body ?? {};
    const asked = typeof body.model === 'string' ? body.model : typeof body.name === 'string' ? body.name : '';
    const model = asked && this.models.has(canonical(asked)) ? canonical(asked) : asked;
    switch (`${req.method} ${rec.path}`) {
      case 'GET /':
      case 'HEAD /':
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return void res.end('Ollama is running');
      case 'GET /api/version':
        return json(200, { version: this.opts.version ?? '0.12.6' });
      case 'GET /api/tags':
        return json(200, { models: [...this.models.values()].map((m) => this.tagOf(m)) });
      case 'GET /api/ps':
        return json(200, {
          models: [...this.loaded.keys()]
            .filter((n) => this.models.has(n))
            .map((n) => {
              const m = this.models.get(n)!;
              const t = this.tagOf(m);
              return {
                name: t.name,
                model: t.model,
                size: m.size,
                digest: t.digest,
                details: t.details,
                expires_at: new Date(Date.now() + 300_000).toISOString(),
                size_vram: this.opts.vram ?? 0,
                context_length: 4096,
              };
            }),
        });
      case 'POST /api/show': {
        if (!model) return json(400, { error: 'model is required' });
        const m = this.models.get(model);
        if (!m) return json(404, { error: `model '${model}' not found` });
        const t = this.tagOf(m);
        return json(200, {
          modelfile: `FROM ${m.name}\n`,
          parameters: 'stop "<|eot_id|>"',
          template: '{{ .Prompt }}',
          details: t.details,
          model_info: { 'general.architecture': t.details.family, [`${t.details.family}.context_length`]: 8192 },
          capabilities: ['completion'],
          modified_at: t.modified_at,
        });
      }
      case 'POST /api/generate':
      case 'POST /api/chat':
        return this.generate(rec.path === '/api/chat', model, body, res, json);
      case 'POST /api/embed': {
        if (!model) return json(400, { error: 'model is required' });
        if (!this.models.has(model)) return json(404, { error: `model '${model}' not found` });
        const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')];
        this.loaded.set(model, Date.now());
        return json(200, {
          model,
          embeddings: inputs.map((s) => this.vector(s)),
          total_duration: 14_143_917,
          load_duration: 1_019_500,
          prompt_eval_count: inputs.reduce((n, s) => n + s.split(/\s+/).filter(Boolean).length, 0),
        });
      }
      case 'POST /api/embeddings': {
        if (!model) return json(400, { error: 'model is required' });
        if (!this.models.has(model)) return json(404, { error: `model '${model}' not found` });
        this.loaded.set(model, Date.now());
        return json(200, { embedding: this.vector(String(body.prompt ?? '')) });
      }
      case 'DELETE /api/delete': {
        if (!model) return json(400, { error: 'model is required' });
        if (!this.models.delete(model)) return json(404, { error: `model '${model}' not found` });
        this.loaded.delete(model);
        res.writeHead(200, { 'content-length': 0 });
        return void res.end();
      }
      case 'POST /api/copy': {
        const source = this.models.get(canonical(String(body.source ?? '')));
        if (!source) return json(404, { error: `model '${String(body.source ?? '')}' not found` });
        const destination = canonical(String(body.destination ?? ''));
        this.models.set(destination, { ...source, name: destination });
        res.writeHead(200, { 'content-length': 0 });
        return void res.end();
      }
      case 'POST /api/pull':
        return this.pull(model, body, res, json);
      case 'POST /api/create':
      case 'POST /api/push':
        return this.createOrPush(rec.path === '/api/create', model, body, res, json);
      default:
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        return void res.end('404 page not found');
    }
  }

  /** The double's deterministic embedding of a text (three numbers a test can compute). */
  vector(text: string): number[] {
    return [text.length / 100, (text.charCodeAt(0) || 0) / 1000, 0.5];
  }

  private async generate(
    chat: boolean,
    model: string,
    body: Record<string, unknown>,
    res: ServerResponse,
    json: (s: number, b: unknown) => void,
  ) {
    if (!model) return json(400, { error: 'model is required' });
    const m = this.models.get(model);
    if (!m) return json(404, { error: `model '${model}' not found` });
    const t0 = process.hrtime.bigint();
    const wasLoaded = this.loaded.has(model);
    this.loaded.set(model, Date.now());
    const messages = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]) : [];
    const prompt = chat ? String(messages.at(-1)?.content ?? '') : String(body.prompt ?? '');
    let tokens = (this.opts.reply ?? ((p: string) => `echo: ${p}`.split(/(?= )/)))(prompt, model);
    const numPredict = (body.options as { num_predict?: unknown } | undefined)?.num_predict;
    const truncated = this.opts.predictAsLimit === true && typeof numPredict === 'number' && numPredict > 0 && tokens.length > numPredict;
    if (truncated) tokens = tokens.slice(0, numPredict as number);
    else if (!this.opts.predictAsLimit && typeof numPredict === 'number' && numPredict > 0)
      tokens = Array.from({ length: numPredict }, (_, i) => tokens[i % tokens.length] ?? 'x');
    const created = () => new Date().toISOString();
    const call = chat && Array.isArray(body.tools) ? this.opts.toolCall?.(body) : undefined;
    if (call) tokens = [''];
    const calls = call ? { tool_calls: [{ id: `call_${digestOf(call.name).slice(0, 8)}`, function: call }] } : {};
    const piece = (text: string, withCalls = false) =>
      chat ? { message: { role: 'assistant', content: text, ...(withCalls ? calls : {}) } } : { response: text };
    const final = () => {
      const total = Number(process.hrtime.bigint() - t0);
      return {
        model,
        created_at: created(),
        ...piece(''),
        done: true,
        done_reason: truncated ? 'length' : 'stop',
        ...(chat ? {} : { context: [1, 2, 3] }),
        total_duration: total,
        load_duration: wasLoaded ? 1_000_000 : 250_000_000,
        prompt_eval_count: prompt.split(/\s+/).filter(Boolean).length || 1,
        prompt_eval_duration: 2_000_000,
        eval_count: tokens.length,
        eval_duration: Math.max(1, total - 3_000_000),
      };
    };
    if (body.stream === false) {
      for (const _ of tokens) if (this.opts.tokenDelayMs) await sleep(this.opts.tokenDelayMs);
      return json(200, { ...final(), ...piece(tokens.join(''), true) });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const tok of tokens) {
      if (this.opts.tokenDelayMs) await sleep(this.opts.tokenDelayMs);
      if (res.destroyed) return;
      const stamp = this.opts.stamp ? { sent_at_ms: performance.timeOrigin + performance.now() } : {};
      if (!res.write(`${JSON.stringify({ model, created_at: created(), ...piece(tok, true), done: false, ...stamp })}\n`)) {
        await new Promise((r) => res.once('drain', r));
      }
    }
    if (!res.destroyed) res.end(`${JSON.stringify(final())}\n`);
  }

  /**
   * docs/api.md "Create a Model" (from an existing model: `{model, from, system, template,
   * parameters}`) and "Push a Model" (`{model}`): status records ending in `success`, streamed or
   * one `{"status": "success"}`; 404 `{"error"}` when `from` (create) or the model (push) is not here.
   */
  private async createOrPush(
    create: boolean,
    model: string,
    body: Record<string, unknown>,
    res: ServerResponse,
    json: (s: number, b: unknown) => void,
  ) {
    if (!model) return json(400, { error: 'model is required' });
    const source = this.models.get(canonical(create ? String(body.from ?? '') : model));
    if (!source) return json(404, { error: `model '${create ? String(body.from ?? '') : model}' not found` });
    const digest = `sha256:${digestOf(source.name)}`;
    const lines: Record<string, unknown>[] = create
      ? [
          { status: 'reading model metadata' },
          ...(typeof body.system === 'string' ? [{ status: 'creating system layer' }] : []),
          { status: `using already created layer ${digest}` },
          { status: 'writing manifest' },
          { status: 'success' },
        ]
      : [
          { status: 'retrieving manifest' },
          { status: 'starting upload', digest, total: source.size },
          { status: 'pushing manifest' },
          { status: 'success' },
        ];
    if (create) this.models.set(canonical(model), { ...source, name: canonical(model) });
    if (body.stream === false) return json(200, { status: 'success' });
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const line of lines) res.write(`${JSON.stringify(line)}\n`);
    res.end();
  }

  private async pull(model: string, body: Record<string, unknown>, res: ServerResponse, json: (s: number, b: unknown) => void) {
    if (!model) return json(400, { error: 'model is required' });
    const found = (this.opts.registry ?? []).find((r) => canonical(r.name) === canonical(model)) ?? this.models.get(canonical(model));
    const m = found && { ...found, name: canonical(found.name) };
    const lines: Record<string, unknown>[] = [{ status: 'pulling manifest' }];
    if (!m) lines.push({ error: 'pull model manifest: file does not exist' });
    else {
      const digest = `sha256:${digestOf(m.name)}`;
      const steps = 8;
      lines.push({ status: `pulling ${digest.slice(7, 19)}`, digest, total: m.size });
      for (let i = 1; i <= steps; i++)
        lines.push({ status: `pulling ${digest.slice(7, 19)}`, digest, total: m.size, completed: Math.round((m.size * i) / steps) });
      lines.push({ status: 'verifying sha256 digest' }, { status: 'writing manifest' }, { status: 'success' });
    }
    if (body.stream === false) {
      if (!m) return json(500, { error: 'pull model manifest: file does not exist' });
      this.models.set(m.name, m);
      return json(200, { status: 'success' });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const line of lines) {
      if (this.opts.tokenDelayMs) await sleep(this.opts.tokenDelayMs);
      if (res.destroyed) return;
      if (line.status === 'success' && m) this.models.set(m.name, m);
      res.write(`${JSON.stringify(line)}\n`);
    }
    res.end();
  }
}
