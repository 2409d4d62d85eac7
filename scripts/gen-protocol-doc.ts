/**
 * Writes docs/protocol.md from the code (`npm run docs:protocol`) and prints its path.
 * `--check` writes nothing and exits 1 when the file is out of date (for CI).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderProtocolDoc } from './protocol-doc.js';

/** The directory holding package.json, walking up from this file (works from scripts/ and dist/scripts/). */
export function projectRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

function main(argv: string[]): number {
  const path = join(projectRoot(), 'docs', 'protocol.md');
  const doc = renderProtocolDoc();
  if (argv.includes('--check')) {
    const current = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (current === doc) {
      console.log(`${path} is up to date`);
      return 0;
    }
    console.error(`${path} is out of date: run npm run docs:protocol`);
    return 1;
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, doc);
  console.log(path);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
