/**
 * Reads the image ids out of a `docker save` tarball without unpacking it: the tar headers are
 * walked (POSIX ustar: 512-byte headers, name at bytes 0-99, size in octal at 124-135, data
 * padded to 512 bytes) until `manifest.json`, whose entries name each image's config blob
 * (`blobs/sha256/<hex>` in OCI layout, `<hex>.json` in the legacy one); the image id is
 * `sha256:<hex>` of that config (Docker image spec: the id is the digest of the config).
 */
import { open } from 'node:fs/promises';

/**
 * @returns the image ids with their repo tags, as the tarball's manifest lists them.
 * @throws Error when the file is not a tar with a manifest.json.
 */
export async function imagesInTar(path: string): Promise<{ id: string; repoTags: string[] }[]> {
  const fh = await open(path, 'r');
  try {
    const header = Buffer.alloc(512);
    let offset = 0;
    for (;;) {
      const { bytesRead } = await fh.read(header, 0, 512, offset);
      if (bytesRead < 512 || header.every((b) => b === 0)) break;
      const name = header.toString('utf8', 0, 100).replace(/\0.*$/s, '');
      const prefix = header.toString('utf8', 345, 500).replace(/\0.*$/s, '');
      const size = parseInt(header.toString('utf8', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
      const full = prefix ? `${prefix}/${name}` : name;
      if (full === 'manifest.json' || full === './manifest.json') {
        const body = Buffer.alloc(size);
        await fh.read(body, 0, size, offset + 512);
        const manifest = JSON.parse(body.toString('utf8')) as { Config: string; RepoTags?: string[] | null }[];
        return manifest.map((m) => ({ id: `sha256:${/([0-9a-f]{64})(\.json)?$/.exec(m.Config)?.[1] ?? ''}`, repoTags: m.RepoTags ?? [] }));
      }
      offset += 512 + Math.ceil(size / 512) * 512;
    }
  } finally {
    await fh.close();
  }
  throw new Error(`${path} is not a docker save tarball: no manifest.json`);
}
