/**
 * GPUs for docker tasks, against the real Docker engine. The agent reaches the engine through a
 * logging unix-socket relay this test runs (DOCKER_HOST points at it; every byte goes on to the
 * real /var/run/docker.sock), so the Engine API request cutter sends is recorded as the engine
 * received it. The node's GPUs come from the nvidia-smi double (test/fixtures/gpu/bin/nvidia-smi:
 * no GPU here). This engine has no NVIDIA runtime, so it creates the container and refuses to
 * start it ("could not select device driver … with capabilities: [[gpu]]").
 *
 * What a user sees: the create request carries `HostConfig.DeviceRequests` with the node's GPU
 * UUIDs (explicit DeviceIDs, never a Count); the task fails with "this node's Docker has no GPU
 * runtime: install nvidia-container-toolkit" and exit code 125; from then on the node offers no
 * GPU to docker tasks (refused with that reason) while docker tasks without GPUs still run.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, eventually, startAgent, startServer, tempDir, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { GPU_A, GPU_AGENT_ENV, GPU_B } from './gpu-helpers.js';

const engine = needs('docker');
const NODE = 'gpudock';
/** Most bytes recorded per connection (create bodies are a few KiB; attach streams are cut off). */
const RECORD_BYTES = 1024 * 1024;

/** A unix-socket relay to the real engine that records what clients send on each connection. */
function startRecordingRelay(path: string): Promise<{ server: Server; sent: Buffer[][] }> {
  const sent: Buffer[][] = [];
  const server = createServer((c) => {
    const chunks: Buffer[] = [];
    let size = 0;
    sent.push(chunks);
    const u = createConnection('/var/run/docker.sock');
    c.on('data', (d: Buffer) => {
      if (size < RECORD_BYTES) chunks.push(d);
      size += d.length;
    });
    c.pipe(u);
    u.pipe(c);
    const end = () => {
      c.destroy();
      u.destroy();
    };
    c.on('error', end);
    u.on('error', end);
    c.on('close', end);
    u.on('close', end);
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ server, sent })));
}

/** The JSON bodies of every `POST …/containers/create` in the recorded bytes (Content-Length or chunked). */
function createBodies(sent: Buffer[][]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const conn of sent) {
    let text = Buffer.concat(conn).toString('latin1');
    for (;;) {
      const at = text.search(/POST \S*\/containers\/create\S* HTTP\/1\.1\r\n/);
      if (at < 0) break;
      text = text.slice(at);
      const headEnd = text.indexOf('\r\n\r\n');
      const head = text.slice(0, headEnd);
      let rest = text.slice(headEnd + 4);
      let body = '';
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      if (length) {
        body = rest.slice(0, Number(length[1]));
        rest = rest.slice(Number(length[1]));
      } else {
        for (;;) {
          const nl = rest.indexOf('\r\n');
          const n = Number.parseInt(rest.slice(0, nl), 16);
          rest = rest.slice(nl + 2);
          if (!n) break;
          body += rest.slice(0, n);
          rest = rest.slice(n + 2);
        }
      }
      out.push(JSON.parse(Buffer.from(body, 'latin1').toString('utf8')));
      text = rest;
    }
  }
  return out;
}

describe.skipIf(engine.skip)(`GPUs for docker tasks${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  let relay: { server: Server; sent: Buffer[][] };
  const dir = tempDir('cutter-gpu-relay-');
  const sock = join(dir, 'docker.sock');

  beforeAll(async () => {
    ensureTestImage();
    relay = await startRecordingRelay(sock);
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, [], { ...GPU_AGENT_ENV, DOCKER_HOST: `unix://${sock}` });
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    await new Promise((r) => relay?.server.close(r));
    rmSync(dir, { recursive: true, force: true });
    const left = spawnSync('docker', ['ps', '-aq', '--filter', `label=io.cutter.node=${NODE}`], { encoding: 'utf8' }).stdout.trim();
    if (left) spawnSync('docker', ['rm', '-f', ...left.split(/\s+/)]);
  });

  it('docker run --gpus all sends the GPU UUIDs as DeviceRequests; without a GPU runtime the user gets the fix and exit 125', async () => {
    const r = await cli(['run', 'docker', 'run', '--gpus', 'all', TEST_IMAGE, 'true'], { broker: url, timeoutMs: 60_000 });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(
      /failed: this node's Docker has no GPU runtime: install nvidia-container-toolkit on node gpudock and restart Docker/,
    );
    expect(r.stderr).toMatch(/could not select device driver/);

    const bodies = createBodies(relay.sent).filter((b) => (b.Labels as Record<string, string>)?.['io.cutter.node'] === NODE);
    expect(bodies).toHaveLength(1);
    const requests = (bodies[0].HostConfig as { DeviceRequests: { DeviceIDs: string[] }[] }).DeviceRequests;
    expect(requests).toEqual([{ Driver: '', Count: 0, DeviceIDs: expect.any(Array), Capabilities: [['gpu']], Options: {} }]);
    expect(new Set(requests[0].DeviceIDs)).toEqual(new Set([GPU_A, GPU_B]));
    // The container that could not start is not left behind.
    const left = spawnSync('docker', ['ps', '-aq', '--filter', `label=io.cutter.node=${NODE}`], { encoding: 'utf8' }).stdout.trim();
    expect(left).toBe('');
  }, 90_000);

  it('from then on the node offers no GPU to docker tasks, with the reason; docker tasks without GPUs still run', async () => {
    const row = await eventually(async () => {
      const rows = JSON.parse((await cli(['nodes', 'list', '--json'], { broker: url })).stdout);
      const n = rows.find((x: { node: string }) => x.node === NODE);
      return n?.status.capacity.docker.gpuError ? n : null;
    });
    expect(row.status.capacity.docker.gpuError).toMatch(/install nvidia-container-toolkit/);
    const refused = await cli(['run', '--no-queue', '--gpus', '1', 'docker', 'run', TEST_IMAGE, 'true'], { broker: url });
    expect(refused.code).toBe(125);
    expect(refused.stderr).toMatch(
      new RegExp(`^\\s+${NODE}: needs 1 GPU: this node's Docker has no GPU runtime: install nvidia-container-toolkit`, 'm'),
    );
    const plain = await cli(['run', 'docker', 'run', TEST_IMAGE, 'echo', 'no gpu needed'], { broker: url, timeoutMs: 60_000 });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe('no gpu needed\n');
  }, 90_000);
});
