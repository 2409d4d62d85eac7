/** SHA-256 of a file, streamed (constant memory). */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/**
 * Hashes the first `length` bytes of `path` (the whole file when undefined).
 * @returns lowercase hex SHA-256. @throws the read error (ENOENT, EACCES, …).
 */
export async function sha256File(path: string, length?: number): Promise<string> {
  const hash = createHash('sha256');
  await updateFromFile(hash, path, length);
  return hash.digest('hex');
}

/**
 * Feeds the first `length` bytes of `path` (the whole file when undefined) into `hash`, streamed
 * in 1 MiB reads. @throws the read error (ENOENT, EACCES, …).
 */
export function updateFromFile(hash: Hash, path: string, length?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (length === 0) return resolve();
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(length !== undefined ? { start: 0, end: length - 1 } : {}) });
    stream.on('data', (c) => hash.update(c as Buffer));
    stream.on('error', reject);
    stream.on('end', () => resolve());
  });
}
