/**
 * The CLI's one call to its own Docker engine without dockerode (cli/local-engine.ts): where it
 * finds the engine from DOCKER_HOST, and `GET /images/{name}/json` over a unix socket against a
 * node:http server that answers as the Engine API documents it (the real engine: test/e2e/docker.test.ts).
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAddress, inspectImage } from '../../cli/local-engine.js';

describe('engineAddress', () => {
  it('reads DOCKER_HOST as the docker CLI does', () => {
    const home = mkdtempSync(join(tmpdir(), 'cutter-home-'));
    try {
      expect(engineAddress({ HOME: home })).toEqual({ socketPath: '/var/run/docker.sock' });
      mkdirSync(join(home, '.docker', 'run'), { recursive: true });
      writeFileSync(join(home, '.docker', 'run', 'docker.sock'), '');
      expect(engineAddress({ HOME: home })).toEqual({ socketPath: join(home, '.docker', 'run', 'docker.sock') });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    expect(engineAddress({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toEqual({ socketPath: '/run/user/1000/docker.sock' });
    expect(engineAddress({ DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toEqual({ host: '127.0.0.1', port: 2375 });
    expect(engineAddress({ DOCKER_HOST: 'localhost:4243' })).toEqual({ host: 'localhost', port: 4243 });
  });

  it('leaves TLS, SSH and named pipes to dockerode', () => {
    expect(engineAddress({ DOCKER_HOST: 'tcp://10.0.0.5:2376' })).toBeNull();
    expect(engineAddress({ DOCKER_HOST: 'tcp://10.0.0.5:2375', DOCKER_TLS_VERIFY: '1' })).toBeNull();
    expect(engineAddress({ DOCKER_HOST: 'ssh://me@box' })).toBeNull();
    expect(engineAddress({ DOCKER_HOST: 'npipe:////./pipe/docker_engine' })).toBeNull();
  });
});

describe('inspectImage over a unix socket', () => {
  let dir: string;
  let socketPath: string;
  let server: Server;
  const asked: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cutter-engine-'));
    socketPath = join(dir, 'docker.sock');
    server = createServer((req, res) => {
      asked.push(`${req.method} ${req.url}`);
      if (req.url === '/images/built/here:1/json')
        res.end(JSON.stringify({ Os: 'linux', Architecture: 'arm64', Variant: 'v8', RepoDigests: [] }));
      else if (req.url === '/images/huge:1/json') res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
      else if (req.url === '/images/slow:1/json') setTimeout(() => res.end('{}'), 2_000);
      else if (req.url === '/images/odd:1/json') res.end('[1,2]');
      else {
        res.statusCode = 404;
        res.end('{"message":"No such image"}');
      }
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns the engine’s JSON for an image it has, asked at the documented path', async () => {
    expect(await inspectImage({ socketPath }, 'built/here:1', 1_000)).toEqual({
      Os: 'linux',
      Architecture: 'arm64',
      Variant: 'v8',
      RepoDigests: [],
    });
    expect(asked).toContain('GET /images/built/here:1/json');
  });

  it('returns null for a missing image, an oversized or non-object answer, a slow engine, no engine, and a name that is no image reference', async () => {
    expect(await inspectImage({ socketPath }, 'missing:1', 1_000)).toBeNull();
    expect(await inspectImage({ socketPath }, 'huge:1', 1_000)).toBeNull();
    expect(await inspectImage({ socketPath }, 'odd:1', 1_000)).toBeNull();
    // The slow answer is `{}` after 2 s: null means the 200 ms deadline cut it.
    expect(await inspectImage({ socketPath }, 'slow:1', 200)).toBeNull();
    expect(await inspectImage({ socketPath: join(dir, 'nobody.sock') }, 'built/here:1', 1_000)).toBeNull();
    const before = asked.length;
    expect(await inspectImage({ socketPath }, '../../containers/json?all=1', 1_000)).toBeNull();
    expect(await inspectImage({ socketPath }, 'img name', 1_000)).toBeNull();
    expect(await inspectImage({ socketPath }, 'a/../../containers/json', 1_000)).toBeNull();
    expect(asked.length).toBe(before);
  });
});
