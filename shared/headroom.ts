/** `--local-headroom` text: a share of memory (`20%`) or a size (`4g`), for `--prefer-local`. */
import type { Headroom } from './schemas/index.js';
import { parseBytes } from './units.js';

/**
 * Parses `20%` (of the local node's memory, 0-100) or a size in Docker's units (`4g`).
 * @throws Error saying what is expected.
 */
export function parseHeadroom(text: string): Headroom {
  const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  if (pct && Number(pct[1]) <= 100) return { percent: Number(pct[1]) };
  if (!pct) {
    try {
      return { bytes: parseBytes(text) };
    } catch {
      // Fall through to the message below.
    }
  }
  throw new Error(`"${text}" is not a headroom: use a share of memory up to 100% (20%) or a size (4g)`);
}
