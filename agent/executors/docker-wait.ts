/**
 * Waiting for a container's exit with the wait in place before the container starts.
 *
 * Docker Engine API, `POST /containers/{id}/wait?condition=next-exit|not-running|removed`: since API
 * 1.30 the engine writes the response headers as soon as the wait is registered and the body
 * (`{"StatusCode": n, "Error": {...}}`) when the condition is met (moby, api/server/router/container
 * postContainersWait: "Write response header immediately"). The docker CLI starts a container only
 * after those headers (client.ContainerWait returns once the POST has its response). dockerode's
 * `container.wait()` resolves with the body only, so a `start()` sent after it may reach the engine
 * first; a container that exits at once (`true`) then exits before the wait exists, there is no
 * "next" exit, and the wait never returns (test/e2e/docker-wait-late.test.ts).
 */
import type { IncomingMessage } from 'node:http';
import type Docker from 'dockerode';
import type { EngineWatch } from './docker-engine.js';

/** The wait's body is a small JSON object; more than this is not the engine's answer, bytes. */
const MAX_BODY_BYTES = 64 * 1024;

/** What the engine answers when the condition is met (Docker Engine API ContainerWaitResponse). */
export interface WaitResult {
  StatusCode: number;
}

/**
 * Registers a wait for `condition` on `container` and resolves once the engine holds it.
 * @returns `exited`: the container's exit status once the condition is met; it rejects with
 *   EngineDownError when the engine goes down first, or an Error when the answer is not a wait
 *   response.
 * @throws the engine's error (`statusCode` 404 no such container, 400 bad condition), EngineDownError.
 */
export async function registerWait(
  engine: EngineWatch,
  container: Docker.Container,
  condition: 'next-exit' | 'not-running',
): Promise<{ exited: Promise<WaitResult> }> {
  const res = await engine.guard(
    (abortSignal) =>
      new Promise<IncomingMessage>((resolve, reject) => {
        container.modem.dial(
          {
            path: `/containers/${container.id}/wait?`,
            method: 'POST',
            isStream: true,
            abortSignal,
            statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such container', 500: 'server error' },
            options: { condition },
          },
          (err: Error | null, stream: IncomingMessage) => (err ? reject(err) : resolve(stream)),
        );
      }),
  );
  const exited = engine.guard((abortSignal) => readResult(res, abortSignal));
  // A failed wait is reported to whoever awaits `exited`; do not let it go unhandled meanwhile.
  exited.catch(() => undefined);
  return { exited };
}

/** Reads the wait's JSON body; the response is destroyed when `signal` aborts (the engine went down). */
function readResult(res: IncomingMessage, signal: AbortSignal): Promise<WaitResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const abort = () => res.destroy();
    signal.addEventListener('abort', abort, { once: true });
    const done = (err: Error | undefined, result?: WaitResult) => {
      signal.removeEventListener('abort', abort);
      if (err) reject(err);
      else resolve(result!);
    };
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) res.destroy(new Error(`the engine's wait answer is over ${MAX_BODY_BYTES} bytes`));
      else chunks.push(c);
    });
    res.once('error', (err) => done(err));
    res.once('close', () => {
      if (!res.complete) return done(new Error('the engine closed the wait before the container exited'));
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return done(new Error('the engine answered the wait with something that is not JSON'));
      }
      const code = (body as { StatusCode?: unknown } | null)?.StatusCode;
      if (typeof code !== 'number') return done(new Error('the engine answered the wait without a StatusCode'));
      done(undefined, { StatusCode: code });
    });
  });
}
