/**
 * The install a user does: `npm pack` of this checkout, then `npm install -g` of that tarball into an
 * empty prefix. The `cutter` it puts on PATH must work on its own — version, the native
 * dependencies built (better-sqlite3 for the server's state, node-pty for exec -t), a server and an
 * agent from the installed copy running a task. The npm name is `cutter-mesh` (`cutter` belongs to
 * another package); the command is `cutter`.
 *
 * Slow by nature (npm builds the native addons from source: a few minutes on 2 cores); it needs the
 * npm registry for the dependencies, and skips without it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/procs.js';
import { Daemon, ISOLATED_ENV, ROOT, tempDir } from '../harness.js';
import { needs } from '../services.js';

const registry = needs('npmRegistry');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

describe.skipIf(registry.skip)(`npm install -g of the packed tarball${registry.tag}`, () => {
  const dir = tempDir('cutter-test-install-');
  const prefix = join(dir, 'prefix');
  const bin = join(prefix, 'bin', 'cutter');
  let packed: string[] = [];
  const daemons: Daemon[] = [];

  beforeAll(() => {
    // dist/ is built by the test set-up; --ignore-scripts skips prepack's second build.
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, ROOT], { encoding: 'utf8' });
    expect(pack.status, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    packed = info.files.map((f) => f.path);
    const install = spawnSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', join(dir, info.filename)],
      { encoding: 'utf8', timeout: 1_200_000 },
    );
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
  }, 1_260_000);
  afterAll(async () => {
    for (const d of daemons) d.child.kill('SIGKILL');
  });

  it('packs the CLI and the daemons, and no tests, benchmarks or source maps', () => {
    expect(pkg.name).toBe('cutter-mesh');
    expect(packed).toContain('dist/cli/main.js');
    expect(packed).toContain('dist/controller/server.js');
    expect(packed).toContain('README.md');
    expect(packed.filter((f) => /^dist\/(test|bench|scripts)\//.test(f) || f.endsWith('.map'))).toEqual([]);
  });

  it('puts a working `cutter` on the PATH, native addons built', () => {
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8', env: ISOLATED_ENV });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    const lib = join(prefix, 'lib', 'node_modules', pkg.name);
    for (const addon of ['better-sqlite3', 'node-pty']) {
      const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], { cwd: lib, encoding: 'utf8' });
      expect(r.status, `${addon}: ${r.stderr}`).toBe(0);
    }
  });

  it('runs a task from the installed copy: server, agent and CLI', async () => {
    const port = await freePort();
    const broker = `mqtt://127.0.0.1:${port}`;
    const start = (args: string[], name: string) => {
      const d = new Daemon(spawn(bin, args, { env: ISOLATED_ENV, stdio: ['ignore', 'pipe', 'pipe'] }), name);
      daemons.push(d);
      return d;
    };
    await start(['server', '--insecure', '--host', '127.0.0.1', '--port', String(port), '--data-dir', tempDir()], 'server').waitForLog(
      (l) => l.msg === 'broker listening',
      30_000,
    );
    await start(['agent', '--broker', broker, '--node-id', 'installed', '--allow-exec'], 'agent').waitForLog(
      (l) => l.msg === 'agent started',
      30_000,
    );
    const run = spawnSync(bin, ['run', '--node', 'installed', 'exec', '--', 'echo', 'from the installed copy'], {
      encoding: 'utf8',
      env: { ...ISOLATED_ENV, CUTTER_BROKER: broker },
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe('from the installed copy\n');
  }, 120_000);
});
