/** SHA-256 of a file, streamed (constant memory). */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/**
 * Hashes the first `length` bytes of `path` (the whole file when undefined).
 * @returns lowercase hex SHA-256. @throws the read error (ENOENT, EACCES, …).
 */
export function sha256File(path: string, length?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    if (length === 0) return resolve(hash.digest('hex'));
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(length !== undefined ? { start: 0, end: length - 1 } : {}) });
    stream.on('data', (c) => hash.update(c as Buffer));
    stream.on('error', reject);
    stream.on('end', () => resolve(hash.digest('hex')));
  });
}
