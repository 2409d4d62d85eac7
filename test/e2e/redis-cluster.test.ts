/**
 * Aedes clustered through Redis: two `cutter server` processes share one real `redis-server`
 * (Debian's) and carry ONE mesh. Instance B runs the broker and the controller; instance A is
 * `--broker-only`. Both share a data dir, so tokens made through either work on both — the
 * security stays on (no --insecure).
 *
 * The agent dials A only, the controller lives on B only: every assignment, event, reply and
 * retained status in these tests crosses Redis. Skipped when redis-server is not installed,
 * except in CI, where .ci/run installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, describeEmbeddedBroker, eventually, freePort, startAgent, tempDir, type Daemon } from '../harness.js';
import { spawnCutterDaemon } from '../netns.js';
import { needs } from '../services.js';

const needRedis = needs('redis');

type Creds = { username: string; password: string };

describeEmbeddedBroker(`two Aedes instances clustered through one Redis${needRedis.tag}`, () => {
  let redis: ChildProcess;
  let a: Daemon;
  let b: Daemon;
  let urlA: string;
  let urlB: string;
  let dataDir: string;
  let agent: Daemon;
  const daemons: Daemon[] = [];
  const admin = () => ({ CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') });

  beforeAll(async () => {
    if (needRedis.skip) return;
    const redisPort = await freePort();
    // No disk: --save '' (no RDB snapshots), --appendonly no.
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    await eventually(() => spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG');
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    dataDir = tempDir('cutter-test-cluster-');
    const [portA, portB] = [await freePort(), await freePort()];
    urlA = `mqtt://127.0.0.1:${portA}`;
    urlB = `mqtt://127.0.0.1:${portB}`;
    b = spawnCutterDaemon(
      ['server', '--redis', redisUrl, '--host', '127.0.0.1', '--port', String(portB), '--data-dir', dataDir],
      'server B (controller)',
    );
    daemons.push(b);
    await b.waitForMsg('broker listening');
    a = spawnCutterDaemon(
      ['server', '--redis', redisUrl, '--broker-only', '--host', '127.0.0.1', '--port', String(portA), '--data-dir', dataDir],
      'server A (broker only)',
    );
    daemons.push(a);
    await a.waitForMsg('broker listening');
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop('SIGKILL')));
    redis?.kill('SIGKILL');
  });

  it.skipIf(needRedis.skip)('a token made through A (controller on B) admits an agent on A; the node shows up through B', async () => {
    expect(a.lines.some((l) => l.msg === 'controller started')).toBe(false);
    // The admin token B wrote on its first start works on A; the request crosses to B's controller.
    const made = await cli(['token', 'create', '--role', 'agent', '--node', 'clustered', '--json'], { broker: urlA, env: admin() });
    expect(made.code, made.stderr).toBe(0);
    const creds = JSON.parse(made.stdout) as Creds;
    const tokenFile = join(dataDir, 'clustered.json');
    writeFileSync(tokenFile, JSON.stringify(creds), { mode: 0o600 });
    // A reads tokens.json again when it changed: the new token is good there at once.
    agent = await startAgent(urlA, 'clustered', ['--allow-exec', '--token-file', tokenFile]);
    daemons.push(agent);
    const node = await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: urlB, env: admin() });
      return (
        r.code === 0 &&
        (JSON.parse(r.stdout) as { node: string; state: string }[]).find((n) => n.node === 'clustered' && n.state === 'online')
      );
    });
    expect(node).toBeTruthy();
  });

  it.skipIf(needRedis.skip)(
    'cutter run through A and through B: the controller on B places on the agent on A, output and exit code come back',
    async () => {
      for (const url of [urlA, urlB]) {
        const r = await cli(['run', '--node', 'clustered', 'exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], {
          broker: url,
          env: admin(),
        });
        expect(r.code, r.stderr).toBe(3);
        expect(r.stdout).toBe('out\n');
        expect(r.stderr).toContain('err\n');
      }
      const placed = b.lines.filter((l) => l.msg === 'task placed' && l.node === 'clustered');
      expect(placed).toHaveLength(2);
    },
  );

  it.skipIf(needRedis.skip)('credentials are checked on both instances: a wrong password is refused by A and by B', async () => {
    for (const url of [urlA, urlB]) {
      const r = await cli(['nodes', 'list', '--connect-timeout', '3000'], {
        broker: url,
        env: { CUTTER_USERNAME: 'agent:clustered', CUTTER_PASSWORD: 'wrong' },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('refused the connection');
    }
  });

  it.skipIf(needRedis.skip)('the agent killed on A: its last will, stored in Redis, reaches the controller on B', async () => {
    await agent.stop('SIGKILL');
    const offline = await eventually(async () => {
      const r = await cli(['nodes', 'list', '--json'], { broker: urlB, env: admin() });
      return (
        r.code === 0 &&
        (JSON.parse(r.stdout) as { node: string; state: string }[]).find((n) => n.node === 'clustered' && n.state === 'offline')
      );
    });
    expect(offline).toBeTruthy();
  });
});

describeEmbeddedBroker('cluster options', () => {
  it('refuses --broker-only without --redis, and a redis URL that is not one, naming the key', async () => {
    const alone = await cli(['server', '--broker-only', '--port', '0', '--data-dir', tempDir()]);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain('brokerOnly needs redis (--redis)');
    const bad = await cli(['server', '--redis', 'http://x:6379', '--port', '0', '--data-dir', tempDir()]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/redis = "http:\/\/x:6379".*redis:\/\/ or rediss:\/\//);
  });
});
