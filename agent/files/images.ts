/**
 * The node's Docker images, for image sync (`cutter image push`): which id the engine has for a
 * name, and `docker load` of a received `docker save` tarball (Engine API `POST /images/load`,
 * through dockerode's `loadImage`; its response is a JSON-lines progress stream whose lines carry
 * `stream: "Loaded image: NAME\n"` or `error`).
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type Docker from 'dockerode';
import { CutterError, errorMessage } from '../../shared/errors.js';

export interface ImageStore {
  /** The engine's image id (`sha256:…`) for a name or id, or null when it has none. */
  inspect(image: string): Promise<string | null>;
  /**
   * Loads a tarball and returns the id the engine now has for `image`.
   * @throws CutterError START_FAILED when the engine refuses the tarball or the image is not in it.
   */
  load(tarPath: string, image: string): Promise<string>;
  /** Deletes a received tarball. */
  discard(tarPath: string): Promise<void>;
}

/** ImageStore over a dockerode client. */
export class DockerImageStore implements ImageStore {
  constructor(private readonly docker: Docker) {}

  async inspect(image: string): Promise<string | null> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    }
  }

  async load(tarPath: string, image: string): Promise<string> {
    const stream = (await this.docker.loadImage(createReadStream(tarPath), { quiet: true })) as NodeJS.ReadableStream;
    const lines = await new Promise<string>((resolve, reject) => {
      let out = '';
      stream.on('data', (c: Buffer) => (out += c.toString()));
      stream.on('end', () => resolve(out));
      stream.on('error', reject);
    });
    for (const line of lines.split('\n')) {
      try {
        const msg = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
        if (msg.error) throw new CutterError('START_FAILED', msg.errorDetail?.message ?? msg.error);
      } catch (err) {
        if (err instanceof CutterError) throw err;
      }
    }
    const id = await this.inspect(image).catch((err) => {
      throw new CutterError('START_FAILED', `inspect ${image} after load: ${errorMessage(err)}`);
    });
    if (!id) throw new CutterError('START_FAILED', `the tarball loaded, but the engine has no image ${image}: ${lines.slice(0, 300)}`);
    return id;
  }

  async discard(tarPath: string): Promise<void> {
    await rm(tarPath, { force: true });
  }
}
