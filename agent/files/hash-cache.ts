/**
 * The SHA-256 of the files a node sends (`get`), kept by path while the file's size and mtime stay
 * the same, so sending a file again, or resuming its send, does not read it once more to hash it.
 */
import { stat } from 'node:fs/promises';
import { sha256File } from '../../shared/transfer/hash.js';

interface Entry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Entries kept; the least recently stored goes first. */
const MAX_ENTRIES = 100;

export class HashCache {
  private readonly entries = new Map<string, Entry>();

  /**
   * The file's size (bytes) and SHA-256 (lowercase hex): cached while unchanged, else read and hashed.
   * @throws the file system error (ENOENT, EACCES, …).
   */
  async of(path: string): Promise<{ size: number; sha256: string }> {
    const st = await stat(path);
    const cached = this.entries.get(path);
    if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs) return cached;
    const entry = { size: st.size, mtimeMs: st.mtimeMs, sha256: await sha256File(path, st.size) };
    this.store(path, entry);
    return entry;
  }

  /**
   * Records the SHA-256 of a file the node has just received and checked (a `put`), so fetching it
   * back (`cutter cp node:…`) starts sending at once instead of first reading the whole file.
   * A file that is gone meanwhile is not recorded.
   */
  async remember(path: string, sha256: string): Promise<void> {
    const st = await stat(path).catch(() => undefined);
    if (st) this.store(path, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  }

  private store(path: string, entry: Entry): void {
    this.entries.delete(path);
    this.entries.set(path, entry);
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }
}
