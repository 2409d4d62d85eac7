/**
 * The receiving half of a chunked transfer: a partial file `<dest>.cutter-part` written strictly
 * in order, with a sidecar `<dest>.cutter-part.json` (`{size, sha256}`) so a transfer of the same
 * content resumes where it stopped, across reconnects and process restarts. When every byte is
 * written, the SHA-256 of the whole part file is checked and the part is renamed onto `dest`
 * (a rename replaces a symlink at `dest` instead of writing through it).
 *
 * The SHA-256 is computed as the bytes are written (in order, so it is the hash of the file's
 * content), not by reading the finished file back: that read was a second pass over every byte
 * after the last chunk, on the transfer's critical path (bench/file-transfer-results.md). A
 * resumed part hashes the bytes it keeps when it is opened.
 */
import { constants } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { updateFromFile } from './hash.js';

export const PART_SUFFIX = '.cutter-part';

interface Sidecar {
  size: number;
  sha256: string;
}

/** One file being received. */
export class PartFile {
  /** Bytes written contiguously from 0. */
  offset = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** SHA-256 of bytes 0 … offset, in order. */
  private readonly hash = createHash('sha256');

  private constructor(
    readonly dest: string,
    readonly size: number,
    readonly sha256: string,
    private readonly fh: FileHandle,
  ) {}

  /**
   * Opens (or resumes) the part file for `dest`. A part file whose sidecar names the same size
   * and SHA-256 is kept and `offset` starts at its length; anything else starts from 0.
   * The part file is opened with O_NOFOLLOW: a symlink planted at its name is refused (ELOOP).
   * @throws the file system error.
   */
  static async open(dest: string, size: number, sha256: string, mode = 0o644): Promise<PartFile> {
    const part = dest + PART_SUFFIX;
    let keep = 0;
    try {
      const side = JSON.parse(await readFile(`${part}.json`, 'utf8')) as Sidecar;
      if (side.size === size && side.sha256 === sha256) keep = Math.min((await stat(part)).size, size);
    } catch {
      keep = 0;
    }
    const fh = await open(part, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, mode);
    await fh.truncate(keep);
    if (keep === 0) await writeFile(`${part}.json`, JSON.stringify({ size, sha256 } satisfies Sidecar), { mode: 0o600 });
    const p = new PartFile(dest, size, sha256, fh);
    try {
      await updateFromFile(p.hash, part, keep);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    p.offset = keep;
    return p;
  }

  /** Path of the partial file. */
  get partPath(): string {
    return this.dest + PART_SUFFIX;
  }

  /**
   * Writes a chunk when it is the next one in order (writes are queued, so calls may overlap).
   * @returns the contiguous offset after it, or null when the chunk was dropped (out of order,
   *   or past the declared size).
   */
  write(offset: number, data: Buffer): Promise<number | null> {
    const run = this.queue.then(async () => {
      if (offset !== this.offset || offset + data.length > this.size) return null;
      let written = 0;
      while (written < data.length) {
        const r = await this.fh.write(data, written, data.length - written, offset + written);
        written += r.bytesWritten;
      }
      this.hash.update(data);
      this.offset = offset + data.length;
      return this.offset;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves once the writes queued so far are done (so `offset` is final for them). */
  async settled(): Promise<void> {
    await this.queue;
  }

  /** True once every byte is written. */
  get complete(): boolean {
    return this.offset === this.size;
  }

  /**
   * Checks the SHA-256 of every byte written and moves the part file onto `dest`. On a mismatch
   * the part file and its sidecar are deleted (the next attempt starts from 0). Call it once, when
   * `complete`.
   * @returns the SHA-256 found and whether it matched.
   */
  async finish(): Promise<{ ok: boolean; sha256: string }> {
    await this.queue;
    await this.fh.sync().catch(() => undefined);
    await this.fh.close();
    const sha256 = this.hash.digest('hex');
    if (sha256 !== this.sha256) {
      await this.discard();
      return { ok: false, sha256 };
    }
    await rename(this.partPath, this.dest);
    await rm(`${this.partPath}.json`, { force: true });
    return { ok: true, sha256 };
  }

  /** Closes the file, keeping it for a later resume. */
  async close(): Promise<void> {
    await this.queue;
    await this.fh.close().catch(() => undefined);
  }

  /** Closes and deletes the part file and its sidecar. */
  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.partPath, { force: true });
    await rm(`${this.partPath}.json`, { force: true });
  }
}
