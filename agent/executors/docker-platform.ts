/**
 * What the Docker engine adds to placement (issue 16): its platform and the free disk where it
 * keeps images and containers. From `GET /info` (Docker Engine API, SystemInfo): `OSType`
 * (`linux`), `Architecture` (uname-style, `x86_64`/`aarch64`: mapped to Docker's platform names
 * by shared/platform.ts), `DockerRootDir` (`/var/lib/docker`) and `LoggingDriver` (the default log
 * driver, ./docker-logging.ts). Asked once (none of them changes
 * while the engine runs; a failed ask is repeated at the next probe); the free disk is measured
 * at every probe with `fs.statfs`, and only when the engine is on this machine (a unix socket):
 * the root dir of a remote engine or of one in a VM (Docker Desktop) is not a path here.
 */
import type Docker from 'dockerode';
import { platformOfEngine } from '../../shared/platform.js';
import type { DockerInfo, Platform } from '../../shared/schemas/index.js';
import { diskOf } from '../placement-facts.js';

/** The engine's `/info` figures cutter keeps. */
interface Known {
  platform: Platform | null;
  rootDir: string | null;
  /** The default log driver (`LoggingDriver`, e.g. `json-file`). */
  loggingDriver: string | null;
}

/** The engine's platform and free disk, for `capacity.docker` (see the file comment). */
export class EngineFacts {
  private known?: Known;

  constructor(private readonly docker: Docker) {}

  /** The engine's default log driver (`GET /info` `LoggingDriver`), or null until read. */
  get loggingDriver(): string | null {
    return this.known?.loggingDriver ?? null;
  }

  /**
   * @param call runs one engine call under the executor's deadline (EngineWatch.guard).
   * @returns `platform` and `diskFree` (bytes) as far as known; never throws.
   */
  async read(call: <T>(fn: (abortSignal: AbortSignal) => Promise<T>) => Promise<T>): Promise<Pick<DockerInfo, 'platform' | 'diskFree'>> {
    if (!this.known) {
      const info = (await call((abortSignal) =>
        (this.docker.info as (o: object) => Promise<Record<string, unknown>>).call(this.docker, { abortSignal }),
      ).catch(() => null)) as Record<string, unknown> | null;
      if (info) {
        this.known = {
          platform: platformOfEngine(info.OSType, info.Architecture),
          rootDir: typeof info.DockerRootDir === 'string' && info.DockerRootDir ? info.DockerRootDir : null,
          loggingDriver: typeof info.LoggingDriver === 'string' ? info.LoggingDriver : null,
        };
      }
    }
    const known = this.known;
    if (!known) return {};
    const local = Boolean((this.docker.modem as { socketPath?: unknown }).socketPath);
    const disk = local && known.rootDir ? await diskOf(known.rootDir, false) : null;
    return { ...(known.platform ? { platform: known.platform } : {}), ...(disk ? { diskFree: disk.free } : {}) };
  }
}
