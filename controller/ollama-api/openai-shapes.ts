/**
 * Small pieces of the OpenAI wire shapes that Ollama's translation layer makes (ollama/ollama
 * `openai/openai.go`), shared by the /v1 handlers: the error body, `usage` and `created`.
 */

type Json = Record<string, unknown>;

/**
 * OpenAI's error body for an HTTP status (openai.go `NewError`): `{"error": {"message", "type",
 * "param": null, "code": null}}`, type `invalid_request_error` (400), `not_found_error` (404) or
 * `api_error` (anything else).
 */
export function openaiError(status: number, message: string): Json {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
  return { error: { message, type, param: null, code: null } };
}

/**
 * `usage` from an Ollama final chunk (openai.go `toUsageGenerate`): `prompt_eval_count` and
 * `eval_count`, in tokens (Ollama leaves a zero count out, so a missing one is 0).
 */
export function usageOf(c: Json): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const prompt = Number(c.prompt_eval_count ?? 0);
  const completion = Number(c.eval_count ?? 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** `created` of an OpenAI object: the chunk's `created_at` in Unix seconds, or now when it has none. */
export function unixOf(c: Json): number {
  const t = Date.parse(String(c.created_at ?? ''));
  return Math.floor((Number.isFinite(t) ? t : Date.now()) / 1000);
}
