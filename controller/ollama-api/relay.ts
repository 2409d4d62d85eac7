/**
 * The one loop both API flavours share: run an ollama task on the mesh and relay its response
 * objects to the HTTP client as they arrive, or keep them for a single answer.
 */
import { errorMessage } from '../../shared/errors.js';
import type { OllamaSpec } from '../../shared/schemas/index.js';
import type { LineStream } from './http.js';
import type { MeshGateway } from './mesh.js';

type Json = Record<string, unknown>;

export interface RelayOptions {
  /** Write chunks as they come (true) or keep them for one answer (false). */
  stream: boolean;
  /** The text one chunk becomes on the wire (an NDJSON line, an SSE event …). */
  line(chunk: Json): string;
  /** The last text of a stream that failed after it began (Ollama: an `{"error"}` line). */
  errorLine(message: string): string;
  /** Run it on this node only (a named node), else where the scheduler picks. */
  node?: string;
}

/**
 * Runs `spec` and relays its chunks through `out`.
 * @returns the kept chunks (none when streaming), or null when the answer is over already: the
 *   client went away, or the failure was written into the started stream.
 * @throws the mesh's error (CutterError) when it fails before anything was written, so the caller
 *   can answer with a status code.
 */
export async function relay(
  mesh: MeshGateway,
  spec: OllamaSpec,
  signal: AbortSignal,
  out: LineStream,
  opts: RelayOptions,
): Promise<Json[] | null> {
  const kept: Json[] = [];
  try {
    await mesh.run(
      spec,
      {
        onChunks: (chunks) => {
          if (!opts.stream) {
            for (const c of chunks) kept.push(c);
            return;
          }
          let text = '';
          // A chunk that cannot be serialised (nested too deep: RangeError) is skipped, not fatal.
          for (const c of chunks) text += lineOf(opts, c) ?? '';
          out.write(text);
        },
      },
      signal,
      opts.node,
    );
  } catch (err) {
    if (signal.aborted) return null;
    if (!out.hasStarted) throw err;
    out.end(opts.errorLine(errorMessage(err)));
    return null;
  }
  return kept;
}

/** The wire text of one chunk, or undefined when it cannot be serialised. */
function lineOf(opts: RelayOptions, chunk: Json): string | undefined {
  try {
    return opts.line(chunk);
  } catch {
    return undefined;
  }
}
