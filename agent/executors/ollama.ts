/**
 * The ollama executor: runs generate, chat, embed, embeddings (legacy), pull, show, delete and copy requests against the node's
 * Ollama server through the official `ollama` npm client (ollama-js 0.6), and feeds the node's
 * heartbeat with what that server has (`fingerprint()`: version, models, loaded models).
 *
 * Facts it relies on (../shared/reference/protocol-facts.md §2.8, from ollama-js `src/browser.ts`,
 * `src/utils.ts`):
 * - the client does not read `OLLAMA_HOST`: the URL is always passed in (`--ollama-url`);
 * - its default is `stream: false`, so streaming is asked for explicitly; a stream ends with a
 *   `done: true` part (generate/chat) or `status: "success"` (pull);
 * - HTTP errors throw `ResponseError` with `status_code` (404 = model not found); an `{"error"}`
 *   line inside a stream throws a plain Error;
 * - non-streaming calls take no abort signal, so each task gets its own client whose `fetch`
 *   carries the task's AbortSignal: a cancel aborts any request, streamed or not.
 * The inventory of every heartbeat does not go through ollama-js: see ./ollama-inventory.ts.
 */
import { Ollama } from 'ollama';
import { isJsonObject } from '../../shared/codec.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { MESH_API_HEADER, sameModel } from '../../shared/ollama.js';
import type { OllamaInfo, OllamaSpec } from '../../shared/schemas/index.js';
import type { Executor, ExecutorContext, Fingerprint, Outcome, TaskHandle } from './executor.js';
import { getJson, InventoryConnectError } from './ollama-inventory.js';

/** Longest wait for the small inventory calls (version, tags, ps), ms. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * How long a fingerprint that found no Ollama listening (the connection refused or unroutable) is
 * kept before the next beat asks again, ms. Most nodes run no Ollama; a refused connection at
 * every beat (a socket, an error, its message) was ~0.15 % of a core of an idle agent here
 * (bench/profile.md, "An idle agent's CPU and peak"). An Ollama started later shows within this time.
 */
export const OLLAMA_ABSENT_RECHECK_MS = 5_000;

type Json = Record<string, unknown>;

/**
 * The `models` list of a tags or ps answer: objects with a name only (a nameless entry would make
 * the whole heartbeat invalid: OllamaModelSchema's name is at least 1 character); anything else is
 * an empty list.
 */
function listed(body: unknown): Json[] {
  const models = isJsonObject(body) ? body.models : undefined;
  return Array.isArray(models) ? models.filter((m): m is Json => isJsonObject(m) && typeof m.name === 'string' && m.name !== '') : [];
}

/** A CutterError for what the Ollama client threw (ResponseError carries the HTTP status). */
function toCutterError(err: unknown, url: string): CutterError {
  if (err instanceof CutterError) return err;
  const e = err as { name?: string; status_code?: number; error?: string; cause?: { code?: string } };
  if (e?.name === 'ResponseError' && e.status_code === 404) return new CutterError('MODEL_NOT_FOUND', e.error ?? errorMessage(err));
  if (e?.name === 'ResponseError')
    return new CutterError('OLLAMA_ERROR', `Ollama answered ${e.status_code}: ${e.error ?? errorMessage(err)}`);
  if (err instanceof InventoryConnectError)
    return new CutterError('EXECUTOR_UNAVAILABLE', `Ollama at ${url} is not reachable (${err.code})`);
  if (e?.cause?.code === 'ECONNREFUSED' || /fetch failed/.test(errorMessage(err))) {
    return new CutterError('EXECUTOR_UNAVAILABLE', `Ollama at ${url} is not reachable (${e?.cause?.code ?? errorMessage(err)})`);
  }
  return new CutterError('OLLAMA_ERROR', errorMessage(err));
}

/** `fetch` bound to an AbortSignal and a timeout, for a client that otherwise cannot be cancelled. */
function fetchWith(signal: AbortSignal, timeoutMs?: number): typeof fetch {
  return (input, init) => {
    const signals = [signal, ...(init?.signal ? [init.signal] : []), ...(timeoutMs ? [AbortSignal.timeout(timeoutMs)] : [])];
    return fetch(input, { ...init, signal: AbortSignal.any(signals) });
  };
}

