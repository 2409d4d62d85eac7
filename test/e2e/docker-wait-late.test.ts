/**
 * A container that exits at once (`true`) while the engine is slow to take the agent's wait
 * (stop 28's CI: `cutter run docker run IMG true` hung, and so did the agent's drain after it).
 *
 * The agent waits for a fresh container's exit with `POST /containers/{id}/wait?condition=next-exit`
 * sent before its start. The engine writes that call's response headers once the wait is in place
 * (Docker Engine API ≥1.30; moby's postContainersWait "Write response header immediately"), and the
 * docker CLI starts the container only after them. A start that overtakes the wait lets a fast
 * container exit before it is registered: there is no "next" exit, and the wait never returns.
 *
 * Here the agent reaches the real engine through a unix-socket relay (its own process; DOCKER_HOST
 * points at it) that holds every wait request for 1.5 s before passing it on, so the start always
 * overtakes the wait unless the agent waits for the wait's headers. What a user sees: the task ends
 * with exit 0 and its output, and the agent stops promptly afterwards (no task left behind).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const NODE = 'wait-late';
/** How long the relay holds a wait request, ms. */
const HOLD_MS = 1_500;

/**
 * The relay: pipes every connection to the real engine's socket, except that a chunk from the
 * agent holding a wait request (`POST …/wait`) goes on only after HOLD_MS (the chunks after it
 * wait behind it, so the connection's bytes stay in order).
 */
const RELAY = `
const net = require('node:net');
const fs = require('node:fs');
const [path, target, hold] = process.argv.slice(1);
try { fs.unlinkSync(path); } catch {}
net.createServer((c) => {
  const u = net.connect(target);
  let queue = Promise.resolve();
  c.on('data', (chunk) => {
    const late = /^POST [^ ]*\\/wait/m.test(chunk.toString('latin1', 0, 512));
    queue = queue.then(() => new Promise((r) => setTimeout(r, late ? Number(hold) : 0))).then(() => u.write(chunk));
  });
  c.on('end', () => { queue = queue.then(() => u.end()); });
  u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
}).listen(path, () => console.log('ready'));
`;

describe.skipIf(engine.skip)(`a container that exits before the engine has its wait${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon | undefined;
  let relay: ChildProcess | undefined;
  const sock = join(tempDir('cutter-wait-relay-'), 'docker.sock');

  beforeAll(async () => {
    ensureTestImage();
    relay = spawn(process.execPath, ['-e', RELAY, sock, '/var/run/docker.sock', String(HOLD_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      relay!.once('exit', (code) => reject(new Error(`relay exited with ${code}`)));
      relay!.stdout!.once('data', () => resolve());
    });
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--drain-timeout', '1m'], { DOCKER_HOST: `unix://${sock}` });
  });
  afterAll(async () => {
    await agent?.stop('SIGKILL');
    relay?.kill('SIGKILL');
    await server?.stop();
    spawnSync('docker', ['rm', '-f', ...listByNode()], { stdio: 'ignore' });
  });
  const listByNode = () =>
    spawnSync('docker', ['ps', '-aq', '--filter', `label=io.cutter.node=${NODE}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);

  it('cutter run of `true` and of `echo` ends with their exit code and output, and the agent then stops at once', async () => {
    const quiet = await cli(['run', '--node', NODE, 'docker', 'run', TEST_IMAGE, 'true'], { broker: url, timeoutMs: 30_000 });
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toBe('');

    const loud = await cli(['run', '--node', NODE, 'docker', 'run', TEST_IMAGE, 'sh', '-c', 'echo hello; exit 3'], {
      broker: url,
      timeoutMs: 30_000,
    });
    expect(loud.code, loud.stderr).toBe(3);
    expect(loud.stdout).toBe('hello\n');

    // Nothing is left running on the node: a drain ends at once instead of waiting out its minute.
    const started = Date.now();
    expect(await agent!.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
    agent = undefined;
  }, 90_000);
});
