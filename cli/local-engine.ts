/**
 * Asks this machine's Docker engine about one image without loading dockerode: `GET
 * /images/{name}/json` (Docker Engine API, "Inspect an image"), spoken with node:http over the
 * engine's socket. Why: `cutter run … docker run IMG` asks it before every submit
 * (cli/placement-flags.ts, the platform of an image built here), and importing dockerode, which
 * loads gRPC, protobufjs and ssh2 at import, took 170-230 ms of the CLI's start here
 * (bench/profile.md, "Dispatch"); this request takes a few ms.
 *
 * Where the engine is, as the docker CLI and docker-modem read it: DOCKER_HOST unset (the
 * user's Docker Desktop socket `~/.docker/run/docker.sock` when it exists, else
 * `/var/run/docker.sock`), `unix://PATH`, or plain `tcp://HOST:PORT`. A TLS, SSH or named-pipe
 * engine is left to dockerode (`null` from engineAddress: the caller falls back).
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isJsonObject } from '../shared/codec.js';

/** How to reach the engine with node:http: a unix socket or a plain TCP host and port. */
export type EngineAddress = { socketPath: string } | { host: string; port: number };

/** Largest inspect answer read, bytes (an image's JSON is a few KiB; its layer list grows with layers). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** What an image reference may hold (name, tag, digest): anything else is not asked for. */
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$/;

/**
 * @param env where DOCKER_HOST, DOCKER_TLS_VERIFY and HOME come from.
 * @returns the engine's address, or null when only dockerode can reach it (TLS, ssh://, npipe://).
 */
export function engineAddress(env: NodeJS.ProcessEnv = process.env): EngineAddress | null {
  const host = env.DOCKER_HOST;
  if (!host) {
    const user = join(env.HOME ?? homedir(), '.docker', 'run', 'docker.sock');
    return { socketPath: existsSync(user) ? user : '/var/run/docker.sock' };
  }
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) || '/var/run/docker.sock' };
  if (env.DOCKER_TLS_VERIFY === '1') return null;
  let url: URL;
  try {
    url = new URL(host.includes('//') ? host : `tcp://${host}`);
  } catch {
    return null;
  }
  // docker-modem, too, takes port 2376 for TLS.
  if (url.protocol !== 'tcp:' || !url.hostname || url.port === '2376') return null;
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 2375) };
}

/**
 * `GET /images/{image}/json` on the engine at `address`.
 * @returns the engine's JSON for the image, or null when it has no such image, answers anything
 *   but 200, sends more than MAX_BODY_BYTES or no JSON object, cannot be reached, or takes longer
 *   than `timeoutMs`. Never throws.
 */
export function inspectImage(address: EngineAddress, image: string, timeoutMs: number): Promise<Record<string, unknown> | null> {
  if (!IMAGE_REF.test(image) || image.includes('..')) return Promise.resolve(null);
  return new Promise((resolve) => {
    const req = request({ ...address, method: 'GET', path: `/images/${image}/json` }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(null);
        return;
      }
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) req.destroy();
        else parts.push(c);
      });
      res.on('end', () => {
        try {
          const body: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
          resolve(isJsonObject(body) ? body : null);
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
      res.on('close', () => resolve(null));
    });
    const deadline = setTimeout(() => req.destroy(), timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('error', () => resolve(null));
    req.end();
  });
}