/** Runs ollama tasks against one Ollama server; its fingerprint is that server's inventory. */
export class OllamaExecutor implements Executor<OllamaSpec> {
  readonly kind = 'ollama' as const;
  /**
   * No status the moment a request starts: its first tokens are on their way then, the controller
   * holds its slot until the next heartbeat lists it, and a status (with every model) costs the
   * server a decode each.
   */
  readonly announceOnStart = false;

  /** The last fingerprint while nothing listens at the URL, and until when it stands (performance.now(), ms). */
  private absent?: { fingerprint: Fingerprint; until: number };

  /**
   * @param url base URL of the node's Ollama server, e.g. `http://127.0.0.1:11434`.
   * @param absentRecheckMs how long a refused connection's fingerprint is kept, ms (OLLAMA_ABSENT_RECHECK_MS).
   */
  constructor(
    readonly url: string,
    private readonly absentRecheckMs = OLLAMA_ABSENT_RECHECK_MS,
  ) {}

  private client(signal: AbortSignal, timeoutMs?: number): Ollama {
    return new Ollama({ host: this.url, fetch: fetchWith(signal, timeoutMs) });
  }

  /**
   * What the node's Ollama has: version, pulled models (`/api/tags`) and loaded ones (`/api/ps`),
   * sizes in bytes, asked with node:http (agent/executors/ollama-inventory.ts), not ollama-js.
   * Never throws: an unreachable server gives `{available: false, error}`.
   */
  async inventory(): Promise<OllamaInfo> {
    return (await this.ask()).info;
  }

  /** `inventory()`, and whether it failed to connect at all (nothing listening, no route). */
  private async ask(): Promise<{ info: OllamaInfo; unreachable: boolean }> {
    try {
      return { info: await this.askOnce(), unreachable: false };
    } catch (err) {
      const info = { available: false, error: toCutterError(err, this.url).message.slice(0, 500), models: [], loaded: [] };
      return { info, unreachable: err instanceof InventoryConnectError };
    }
  }

  /** One round of the three GETs. @throws InventoryConnectError, InventoryResponseError, a timeout. */
  private async askOnce(): Promise<OllamaInfo> {
    const first = await getJson(this.url, '/api/version', PROBE_TIMEOUT_MS);
    const mesh = first.headers[MESH_API_HEADER.toLowerCase()];
    if (mesh)
      return {
        available: false,
        error: `${this.url} is a cutter server's Ollama-compatible API (cutter ${String(mesh).slice(0, 50)}), not this node's Ollama: requests would go back into the mesh. Give --ollama-url this node's own Ollama, or --ollama-url off`,
        models: [],
        loaded: [],
      };
    const [tags, ps] = await Promise.all([
      getJson(this.url, '/api/tags', PROBE_TIMEOUT_MS),
      getJson(this.url, '/api/ps', PROBE_TIMEOUT_MS),
    ]);
    const version = isJsonObject(first.body) ? first.body.version : undefined;
    return {
      available: true,
      version: String(version ?? '').slice(0, 50),
      models: listed(tags.body)
        .slice(0, 2_000)
        .map((m) => {
          const d = isJsonObject(m.details) ? m.details : {};
          return {
            name: String(m.name).slice(0, 256),
            size: Math.max(0, Math.round(Number(m.size) || 0)),
            ...(m.digest ? { digest: String(m.digest).slice(0, 128) } : {}),
            ...(d.family ? { family: String(d.family).slice(0, 64) } : {}),
            ...(d.parameter_size ? { parameterSize: String(d.parameter_size).slice(0, 32) } : {}),
            ...(d.quantization_level ? { quantization: String(d.quantization_level).slice(0, 32) } : {}),
            ...(m.modified_at ? { modifiedAt: String(m.modified_at).slice(0, 64) } : {}),
            ...(d.format ? { format: String(d.format).slice(0, 32) } : {}),
          };
        }),
      loaded: listed(ps.body)
        .slice(0, 200)
        .map((m) => ({
          name: String(m.name).slice(0, 256),
          size: Math.max(0, Math.round(Number(m.size) || 0)),
          sizeVram: Math.max(0, Math.round(Number(m.size_vram) || 0)),
          ...(m.expires_at ? { expiresAt: String(m.expires_at).slice(0, 64) } : {}),
        })),
    };
  }

