/**
 * `cutter agent install`: the unit it writes passes `systemd-analyze verify` (where systemd's
 * tools are installed), its ExecStart is what it should be, and — run exactly as systemd would
 * split it — starts an agent that joins a real (secure) server with its token file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { splitExecStart } from '../../cli/systemd-unit.js';
import { CUTTER, Daemon, EMBEDDED_BROKER_ONLY, ISOLATED_ENV, ON_MOSQUITTO, cli, eventually, startServer, tempDir } from '../harness.js';
import { needs } from '../services.js';

const analyze = needs('systemdAnalyze');

/** `systemd-analyze verify` in system scope (the user manager needs a login session; the unit syntax is the same). */
function verify(path: string): { status: number | null; stderr: string } {
  const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr.trim() };
}

const execStart = (unit: string) => splitExecStart(/^ExecStart=(.*)$/m.exec(unit)![1]);

describe('cutter agent install', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('writes a user unit with the broker URL and the token file, and says how to enable it', async () => {
    const dir = tempDir();
    const token = join(dir, 'nb.json');
    writeFileSync(token, JSON.stringify({ username: 'agent:notebook', password: 'p' }));
    chmodSync(token, 0o600);
    const r = await cli([
      'agent',
      'install',
      '--unit-dir',
      join(dir, 'units'),
      '--broker',
      'mqtt://server.lan:1883',
      '--token-file',
      token,
      '--max-memory',
      '24g',
      '--lost-after',
      '10m',
      '--labels',
      'room=living room,cost=50%,x=$HOME',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('systemctl --user enable --now cutter-agent');
    expect(r.stdout).toContain('loginctl enable-linger');
    const unit = readFileSync(join(dir, 'units', 'cutter-agent.service'), 'utf8');
    expect(unit).toContain('WantedBy=default.target');
    expect(unit).not.toContain('"p"'); // the password stays in the token file
    // The node id comes from the token; the odd characters survive systemd's quoting.
    expect(execStart(unit)).toEqual([
      process.execPath,
      CUTTER,
      'agent',
      '--broker',
      'mqtt://server.lan:1883',
      '--node-id',
      'notebook',
      '--token-file',
      token,
      '--max-memory',
      '24g',
      '--labels',
      'room=living room,cost=50%,x=$HOME',
      '--lost-after',
      '10m',
    ]);
    expect(unit).toMatch(/cost=50%%/);
    expect(unit).toMatch(/x=\$\$HOME/);
    if (analyze.skip) return; // reported by the next test's skip
    const v = verify(join(dir, 'units', 'cutter-agent.service'));
    expect(v.stderr).toBe('');
    expect(v.status).toBe(0);
  });

  it.skipIf(analyze.skip)(
    `writes a system unit that systemd-analyze verify accepts, and a broken one it does not${analyze.tag}`,
    async () => {
      const dir = tempDir();
      const token = join(dir, 'gpu.json');
      writeFileSync(token, JSON.stringify({ username: 'agent:gpu-box', password: 'p' }), { mode: 0o600 });
      const r = await cli([
        'agent',
        'install',
        '--system',
        '--unit-dir',
        dir,
        '--name',
        'cutter-gpu',
        '--broker',
        'mqtts://server:8883',
        '--token-file',
        token,
        '--run-as',
        'root',
        '--allow-exec',
        '--json',
      ]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as { path: string; scope: string; commands: string[]; unit: string };
      expect(out).toMatchObject({ path: join(dir, 'cutter-gpu.service'), scope: 'system' });
      expect(out.commands).toEqual(['sudo systemctl daemon-reload', 'sudo systemctl enable --now cutter-gpu']);
      expect(out.unit).toContain('WantedBy=multi-user.target');
      expect(out.unit).toContain('After=network-online.target docker.service');
      expect(out.unit).toContain('User=root');
      expect(execStart(out.unit)).toContain('--allow-exec');
      const v = verify(out.path);
      expect(v.stderr).toBe('');
      expect(v.status).toBe(0);
      // The check can fail: a unit whose program does not exist.
      writeFileSync(join(dir, 'broken.service'), out.unit.replace(process.execPath, '/nonexistent/node'));
      expect(verify(join(dir, 'broken.service')).status).not.toBe(0);
    },
  );

  it('passes every other agent flag on, paths made absolute, checked as the agent checks them', async () => {
    const dir = tempDir();
    const token = join(dir, 't.json');
    writeFileSync(token, '{"username":"agent:nb","password":"p"}', { mode: 0o600 });
    const base = ['agent', 'install', '--unit-dir', dir, '--broker', 'mqtt://s:1883', '--token-file', token];
    const r = await cli([...base, '--label', 'gpu=rtx', '--label', 'zone=attic', '--files-allow', 'data,/srv', '--heartbeat', '2000']);
    expect(r.stderr).toBe('');
    expect(execStart(readFileSync(join(dir, 'cutter-agent.service'), 'utf8')).slice(9)).toEqual([
      '--label',
      'gpu=rtx',
      '--label',
      'zone=attic',
      '--heartbeat',
      '2000',
      '--files-allow',
      `${resolve('data')},/srv`,
    ]);
    const bad = await cli([...base, '--heartbeat', 'often']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: --heartbeat "often": "often" is not a duration/);
  });

  it('refuses what would not run, with the flag that is wrong', async () => {
    const dir = tempDir();
    const missing = await cli(['agent', 'install', '--unit-dir', dir, '--broker', 'mqtt://s:1883', '--token-file', join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: --token-file .*nope\.json: ENOENT/);
    const token = join(dir, 't.json');
    writeFileSync(token, '{"username":"agent:x","password":"p"}', { mode: 0o600 });
    expect((await cli(['agent', 'install', '--unit-dir', dir, '--token-file', token])).stderr).toContain('--broker URL is required');
    expect((await cli(['agent', 'install', '--unit-dir', dir, '--broker', 'server', '--token-file', token])).stderr).toContain(
      'is not a URL',
    );
    expect(
      (await cli(['agent', 'install', '--unit-dir', dir, '--broker', 'mqtt://s', '--token-file', token, '--max-memory', 'lots'])).stderr,
    ).toContain('--max-memory "lots" is not a size');
    expect(
      (await cli(['agent', 'install', '--unit-dir', dir, '--broker', 'mqtt://s', '--token-file', token, '--run-as', 'bob'])).stderr,
    ).toContain('--run-as is for --system units');
  });

  // Tokens are the embedded broker's: on Mosquitto they are the broker's own business.
  it.skipIf(ON_MOSQUITTO)(
    `runs: the ExecStart line, split as systemd splits it, starts an agent that joins with its token${ON_MOSQUITTO ? ` [${EMBEDDED_BROKER_ONLY}]` : ''}`,
    async () => {
      const { daemon: server, url, dataDir } = await startServer([], { secure: true });
      cleanup.push(() => server.stop());
      const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
      const created = await cli(['token', 'create', '--role', 'agent', '--node', 'installed', '--json'], { broker: url, env: admin });
      expect(created.code).toBe(0);
      const dir = tempDir();
      const token = join(dir, 'installed.json');
      writeFileSync(token, created.stdout, { mode: 0o600 });
      expect(
        (
          await cli([
            'agent',
            'install',
            '--unit-dir',
            dir,
            '--broker',
            url,
            '--token-file',
            token,
            '--max-tasks',
            '2',
            '--label',
            'zone=attic',
          ])
        ).code,
      ).toBe(0);
      const argv = execStart(readFileSync(join(dir, 'cutter-agent.service'), 'utf8'));
      const agent = new Daemon(spawn(argv[0], argv.slice(1), { env: ISOLATED_ENV, stdio: ['ignore', 'pipe', 'pipe'] }), 'installed agent');
      cleanup.push(() => agent.stop());
      await agent.waitForMsg('agent started');
      const node = await eventually(async () => {
        const r = await cli(['nodes', 'list', '--json'], { broker: url, env: admin });
        return (JSON.parse(r.stdout) as { node: string; state: string; status: { offer?: { maxTasks: number } } }[]).find(
          (n) => n.node === 'installed' && n.state === 'online',
        );
      });
      expect(node.status.offer?.maxTasks).toBe(2);
      expect(JSON.stringify(node.status)).toContain('attic');
    },
  );
});
