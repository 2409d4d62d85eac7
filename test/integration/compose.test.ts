/**
 * docker-compose.yml and the Dockerfile, checked without a registry (the image cannot be built
 * here: its base image is on Docker Hub): the compose file passes `docker compose config` (or
 * Debian's docker-compose, which validates against the Compose schema), its healthcheck commands
 * work against a real server and agent, and the Dockerfile copies every source folder tsc builds.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, freePort, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

/** `docker compose` (the v2 plugin) or Debian's `docker-compose`, whichever is installed. */
function composeCommand(): string[] | null {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  return null;
}
const compose = composeCommand();
const needCompose = needs('compose');

const run = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(compose![0], [...compose!.slice(1), ...args], {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
  });

describe.skipIf(needCompose.skip || !compose)(`docker-compose.yml${needCompose.tag}`, () => {
  it('passes the Compose schema check', () => {
    const r = run(['-f', 'docker-compose.yml', 'config', '-q']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('has the server, the agent with the Docker socket, a data volume, healthchecks and settings from the environment', () => {
    const r = run(['-f', 'docker-compose.yml', 'config'], {
      env: { CUTTER_NODE_ID: 'gpu-box', CUTTER_HA_BROKER: 'mqtt://ha.local:1883', DOCKER_GID: '4242' },
    });
    expect(r.status).toBe(0);
    const out = r.stdout;
    for (const want of [
      'server:',
      'agent:',
      '/var/run/docker.sock',
      'cutter-data',
      'healthcheck:',
      'service_healthy',
      '/tokens/agent.json',
      'gpu-box',
      'mqtt://ha.local:1883',
      '8088',
      // The Ollama-compatible API, and the socket's group for the unprivileged agent.
      '11434',
      '4242',
    ]) {
      expect(out, want).toContain(want);
    }
    expect(out.match(/healthcheck:/g)).toHaveLength(2);
  });

  it('rejects a broken file (the check can fail)', () => {
    const dir = tempDir('cutter-test-compose-');
    copyFileSync(join(ROOT, 'Dockerfile'), join(dir, 'Dockerfile'));
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8').replace('    healthcheck:\n', '    helthcheck:\n'),
    );
    const r = run(['-f', 'docker-compose.yml', 'config', '-q'], { cwd: dir });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/helthcheck/);
  });
});

describe('Dockerfile', () => {
  it('copies every folder tsc builds', () => {
    const include = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] }).include;
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    for (const dir of include) expect(dockerfile, dir).toMatch(new RegExp(`^COPY ${dir} ${dir}$`, 'm'));
  });
});

describe('the compose healthchecks, run for real', () => {
  let server: Daemon;
  let agent: Daemon;
  let httpPort: number;
  const healthFile = join(tempDir(), 'agent.health');
  const checks = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('test: ["CMD", "node", "-e",'))
    .map((l) => JSON.parse(l.slice(l.indexOf('['))) as string[]);

  beforeAll(async () => {
    httpPort = await freePort();
    let url: string;
    ({ daemon: server, url } = await startServer(['--http-port', String(httpPort)]));
    agent = await startAgent(url, 'compose-agent', ['--health-file', healthFile]);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('the server is healthy while its HTTP server answers', () => {
    expect(checks).toHaveLength(2);
    const script = checks[0][3].replace('127.0.0.1:8088', `127.0.0.1:${httpPort}`);
    expect(spawnSync(process.execPath, ['-e', script]).status).toBe(0);
    const dead = checks[0][3].replace('127.0.0.1:8088', `127.0.0.1:1`);
    expect(spawnSync(process.execPath, ['-e', dead]).status).toBe(1);
  });

  it('the image runs as the unprivileged node user, with the server healthcheck compose uses', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    const line = dockerfile.split('\n').find((l) => l.trim().startsWith('CMD ["node", "-e",'));
    const check = JSON.parse(line!.trim().slice(4)) as string[];
    // The Dockerfile's CMD array is ["node", "-e", SCRIPT]; compose's test is ["CMD", "node", "-e", SCRIPT].
    expect(check[2]).toBe(checks[0][3]);
    expect(spawnSync(process.execPath, ['-e', check[2].replace('127.0.0.1:8088', `127.0.0.1:${httpPort}`)]).status).toBe(0);
  });

  it('the agent is healthy while its heartbeats go out, unhealthy without the file', async () => {
    const script = checks[1][3];
    await new Promise((r) => setTimeout(r, 1_200));
    expect(spawnSync(process.execPath, ['-e', script.replace('/tmp/cutter-agent.health', healthFile)]).status).toBe(0);
    expect(spawnSync(process.execPath, ['-e', script.replace('/tmp/cutter-agent.health', `${healthFile}.missing`)]).status).toBe(1);
  });
});
