/**
 * Bundles the built CLI (dist/cli/main.js, tsc's output) into one entry file plus lazily loaded
 * chunks, with esbuild, in place: dist/cli/main.js becomes the bundle's entry and the chunks go to
 * dist/cli/chunks/. Run by `npm run build` after tsc.
 *
 * Why: a command's start is mostly module loading. Unbundled, `cutter run` resolves, reads and
 * compiles about 550 files (our own modules, zod's 95, mqtt's 53 …); bundled, a handful. Measured
 * with farm-bench (10 pairs, bench/profile.md): `cutter run … exec -- true` 0.46 s of CPU instead of
 * 0.76 s (0.62×). Each top-level command stays a dynamic import (cli/main.ts), so it stays its own
 * chunk and a command still loads only what it uses.
 *
 * What stays outside the bundle, loaded from node_modules as before: native addons and what loads
 * them (better-sqlite3, node-pty, dockerode → ssh2 → cpu-features), pino and pino-pretty (pino
 * resolves its transports and worker files by path), pg's optional native binding, and the
 * optional native helpers of ws. Only the CLI is bundled: tests and scripts that import dist/
 * modules directly keep using tsc's files.
 *
 * Usage: `node dist/scripts/bundle-cli.js` (from the project root). Exits 1 with esbuild's message on an error.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ROOT } from './procs.js';

/** Packages loaded from node_modules at run time instead of being bundled (see the file comment). */
export const EXTERNAL = [
  'better-sqlite3',
  'node-pty',
  'dockerode',
  'ssh2',
  'cpu-features',
  'pino',
  'pino-pretty',
  'pg-native',
  'bufferutil',
  'utf-8-validate',
];

const outdir = join(ROOT, 'dist', 'cli');
rmSync(join(outdir, 'chunks'), { recursive: true, force: true });
try {
  const result = await build({
    entryPoints: [join(outdir, 'main.js')],
    outdir,
    allowOverwrite: true,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunks/[name]-[hash]',
    external: EXTERNAL,
    // Bundled CommonJS packages call require(): give the ES module bundle one.
    banner: { js: "import { createRequire as __cutterRequire } from 'node:module'; const require = __cutterRequire(import.meta.url);" },
    logLevel: 'warning',
    legalComments: 'none',
  });
  if (result.errors.length > 0) process.exit(1);
} catch (err) {
  process.stderr.write(`bundle-cli: ${(err as Error).message}\n`);
  process.exit(1);
}
