/**
 * `cutter image push` with real processes and a real Docker engine. The CLI and the agent share
 * one engine here, so the test makes the node's engine lack the image for real: it builds an
 * image with a unique marker file (docker commit), shows the push is skipped while the node has
 * that id, saves it to a tarball and removes it from the engine, shows a task with it then fails
 * (no registry can provide it), pushes the tarball, and runs a task with the image the agent
 * loaded: the marker comes back.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const docker = (...args: string[]) => {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

describe.skipIf(engine.skip)(`cutter image push${engine.tag}`, () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  const marker = randomBytes(8).toString('hex');
  const image = `cutter-test/pushed-${marker}:v1`;
  const tar = join(tempDir('cutter-image-'), 'image.tar');
  let id: string;

  beforeAll(async () => {
    ensureTestImage();
    const container = docker('run', '-d', TEST_IMAGE, 'sh', '-c', `echo ${marker} > /marker`);
    docker('wait', container);
    id = docker('commit', container, image);
    docker('rm', container);
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, 'island');
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    spawnSync('docker', ['rmi', '-f', image]);
  });

  it('skips the push while the node has the same image id', async () => {
    const r = await cli(['image', 'push', image, '--node', 'island', '--json'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ skipped: true, id });
  });

  it('pushes an image the node lacks, which a task then runs with no registry', async () => {
    docker('save', '-o', tar, image);
    docker('rmi', image);
    const before = await cli(['run', '--node', 'island', 'docker', 'run', image, 'cat', '/marker'], { broker: url, timeoutMs: 60_000 });
    expect(before.code).toBe(125);
    expect(before.stderr).toMatch(/cannot be pulled|pull/i);

    const r = await cli(['image', 'push', image, '--node', 'island', '--input', tar, '--json'], { broker: url, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const pushed = JSON.parse(r.stdout) as { skipped: boolean; id: string; bytes: number };
    expect(pushed.skipped).toBe(false);
    expect(pushed.id).toBe(id);
    expect(pushed.bytes).toBeGreaterThan(0);
    await agent.waitForLog((l) => l.msg === 'file received' && l.image === image && l.ok === true);

    const after = await cli(['run', '--node', 'island', 'docker', 'run', image, 'cat', '/marker'], { broker: url, timeoutMs: 60_000 });
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout.trim()).toBe(marker);
  }, 120_000);

  it('refuses a tarball that does not hold the image, and an image the local engine lacks', async () => {
    const wrong = await cli(['image', 'push', 'cutter-test/other:v9', '--node', 'island', '--input', tar], { broker: url });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not hold cutter-test\/other:v9/);
    const missing = await cli(['image', 'push', 'cutter-test/absent:v9', '--node', 'island'], { broker: url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not on the local Docker engine/);
  });
});
