/**
 * The protocol on another broker: `cutter server --broker` runs the controller against a real
 * Mosquitto (Debian's), and agents and the CLI dial Mosquitto too. Skipped when mosquitto is not
 * installed, except in CI (CUTTER_REQUIRE_ALL=1), where .ci/run installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, Daemon, cli, eventually, freePort, startAgent, tempDir } from '../harness.js';
import { ISOLATED_ENV } from '../netns.js';
import { needs } from '../services.js';

const mosquitto = needs('mosquitto');

describe.skipIf(mosquitto.skip)(`on Mosquitto as the broker${mosquitto.tag}`, () => {
  let mosquitto: ChildProcess;
  let controller: Daemon;
  let agent: Daemon;
  let url: string;

  beforeAll(async () => {
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    // Without a config file, Mosquitto 2 listens on loopback only and lets anonymous clients in.
    mosquitto = spawn('mosquitto', ['-p', String(port)], { stdio: 'ignore' });
    await eventually(() => spawnSync('mosquitto_pub', ['-p', String(port), '-t', 'probe', '-m', 'x'], { stdio: 'ignore' }).status === 0);
    controller = new Daemon(
      spawn(process.execPath, [CUTTER, 'server', '--broker', url, '--data-dir', tempDir()], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: ISOLATED_ENV,
      }),
      'server',
    );
    await controller.waitForMsg('controller started');
    agent = await startAgent(url, 'on-mosquitto', ['--allow-exec']);
  });
  afterAll(async () => {
    await agent?.stop();
    await controller?.stop();
    mosquitto?.kill('SIGTERM');
  });

  it('lists the node and runs a task end to end, streams and exit code intact', async () => {
    const nodes = await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: url });
      return (
        r.code === 0 &&
        (JSON.parse(r.stdout) as { node: string; state: string }[]).find((n) => n.node === 'on-mosquitto' && n.state === 'online')
      );
    });
    expect(nodes).toBeTruthy();
    const r = await cli(['run', 'exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 6'], { broker: url });
    expect(r.code).toBe(6);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
  });

  it('retained state and the last will work through Mosquitto', async () => {
    const sub = spawnSync(
      'mosquitto_sub',
      ['-p', url.split(':').pop()!, '-t', 'cutter/v1/nodes/on-mosquitto/status', '-C', '1', '-W', '3'],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(sub.stdout)).toMatchObject({ node: 'on-mosquitto', state: 'online' });
    const doomed = await startAgent(url, 'doomed-mq', ['--allow-exec']);
    await doomed.stop('SIGKILL');
    const offline = await eventually(() => {
      const s = spawnSync('mosquitto_sub', ['-p', url.split(':').pop()!, '-t', 'cutter/v1/nodes/doomed-mq/status', '-C', '1', '-W', '3'], {
        encoding: 'utf8',
      });
      const status = s.stdout ? (JSON.parse(s.stdout) as { state: string; reason?: string }) : null;
      return status?.state === 'offline' ? status : null;
    });
    expect(offline.reason).toBe('connection lost');
  });
});
