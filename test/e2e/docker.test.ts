/**
 * Docker tasks end to end: real server, real agents, the real `cutter` CLI and a real Docker
 * engine running the busybox test image. Skipped when no engine answers, except in CI
 * (CUTTER_REQUIRE_ALL=1), where a missing engine fails the suite.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');

function docker(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

describe.skipIf(engine.skip)(`docker tasks${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let big: Daemon;
  let small: Daemon;

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
    [big, small] = await Promise.all([startAgent(url, 'dbig', ['--max-memory', '2g']), startAgent(url, 'dsmall', ['--max-memory', '64m'])]);
  });
  afterAll(async () => {
    await Promise.all([big?.stop(), small?.stop()]);
    await server?.stop();
  });

  it('announces the Docker engine in the node table', async () => {
    const r = await cli(['nodes', 'list', '--json'], { broker: url });
    const nodes = JSON.parse(r.stdout) as {
      node: string;
      status: { capacity: { docker: { available: boolean; version?: string } }; offer: { executors: string[] } };
    }[];
    const n = nodes.find((x) => x.node === 'dbig')!;
    expect(n.status.capacity.docker.available).toBe(true);
    expect(n.status.capacity.docker.version).toBe(docker('version', '--format', '{{.Server.Version}}'));
    expect(n.status.offer.executors).toContain('docker');
  });

  it("cutter run --node X docker run prints both streams and exits with the container's code", async () => {
    const r = await cli(['run', '--node', 'dsmall', 'docker', 'run', TEST_IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3'], {
      broker: url,
    });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(r.stderr).toContain('placed on dsmall');
  });

  it('passes env, and removes the container afterwards', async () => {
    const r = await cli(
      ['run', '-d', '--node', 'dbig', 'docker', 'run', '-e', 'GREETING=hello mesh', TEST_IMAGE, 'sh', '-c', 'echo "$GREETING"'],
      { broker: url },
    );
    const id = r.stdout.trim();
    await eventually(async () => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout).state === 'succeeded');
    expect(docker('ps', '-a', '--filter', `label=io.cutter.task=${id}`, '--format', '{{.ID}}')).toBe('');
    const f = await cli(
      ['run', '--node', 'dbig', 'docker', 'run', '-e', 'GREETING=hello mesh', TEST_IMAGE, 'sh', '-c', 'echo "$GREETING"'],
      { broker: url },
    );
    expect(f.stdout).toBe('hello mesh\n');
  });

  it('--auto-select picks the node that fits, sets the memory limit on the real container, and cancel stops it (not waiting out its sleep)', async () => {
    const r = await cli(['run', '-d', '--auto-select', 'docker', 'run', '-m', '256m', '--cpus', '0.5', TEST_IMAGE, 'sleep', '60'], {
      broker: url,
    });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    const containerId = await eventually(() => docker('ps', '--filter', `label=io.cutter.task=${id}`, '--format', '{{.ID}}'));
    const inspect = JSON.parse(docker('inspect', containerId))[0];
    expect(inspect.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(inspect.HostConfig.NanoCpus).toBe(500_000_000);
    expect(inspect.Config.Labels['io.cutter.node']).toBe('dbig');
    const shown = JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
    expect(shown.node).toBe('dbig');
    expect(shown.placement).toContain('dsmall: needs 256.0 MiB memory, has 64.0 MiB free');

    const c = await cli(['cancel', id], { broker: url });
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`${id} cancelled`);
    // Stopped, not waited out: far below the container's 60 s sleep even on a loaded machine
    // (how fast a cancel takes effect is the benchmarks' business).
    expect(c.ms).toBeLessThan(20_000);
    expect(docker('ps', '-a', '--filter', `label=io.cutter.task=${id}`, '--format', '{{.ID}}')).toBe('');
  });

  it('reports a container killed for exceeding its memory limit as OOM killed', async () => {
    const r = await cli(
      [
        'run',
        '--node',
        'dbig',
        'docker',
        'run',
        '-m',
        '16m',
        TEST_IMAGE,
        'sh',
        '-c',
        'x=$(head -c 200m /dev/zero | tr "\\0" a); echo survived',
      ],
      { broker: url },
    );
    const t = JSON.parse((await cli(['tasks', 'list', '--json', '-n', '1'], { broker: url })).stdout)[0];
    expect(r.code).toBe(137);
    expect(t).toMatchObject({ state: 'failed', exitCode: 137, oomKilled: true, error: { code: 'OOM_KILLED' } });
    expect(r.stderr).toContain('killed for running out of memory');
  });

  it("fails with the registry's reason when the image is not on the node and cannot be pulled", async () => {
    const r = await cli(['run', '--restart', 'never', '--node', 'dbig', 'docker', 'run', 'cutter-test/not-here:1.0', 'true'], {
      broker: url,
    });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('image cutter-test/not-here:1.0 is not on node dbig and cannot be pulled');
  });

  it('rejects docker flags that would touch the node itself', async () => {
    const r = await cli(['run', 'docker', 'run', '-v', '/:/host', TEST_IMAGE, 'true'], { broker: url });
    expect(r.code).toBe(125);
    // Issue 16: a host path is refused unless a node's policy allows it (--allow-host-path).
    expect(r.stderr).toContain("host path / is not allowed by any node's policy");
  });

  it('keeps no engine-side log copy of the output (the engine default here is json-file), unless the task asks with --log-driver', async () => {
    expect(docker('info', '--format', '{{.LoggingDriver}}')).toBe('json-file');
    const script = 'echo kept by cutter; sleep 60';
    const plain = (
      await cli(['run', '-d', '--node', 'dbig', 'docker', 'run', TEST_IMAGE, 'sh', '-c', script], { broker: url })
    ).stdout.trim();
    const asked = await cli(
      [
        'run',
        '-d',
        '--node',
        'dbig',
        'docker',
        'run',
        '--log-driver',
        'json-file',
        '--log-opt',
        'max-size=1m',
        TEST_IMAGE,
        'sh',
        '-c',
        script,
      ],
      { broker: url },
    );
    expect(asked.code, asked.stderr).toBe(0);
    const inspect = async (id: string) => {
      const cid = await eventually(() => docker('ps', '--filter', `label=io.cutter.task=${id}`, '--format', '{{.ID}}'));
      return { cid, config: JSON.parse(docker('inspect', cid))[0].HostConfig.LogConfig };
    };
    const a = await inspect(plain);
    const b = await inspect(asked.stdout.trim());
    expect(a.config).toEqual({ Type: 'none', Config: {} });
    expect(b.config).toEqual({ Type: 'json-file', Config: { 'max-size': '1m' } });
    // cutter's own copy is there either way; the engine's only where the task asked for it.
    await eventually(async () => (await cli(['logs', plain], { broker: url })).stdout === 'kept by cutter\n');
    expect(spawnSync('docker', ['logs', a.cid], { encoding: 'utf8' }).stderr).toMatch(/does not support reading/);
    await eventually(() => docker('logs', b.cid) === 'kept by cutter');
    await Promise.all([cli(['cancel', plain], { broker: url }), cli(['cancel', asked.stdout.trim()], { broker: url })]);

    const refused = await cli(
      ['run', 'docker', 'run', '--log-driver', 'syslog', '--log-opt', 'syslog-address=udp://10.0.0.1:514', TEST_IMAGE, 'true'],
      {
        broker: url,
      },
    );
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain('docker run --log-driver syslog: not allowed (allowed: json-file, local, journald, none)');
    expect(refused.stderr).not.toMatch(/\n\s+at /);
  });

  it('asks for the platform of an image built on the submitting machine, read from its own engine; no engine, no requirement', async () => {
    // The test image came from `docker import`: no registry digest, so it exists for this platform only.
    const arch = docker('image', 'inspect', '--format', '{{.Architecture}}', TEST_IMAGE);
    const submit = async (env: Record<string, string>) => {
      const r = await cli(['run', '-d', '--json', '--node', 'dbig', 'docker', 'run', TEST_IMAGE, 'true'], { broker: url, env });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).requirements as { platform?: { os: string; architecture: string } };
    };
    expect((await submit({})).platform).toEqual({ os: 'linux', architecture: arch });
    expect((await submit({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' })).platform).toBeUndefined();
  });
});
