/**
 * The Docker engine dies or hangs under a running task (issue 14). The agent reaches the engine
 * through a unix-socket relay this test runs as its own process (DOCKER_HOST points at it), so
 * "the engine" can be killed (SIGKILL the relay: every socket closes, as when dockerd dies) or
 * hung (SIGSTOP the relay: sockets stay open, nothing is answered) without touching the machine's
 * shared dockerd. The containers keep running on the real engine; they are removed by label at the end.
 *
 * What a user sees: the task ends (EXECUTOR_LOST, here with restart `never`) within detection +
 * grace, the node says docker is unavailable and why, a docker submit is refused "no Docker
 * engine" with that reason, and once the engine answers again the node takes docker work again
 * and the container of the lost task is gone.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, eventually, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const NODE = 'dfault';
const GRACE_MS = 3_000;
/** Detection (a hung engine: up to 5 s to the next ping, then two 3 s pings) + grace + slack for a loaded machine. */
const END_WITHIN_MS = 11_500 + GRACE_MS + 8_000;

/** The relay: a unix socket that pipes every connection to the real engine's socket. */
const RELAY = `
const net = require('node:net');
const fs = require('node:fs');
const [path, target] = process.argv.slice(1);
try { fs.unlinkSync(path); } catch {}
net.createServer((c) => {
  const u = net.connect(target);
  c.pipe(u); u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
}).listen(path, () => console.log('ready'));
`;

function startRelay(path: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', RELAY, path, '/var/run/docker.sock'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

function docker(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

interface NodeRow {
  node: string;
  status: { capacity?: { docker: { available: boolean; error?: string } }; offer?: { executors: string[] } };
}

describe.skipIf(engine.skip)(`docker engine faults${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  let relay: ChildProcess | undefined;
  const sock = join(tempDir('cutter-relay-'), 'docker.sock');

  const node = async (): Promise<NodeRow> => {
    const rows = JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url })).stdout) as NodeRow[];
    return rows.find((r) => r.node === NODE)!;
  };
  const task = async (id: string) => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
  const sleeper = async (): Promise<string> => {
    const r = await cli(['run', '-d', '--restart', 'never', '--node', NODE, 'docker', 'run', TEST_IMAGE, 'sleep', '300'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    await eventually(async () => (await task(id)).state === 'running', 20_000);
    return id;
  };
  /** The task ended EXECUTOR_LOST in time; the node says why docker is unavailable; a docker submit is refused with it. */
  const expectLost = async (id: string, since: number, why: RegExp) => {
    const s = await eventually(
      async () => {
        const t = await task(id);
        return t.state === 'lost' || t.state === 'failed' ? t : null;
      },
      END_WITHIN_MS,
      250,
    );
    expect(Date.now() - since).toBeLessThan(END_WITHIN_MS);
    expect(s.error.code).toBe('EXECUTOR_LOST');
    expect(s.error.message).toMatch(/did not answer again within 3 s/);
    const n = await eventually(async () => {
      const row = await node();
      return row.status.capacity?.docker.available === false ? row : null;
    });
    expect(n.status.capacity!.docker.error).toMatch(why);
    expect(n.status.offer!.executors).not.toContain('docker');
    const refused = await cli(['run', '--no-queue', '--node', NODE, 'docker', 'run', TEST_IMAGE, 'true'], { broker: url });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no Docker engine/);
    expect(refused.stderr).toMatch(why);
  };
  /** The engine answers again: the node offers docker, a task runs, the lost task's container is gone. */
  const expectBack = async (lost: string) => {
    await eventually(async () => (await node()).status.capacity?.docker.available === true, 20_000);
    const r = await cli(['run', '--node', NODE, 'docker', 'run', TEST_IMAGE, 'echo', 'engine back'], { broker: url, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('engine back\n');
    await eventually(() => docker('ps', '-a', '--filter', `label=io.cutter.task=${lost}`, '--format', '{{.ID}}') === '', 15_000);
  };

  beforeAll(async () => {
    ensureTestImage();
    relay = await startRelay(sock);
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--docker-engine-grace', '3s'], { DOCKER_HOST: `unix://${sock}` });
  });
  afterAll(async () => {
    relay?.kill('SIGCONT');
    relay?.kill('SIGKILL');
    await agent?.stop();
    await server?.stop();
    const left = spawnSync('docker', ['ps', '-aq', '--filter', `label=io.cutter.node=${NODE}`], { encoding: 'utf8' }).stdout.trim();
    if (left) spawnSync('docker', ['rm', '-f', ...left.split(/\s+/)]);
  });

  it('a dead engine (its socket closed) ends the task EXECUTOR_LOST, the node stops offering docker, and recovers', async () => {
    const id = await sleeper();
    const since = Date.now();
    relay!.kill('SIGKILL');
    await expectLost(id, since, /Docker engine not reachable/);
    relay = await startRelay(sock);
    await expectBack(id);
  }, 90_000);

  it('a hung engine (sockets open, nothing answered) ends the task the same way, and recovers', async () => {
    const id = await sleeper();
    const since = Date.now();
    relay!.kill('SIGSTOP');
    await expectLost(id, since, /Docker engine gave no answer to a ping within 3000 ms/);
    relay!.kill('SIGCONT');
    await expectBack(id);
  }, 90_000);
});
