/**
 * What an idle node asks its Docker engine at its heartbeats (agent/executors/docker-platform.ts
 * `EngineFacts.probe`): the running containers every 5 s or when one of its containers started or
 * went, the version once per engine start (or a minute), `/info` once. Real dockerode against a node:http server on a unix socket that answers
 * as the Engine API documents these calls (the real engine: test/e2e/docker-engine-fault.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { EngineWatch } from '../../agent/executors/docker-engine.js';
import { EngineFacts, RUNNING_MAX_AGE_MS } from '../../agent/executors/docker-platform.js';

describe('EngineFacts.probe', () => {
  let dir: string;
  let server: Server;
  let docker: Docker;
  /** Requests per path (without the API version prefix or query). */
  let asked: Record<string, number>;
  let version = '27.5.1';
  let listStatus = 200;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cutter-probe-'));
    const socketPath = join(dir, 'docker.sock');
    server = createServer((req, res) => {
      const path = (req.url ?? '').replace(/^\/v[\d.]+/, '').split('?')[0];
      asked[path] = (asked[path] ?? 0) + 1;
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (path === '/version') return json(200, { Version: version, ApiVersion: '1.47' });
      if (path === '/containers/json')
        return listStatus === 200 ? json(200, [{ Id: 'a' }, { Id: 'b' }]) : json(listStatus, { message: 'engine broke' });
      // A remote-looking root dir: no statfs of this machine's disk.
      if (path === '/info') return json(200, { OSType: 'linux', Architecture: 'x86_64', DockerRootDir: '', LoggingDriver: 'json-file' });
      json(404, { message: 'no such path' });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    docker = new Docker({ socketPath });
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  beforeEach(() => {
    asked = {};
    version = '27.5.1';
    listStatus = 200;
  });

  it('counts the running containers every 5 s or after a change, asks the version and /info once', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const facts = new EngineFacts(docker, new EngineWatch(docker));
    for (let i = 0; i < 3; i++) {
      expect(await facts.probe()).toEqual({
        available: true,
        version: '27.5.1',
        apiVersion: '1.47',
        platform: { os: 'linux', architecture: 'amd64' },
        containersRunning: 2,
      });
    }
    expect(asked).toEqual({ '/version': 1, '/containers/json': 1, '/info': 1 });
    expect(facts.loggingDriver).toBe('json-file');
    facts.containersChanged();
    await facts.probe();
    vi.setSystemTime(Date.now() + RUNNING_MAX_AGE_MS + 1);
    await facts.probe();
    await facts.probe();
    expect(asked).toEqual({ '/version': 1, '/containers/json': 3, '/info': 1 });
  });

  it('asks the version again once the engine is back (an upgrade restarts it)', async () => {
    const facts = new EngineFacts(docker, new EngineWatch(docker));
    await facts.probe();
    version = '28.0.0';
    facts.containersChanged();
    expect((await facts.probe()).version).toBe('27.5.1');
    facts.engineBack();
    expect((await facts.probe()).version).toBe('28.0.0');
    expect(asked['/version']).toBe(2);
  });

  it('says unavailable, with the engine’s words, when the only call it makes fails', async () => {
    const facts = new EngineFacts(docker, new EngineWatch(docker));
    await facts.probe();
    listStatus = 500;
    facts.containersChanged();
    const info = await facts.probe();
    expect(info.available).toBe(false);
    expect(info.error).toContain('engine broke');
    listStatus = 200;
    expect((await facts.probe()).available).toBe(true);
  });
});
