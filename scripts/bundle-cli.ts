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
 * them (better-sqlite3, node-pty, ssh2 → cpu-features), pino and pino-pretty (pino resolves its
 * transports and worker files by path), pg's optional native binding, and the optional native
 * helpers of ws. Only the CLI is bundled: tests and scripts that import dist/ modules directly keep
 * using tsc's files.
 *
 * dockerode is bundled, but two of its files load only when first called (`LAZY`): docker-modem's
 * SSH transport (ssh2, only for DOCKER_HOST=ssh://) and dockerode's BuildKit session (gRPC and
 * protobufjs, only for `buildImage` with BuildKit). docker-modem and dockerode require both at
 * load, so every process that touched the Engine API held them: an idle agent 80.0 MiB RSS with
 * them, 71.4 MiB without (bench/profile.md, "Agent idle footprint").
 *
 * Usage: `node dist/scripts/bundle-cli.js [DIR]` (from the project root, after tsc). With DIR the
 * bundle goes to DIR/cli/ instead, and tsc's dist/cli/ is left as it is (test/integration/bundle.test.ts;
 * DIR must sit directly in the project, where node_modules and package.json are found from it).
 * Exits 1 with esbuild's message on an error.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { ROOT } from './procs.js';

/** Packages loaded from node_modules at run time instead of being bundled (see the file comment). */
export const EXTERNAL = [
  'better-sqlite3',
  'node-pty',
  'ssh2',
  'cpu-features',
  'pino',
  'pino-pretty',
  'pg-native',
  'bufferutil',
  'utf-8-validate',
];

/**
 * Files of bundled packages loaded from node_modules instead: `[package, request in its code, the
 * file as a package subpath, how]`. `call`: the file exports one function and is required at the
 * package's load but called rarely; in the bundle it becomes a wrapper that requires the real file
 * on its first call. A list of names: the same for a file whose exports are those functions
 * (`exports.NAME = …`). `as-is`: the package already requires it only when used, but the file
 * finds its data next to itself (`__dirname`, which an ES module bundle does not have). A
 * request of a built-in module (dockerode's `zlib`) works as a list of names too.
 *
 * MQTT.js requires its WebSocket transport (with the ws package) and its TCP transport's SOCKS
 * proxy support (the socks package) on the first connect, whatever the URL: a `cutter` command
 * over mqtt:// or mqtts:// needs neither (`cutter nodes list`: ~12 ms of its ~230, bench/profile.md).
 */
export const LAZY: ReadonlyArray<readonly [pkg: string, request: string, subpath: string, how: 'call' | 'as-is' | readonly string[]]> = [
  ['docker-modem', './ssh', 'docker-modem/lib/ssh.js', 'call'],
  ['dockerode', './session', 'dockerode/lib/session.js', 'call'],
  ['dockerode', './buildkit', 'dockerode/lib/buildkit.js', 'as-is'],
  ['mqtt', './ws', 'mqtt/lib/connect/ws', ['streamBuilder', 'browserStreamBuilder']],
  ['mqtt', './socks', 'mqtt/lib/connect/socks', ['default']],
  // dockerode gzips a build context with zlib, which it requires at load: an idle agent never builds.
  ['dockerode', 'zlib', 'zlib', ['createGzip']],
  // dockerode packs a build context with tar-fs (tar-stream, readable-stream 3), required at load.
  ['dockerode', 'tar-fs', 'tar-fs', ['pack']],
  // docker-modem's duplex for `openStdin` without `hijack` (cutter attaches with `hijack`); a constructor,
  // which the `call` wrapper serves too: HttpDuplex returns `new HttpDuplex()` when not called with it.
  ['docker-modem', './http_duplex', 'docker-modem/lib/http_duplex.js', 'call'],
  // MQTT.js's timers in a Web Worker, for browsers only (its get-timer.js picks setInterval in Node).
  ['mqtt', 'worker-timers', 'worker-timers', ['setInterval', 'clearInterval']],
  // MQTT.js requires its TLS transport (node:tls) on the first connect, whatever the URL; only mqtts:// uses it.
  ['mqtt', './tls', 'mqtt/lib/connect/tls', ['default']],
  // docker-modem requires node:https at load, for an engine at https:// only (DOCKER_HOST=tcp:// with TLS).
  ['docker-modem', 'https', 'https', ['request', 'get']],
];

