/**
 * What the node announces of its Docker engine (`capacity.docker`): whether it answers, its
 * version and running containers (`probe()`), and what it adds to placement (issue 16): its
 * platform and the free disk where it keeps images and containers. From `GET /info` (Docker Engine API, SystemInfo): `OSType`
 * (`linux`), `Architecture` (uname-style, `x86_64`/`aarch64`: mapped to Docker's platform names
 * by shared/platform.ts), `DockerRootDir` (`/var/lib/docker`) and `LoggingDriver` (the default log
 * driver, ./docker-logging.ts). Asked once (none of them changes
 * while the engine runs; a failed ask is repeated at the next probe); the free disk is measured
 * at every probe with `fs.statfs`, and only when the engine is on this machine (a unix socket):
 * the root dir of a remote engine or of one in a VM (Docker Desktop) is not a path here.
 */
import type Docker from 'dockerode';
import { errorMessage } from '../../shared/errors.js';
import { platformOfEngine } from '../../shared/platform.js';
import type { DockerInfo, Platform } from '../../shared/schemas/index.js';
import { diskOf } from '../placement-facts.js';
import { CALL_MS } from './docker-container.js';
import { EngineDownError, type EngineWatch } from './docker-engine.js';
import { statusCode } from './docker-image.js';

/** How long `probe()` reuses the engine's version between engine restarts, ms. */
export const VERSION_MAX_AGE_MS = 60_000;
/** How long `probe()` reuses the count of running containers while no task of this node starts or ends, ms. */
export const RUNNING_MAX_AGE_MS = 5_000;

/** The engine's `/info` figures cutter keeps. */
interface Known {
  platform: Platform | null;
  rootDir: string | null;
  /** The default log driver (`LoggingDriver`, e.g. `json-file`). */
  loggingDriver: string | null;
}

/** The engine's version, platform and free disk, for `capacity.docker` (see the file comment). */
export class EngineFacts {
  private known?: Known;
  /** The last answer of the engine to `probe()` (kept when a later probe only runs out of time). */
  private lastInfo?: DockerInfo;
  /** When `probe()` last asked the engine's version (Date.now(), ms); 0 after the engine came back. */
  private versionAt = 0;
  /** The running containers at the last `GET /containers/json`, and when (Date.now(), ms; 0: ask at the next probe). */
  private running?: number;
  private listedAt = 0;

  /** @param engine the executor's watch: its state says whether the engine answers, its guard bounds each call. */
  constructor(
    private readonly docker: Docker,
    private readonly engine: EngineWatch,
  ) {}

  /** The engine answers again after it was down: the next probe asks its version (it may have been upgraded). */
  engineBack(): void {
    this.versionAt = 0;
    this.listedAt = 0;
  }

  /** A container of this node started or went: the next probe counts the running ones again. */
  containersChanged(): void {
    this.listedAt = 0;
  }

  /**
   * Asks the engine how many containers run (`GET /containers/json`) once per `RUNNING_MAX_AGE_MS`
   * or after one of this node's containers started or went, and its version (`GET /version`) once
   * per engine start or `VERSION_MAX_AGE_MS`, each within a deadline: an idle node probes at every
   * heartbeat (1 s by default), and each call through dockerode costs about 1 ms of CPU. Whether the
   * engine is available is the watch's word (it pings every 5 s and follows the event stream): a
   * probe between two counts, or one that only runs out of time on a busy engine, keeps the last
   * answer. Never throws: an unreachable engine gives `{available: false, error}`.
   */
  async probe(): Promise<DockerInfo> {
    // Marked down by a failed call while nothing watches it: look again (the watch does otherwise).
    if (!this.engine.state.up && !this.engine.watching) await this.engine.confirm();
    const state = this.engine.state;
    if (!state.up) return { available: false, error: state.reason };
    const call = <T>(fn: (abortSignal: AbortSignal) => Promise<T>) => this.engine.guard(fn, CALL_MS);
    if (this.lastInfo && this.running !== undefined && Date.now() - this.listedAt < RUNNING_MAX_AGE_MS) {
      return { ...this.lastInfo, ...(await this.read(call)), containersRunning: this.running };
    }
    const askVersion = !this.lastInfo || Date.now() - this.versionAt > VERSION_MAX_AGE_MS;
    try {
      // listContainers() lists running containers only (the API's `all` defaults to false).
      const list = call((abortSignal) => this.docker.listContainers({ abortSignal }));
      const [v, running] = await Promise.all([
        askVersion
          ? call((abortSignal) => (this.docker.version as (o: object) => Promise<Docker.DockerVersion>).call(this.docker, { abortSignal }))
          : { Version: this.lastInfo!.version, ApiVersion: this.lastInfo!.apiVersion },
        // The version call, when made, says whether the engine answers; else this one does.
        askVersion ? list.catch(() => null) : list,
      ]);
      if (askVersion) this.versionAt = Date.now();
      this.running = running?.length;
      this.listedAt = Date.now();
      this.lastInfo = { available: true, version: v.Version, apiVersion: v.ApiVersion, ...(await this.read(call)) };
      return { ...this.lastInfo, ...(this.running !== undefined ? { containersRunning: this.running } : {}) };
    } catch (err) {
      if (err instanceof EngineDownError) return { available: false, error: err.reason };
      // Slow, not gone: it answered the watch's pings (guard() checked).
      if (this.lastInfo && !statusCode(err)) return this.lastInfo;
      return { available: false, error: `Docker engine not reachable: ${errorMessage(err)}` };
    }
  }

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