  /**
   * The inventory as `capacity.ollama`; available when the server answers. Never throws. After a
   * refused connection the same answer is given for `absentRecheckMs` without asking again.
   */
  async fingerprint(): Promise<Fingerprint> {
    if (this.absent && performance.now() < this.absent.until) return this.absent.fingerprint;
    this.absent = undefined;
    const { info: ollama, unreachable } = await this.ask();
    const fingerprint = { available: ollama.available, ...(ollama.error ? { error: ollama.error } : {}), capacity: { ollama } };
    if (unreachable) this.absent = { fingerprint, until: performance.now() + this.absentRecheckMs };
    return fingerprint;
  }

  start(spec: OllamaSpec, ctx: ExecutorContext): TaskHandle {
    const abort = new AbortController();
    let cancelled = false;
    const done = this.run(spec, ctx, abort.signal).catch((err) => {
      if (cancelled) throw new CutterError('CANCELLED', 'cancelled');
      throw toCutterError(err, this.url);
    });
    return {
      done: done.then((o) => ({ ...o, cancelled })),
      stop: async () => {
        cancelled = true;
        abort.abort();
        await done.catch(() => undefined);
      },
    };
  }

  private async run(spec: OllamaSpec, ctx: ExecutorContext, signal: AbortSignal): Promise<Outcome> {
    const client = this.client(signal);
    const chunk = (part: unknown) => ctx.chunk?.(part as Json);
    if ((spec.op === 'generate' || spec.op === 'chat' || spec.op === 'embed') && spec.pull) {
      const have = await client.list();
      if (!have.models.some((m) => sameModel(m.name, spec.model))) await this.pull(client, spec.model, ctx, false);
    }
    const startedAt = Date.now();
    // Before the request: the server records the start while the model reads the prompt.
    ctx.started(`${spec.op} ${spec.model}`);
    const body = { ...spec.request, model: spec.model };
    switch (spec.op) {
      case 'generate':
        for await (const part of await client.generate({ ...(body as object), stream: true } as never)) chunk(part);
        break;
      case 'chat':
        for await (const part of await client.chat({ ...(body as object), stream: true } as never)) chunk(part);
        break;
      case 'embed':
        chunk(await client.embed(body as never));
        break;
      case 'embeddings':
        // The legacy endpoint (docs/api.md "Generate Embedding", superseded by /api/embed) is called
        // as such, not translated to /api/embed: the node's Ollama answers it by its own rules.
        chunk(await client.embeddings(body as never));
        break;
      case 'show':
        chunk(await client.show(body as never));
        break;
      case 'pull':
        await this.pull(client, spec.model, ctx, true);
        break;
      // docs/api.md "Delete a Model" / "Copy a Model": 200 with no body, 404 when the model is not here.
      case 'delete':
        chunk(await client.delete({ model: spec.model }));
        break;
      case 'copy':
        chunk(await client.copy({ source: spec.model, destination: String(spec.request.destination ?? '') }));
        break;
      // docs/api.md "Create a Model" from an existing one (`from`) and "Push a Model": each streams
      // status records ({"status": "reading model metadata"} … {"status": "success"}), relayed as chunks.
      case 'create':
        for await (const part of await client.create({
          ...(spec.request as object),
          model: String(spec.request.model ?? ''),
          from: spec.model,
          stream: true,
        } as never))
          chunk(part);
        break;
      case 'push':
        for await (const part of await client.push({ ...(spec.request as object), model: spec.model, stream: true } as never)) chunk(part);
        break;
    }
    return { exitCode: 0, oomKilled: false, cancelled: false, startedAt, finishedAt: Date.now() };
  }

  /** Pulls a model, reporting progress (bytes) and, when `asOutput`, each status record as a chunk. */
  private async pull(client: Ollama, model: string, ctx: ExecutorContext, asOutput: boolean): Promise<void> {
    ctx.progress({ phase: 'pull', message: `pulling ${model}` });
    let lastStatus = '';
    let lastAt = 0;
    for await (const part of await client.pull({ model, stream: true })) {
      if (asOutput) ctx.chunk?.(part as unknown as Json);
      // Ollama sends many records a second while downloading: progress goes out on a new status or every 250 ms.
      const now = Date.now();
      if (part.status === lastStatus && now - lastAt < 250) continue;
      lastStatus = part.status;
      lastAt = now;
      ctx.progress({
        phase: 'pull',
        message: String(part.status ?? '').slice(0, 1_000),
        ...(typeof part.completed === 'number' ? { current: Math.max(0, Math.round(part.completed)) } : {}),
        ...(typeof part.total === 'number' ? { total: Math.max(0, Math.round(part.total)) } : {}),
      });
    }
  }
}