/** The esbuild plugin that loads each `LAZY` file from node_modules (on first call unless `as-is`). */
const lazyFiles: Plugin = {
  name: 'lazy-files',
  setup(b) {
    const names = new Map<string, readonly string[]>();
    for (const [pkg, request, subpath, how] of LAZY) {
      const escaped = request.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      const namespace = typeof how === 'string' ? `lazy-${how}` : 'lazy-exports';
      if (typeof how !== 'string') names.set(subpath, how);
      b.onResolve({ filter: new RegExp(`^${escaped}$`) }, (args) =>
        args.importer.includes(`/node_modules/${pkg}/`) ? { path: subpath, namespace } : undefined,
      );
    }
    for (const ns of ['lazy-call', 'lazy-as-is', 'lazy-exports']) {
      b.onResolve({ filter: /.*/, namespace: ns }, (args) => ({ path: args.path, external: true }));
    }
    const load = (path: string) => `let real; const load = () => (real ??= require(${JSON.stringify(path)}));`;
    b.onLoad({ filter: /.*/, namespace: 'lazy-call' }, (args) => ({
      contents: `${load(args.path)} module.exports = function () { return load().apply(this, arguments); };`,
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-exports' }, (args) => ({
      contents: [
        load(args.path),
        "Object.defineProperty(exports, '__esModule', { value: true });",
        ...names.get(args.path)!.map((n) => `exports.${n} = function () { return load().${n}.apply(this, arguments); };`),
      ].join('\n'),
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-as-is' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/**
 * The `debug` package (MQTT.js, mqtt-packet and docker-modem log through it) as loggers that do
 * nothing unless `DEBUG` is set when the process starts; with `DEBUG` set, the real package from
 * node_modules, as before. A disabled `debug` logger still costs a call with a rest array and a
 * getter that checks the namespace list, and mqtt-packet calls one several times for every packet
 * parsed or written: 3.9 % of the embedded server's CPU in the throughput benchmark
 * (bench/profile.md). Nothing in cutter turns `debug` on at run time.
 */
const quietDebug: Plugin = {
  name: 'quiet-debug',
  setup(b) {
    b.onResolve({ filter: /^debug$/ }, (args) =>
      args.namespace === 'quiet-debug' ? { path: 'debug', external: true } : { path: 'debug', namespace: 'quiet-debug' },
    );
    b.onLoad({ filter: /.*/, namespace: 'quiet-debug' }, () => ({
      contents: `
        if (process.env.DEBUG) module.exports = require('debug');
        else {
          const createDebug = (namespace) => {
            const off = () => {};
            off.enabled = false;
            off.namespace = namespace;
            off.extend = (sub, delimiter = ':') => createDebug(namespace + delimiter + sub);
            off.destroy = () => false;
            return off;
          };
          Object.assign(createDebug, { enable() {}, disable: () => '', enabled: () => false, names: [], skips: [], formatters: {} });
          module.exports = createDebug;
        }`,
      loader: 'js',
    }));
  },
};

/**
 * docker-modem formats every request's options for a debug line before it calls `debug`, so the
 * `util.inspect(options, {showHidden: true, depth: null})` runs on each Docker API call with the
 * line off: ~0.3 ms a call while the code is cold, part of every idle agent's beat (its engine
 * probe) and of every task. The bundle asks `debug.enabled` first; the line is the same when on.
 */
export const MODEM_INSPECT = "debug('Sending: %s', util.inspect(options, {";
const modemInspect: Plugin = {
  name: 'modem-inspect',
  setup(b) {
    b.onLoad({ filter: /[\\/]docker-modem[\\/]lib[\\/]modem\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes(MODEM_INSPECT)) throw new Error(`docker-modem changed: "${MODEM_INSPECT}" not found in ${args.path}`);
      return { contents: text.replace(MODEM_INSPECT, `debug.enabled && ${MODEM_INSPECT}`), loader: 'js' };
    });
  },
};

const entry = join(ROOT, 'dist', 'cli', 'main.js');
const outdir = process.argv[2] ? join(resolve(process.argv[2]), 'cli') : join(ROOT, 'dist', 'cli');
rmSync(join(outdir, 'chunks'), { recursive: true, force: true });
try {
  const result = await build({
    entryPoints: [entry],
    outdir,
    allowOverwrite: true,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunks/[name]-[hash]',
    external: EXTERNAL,
    plugins: [lazyFiles, quietDebug, modemInspect],
    // Bundled CommonJS packages call require(): give the ES module bundle one.
    banner: { js: "import { createRequire as __cutterRequire } from 'node:module'; const require = __cutterRequire(import.meta.url);" },
    logLevel: 'warning',
    legalComments: 'none',
    // Whitespace and comments out, names kept (stack traces still name functions): V8 keeps every
    // loaded file's source in the heap, twice over for a file with one non-ASCII character in a
    // comment (a two-byte string). An idle agent: 72-75 MiB RSS mean before, 66 after (profile.md).
    minifyWhitespace: true,
  });
  if (result.errors.length > 0) process.exit(1);
} catch (err) {
  process.stderr.write(`bundle-cli: ${(err as Error).message}\n`);
  process.exit(1);
}
