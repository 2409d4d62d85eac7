/**
 * Images for the `docker` executor: makes sure a task's image is on the engine, pulling it with
 * progress when it is not, and the engine error helpers the executor shares.
 *
 * Facts it relies on (../shared/reference/protocol-facts.md §3, Engine API swagger):
 * - `GET /images/{name}/json` answers 404 when the image is not there;
 * - `pull()` resolves with the progress stream before the pull is done, and `followProgress`
 *   reports `{"error": …}` lines as ordinary events: every event is checked for `error`.
 */
import type Docker from 'dockerode';
import { CutterError, errorMessage } from '../../shared/errors.js';
import type { ExecutorContext } from './executor.js';

/** Minimum ms between two pull progress events. */
const PROGRESS_INTERVAL_MS = 250;

type ProgressEvent = {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
};

/** The HTTP status of a failed engine call (dockerode puts it on the error), if any. */
export function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/** The engine's own message for a failed call, else the error's. */
export function engineMessage(err: unknown): string {
  return (err as { json?: { message?: string } })?.json?.message ?? errorMessage(err);
}

/**
 * Makes sure the image is on this engine, pulling it with progress when it is not.
 * @throws CutterError IMAGE_PULL_FAILED with the registry's message; START_FAILED when the engine
 *   cannot even say whether it has the image.
 */
export async function ensureImage(docker: Docker, image: string, ctx: ExecutorContext, signal: AbortSignal): Promise<void> {
  try {
    await docker.getImage(image).inspect();
    return;
  } catch (err) {
    if (statusCode(err) !== 404) throw new CutterError('START_FAILED', `cannot inspect image ${image}: ${errorMessage(err)}`);
  }
  ctx.progress({ phase: 'pull', message: `image ${image} is not on ${ctx.node}: pulling` });
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(image, { abortSignal: signal })) as NodeJS.ReadableStream;
  } catch (err) {
    throw new CutterError('IMAGE_PULL_FAILED', `image ${image} is not on node ${ctx.node} and cannot be pulled: ${engineMessage(err)}`);
  }
  const layers = new Map<string, { current: number; total: number }>();
  let lastSent = 0;
  await new Promise<void>((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        if (err || failure) reject(new CutterError('IMAGE_PULL_FAILED', `pulling ${image} failed: ${failure ?? errorMessage(err)}`));
        else resolve();
      },
      (event: ProgressEvent) => {
        if (event.error || event.errorDetail?.message) {
          failure = event.errorDetail?.message ?? event.error;
          return;
        }
        if (event.id && event.progressDetail?.total)
          layers.set(event.id, { current: event.progressDetail.current ?? 0, total: event.progressDetail.total });
        const now = Date.now();
        if (now - lastSent < PROGRESS_INTERVAL_MS) return;
        lastSent = now;
        let current = 0;
        let total = 0;
        for (const l of layers.values()) {
          current += l.current;
          total += l.total;
        }
        ctx.progress({
          phase: 'pull',
          message: `${event.id ? `${event.id}: ` : ''}${event.status ?? 'pulling'}`,
          ...(total ? { current, total } : {}),
        });
      },
    );
  });
  ctx.progress({ phase: 'pull', message: `pulled ${image}` });
}
