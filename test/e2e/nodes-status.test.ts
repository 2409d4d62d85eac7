/**
 * `cutter nodes status` as a script would use it: the exit code says whether every node is
 * healthy, the table and --json show memory, CPU, Docker, Ollama, agent version and heartbeat.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../shared/version.js';
import { cli, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

type Health = {
  healthy: boolean;
  nodes: {
    node: string;
    healthy: boolean;
    level: string;
    problems: string[];
    agentVersion: string;
    docker: { available: boolean; containersRunning: number | null } | null;
    memory: { total: number } | null;
  }[];
};

// A node is healthy ('ok') only with a Docker engine it can reach (cli/health.ts), so the healthy
// table needs one.
const engine = needs('docker');

describe('cutter nodes status', () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('exits 2 when no node has joined', async () => {
    const r = await cli(['nodes', 'status'], { broker: url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no nodes have joined');
  });

  it.skipIf(engine.skip)(`exits 0 with a table of healthy nodes, and 2 once one dies${engine.tag}`, async () => {
    agents.push(await startAgent(url, 'st-a'), await startAgent(url, 'st-b'));
    const ok = await eventually(async () => {
      const r = await cli(['nodes', 'status'], { broker: url });
      return r.code === 0 && r.stdout.includes('st-b') ? r : null;
    });
    expect(ok.stdout.split('\n')[0]).toMatch(
      /^NODE\s+HEALTH\s+STATE\s+MEMORY AVAIL\/TOTAL\s+CPU\s+DOCKER\s+OLLAMA\s+AGENT\s+HEARTBEAT\s+PROBLEMS/,
    );
    expect(ok.stdout).toMatch(new RegExp(`st-a\\s+ok\\s+online\\s+.*${VERSION.replace(/\./g, '\\.')}`));

    const j = JSON.parse((await cli(['nodes', 'status', '--json'], { broker: url })).stdout) as Health;
    expect(j.healthy).toBe(true);
    const a = j.nodes.find((n) => n.node === 'st-a')!;
    expect(a).toMatchObject({ healthy: true, level: 'ok', agentVersion: VERSION, problems: [] });
    expect(a.memory!.total).toBeGreaterThan(0);
    const engine = spawnSync('docker', ['ps', '-q'], { encoding: 'utf8' });
    if (engine.status === 0) {
      // The agent counts what the engine runs (cutter's containers and others').
      expect(a.docker).toMatchObject({ available: true });
      expect(typeof a.docker!.containersRunning).toBe('number');
    }

    await agents[1].stop('SIGKILL');
    const bad = await eventually(async () => {
      const r = await cli(['nodes', 'status'], { broker: url });
      return r.code === 2 ? r : null;
    });
    expect(bad.stdout).toMatch(/st-b\s+FAIL\s+offline/);
    expect(bad.stderr).toContain('1 of 2 nodes unhealthy');
    const j2 = JSON.parse((await cli(['nodes', 'status', '--json'], { broker: url })).stdout) as Health;
    expect(j2.healthy).toBe(false);
    expect(j2.nodes.find((n) => n.node === 'st-b')).toMatchObject({ healthy: false, level: 'fail' });
    expect(j2.nodes.find((n) => n.node === 'st-b')!.problems[0]).toMatch(/^offline/);
  });

  it('exits 1 when the mesh cannot be asked', async () => {
    const r = await cli(['nodes', 'status', '--broker', 'mqtt://127.0.0.1:1', '--connect-timeout', '500']);
    expect(r.code).toBe(1);
  });
});
