/**
 * A node's execution policy, the audit log and the submission rate limit, through the CLI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ON_MOSQUITTO, TEST_IMAGE, cli, ensureTestImage, eventually, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

describe('execution policy, audit log and rate limit', () => {
  let server: Daemon;
  let url: string;
  let dataDir: string;
  let strict: Daemon;
  const engine = needs('docker');

  beforeAll(async () => {
    if (!engine.skip) ensureTestImage();
    ({ daemon: server, url, dataDir } = await startServer(['--submits-per-minute', '30']));
    strict = await startAgent(url, 'strict', ['--allow-exec'], {
      CUTTER_EXEC_ALLOWLIST: 'echo,/bin/true',
      CUTTER_ALLOWED_IMAGES: 'cutter-test/*',
      CUTTER_MAX_TASK_MEMORY: '64m',
      CUTTER_DEFAULT_TASK_MEMORY: '32m',
    });
  });
  afterAll(async () => {
    await strict?.stop();
    await server?.stop();
  });

  it('refuses an exec command outside the allowlist, naming the rule, and runs one inside it', async () => {
    const bad = await cli(['run', '--node', 'strict', 'exec', '--', 'sh', '-c', 'echo sneaky'], { broker: url });
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain("refused by node strict's policy: command sh is not allowed here (execAllowlist: echo, /bin/true)");
    expect(bad.stdout).toBe('');
    const ok = await cli(['run', '--node', 'strict', 'exec', '--', 'echo', 'allowed'], { broker: url });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('allowed\n');
  });

  it.skipIf(engine.skip)(`refuses images outside the allowlist and limits over the cap; gives a default limit${engine.tag}`, async () => {
    const image = await cli(['run', '--node', 'strict', 'docker', 'run', '-m', '32m', 'evil/miner', 'true'], { broker: url });
    expect(image.code).toBe(125);
    expect(image.stderr).toContain('image evil/miner is not allowed here (allowedImages: cutter-test/*)');
    const big = await cli(['run', '--node', 'strict', 'docker', 'run', '-m', '1g', TEST_IMAGE, 'true'], { broker: url });
    expect(big.stderr).toContain("memory limit 1.0 GiB is over this node's maxTaskMemory of 64.0 MiB");
    const dflt = await cli(
      [
        'run',
        '--node',
        'strict',
        'docker',
        'run',
        TEST_IMAGE,
        'sh',
        '-c',
        'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
      ],
      { broker: url },
    );
    expect(dflt.code, dflt.stderr).toBe(0);
    expect(dflt.stdout.trim()).toBe(String(32 * 1024 * 1024));
  });

  it('keeps an append-only audit log of submissions, placements, cancels, drains and outcomes', async () => {
    const id = (await cli(['run', '-d', '--node', 'strict', 'exec', '--', 'echo', 'audited'], { broker: url })).stdout.trim();
    await eventually(async () => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout).state === 'succeeded');
    await cli(['nodes', 'drain', 'strict'], { broker: url });
    await cli(['nodes', 'resume', 'strict'], { broker: url });
    const lines = await eventually(() => {
      const all = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return all.some((l) => l.action === 'resume') ? all : null;
    });
    const mine = lines.filter((l) => l.taskId === id).map((l) => `${l.action}:${l.outcome}`);
    expect(mine).toEqual(['placement:ok', 'submit:ok', 'finish:succeeded']);
    // The CLI on the server's machine finds the admin token of this --data-dir server (its hint names
    // this server's port), so the audit names the admin identity, not an anonymous client id. On
    // Mosquitto the broker is not the server's own: no hint, and the CLI connects as its client id.
    expect(lines.find((l) => l.action === 'submit' && l.taskId === id)).toMatchObject({
      who: ON_MOSQUITTO ? expect.stringMatching(/^cutter-cli-/) : 'admin:local',
      detail: 'exec echo audited',
    });
    expect(lines.filter((l) => l.node === 'strict' && (l.action === 'drain' || l.action === 'resume')).map((l) => l.action)).toEqual([
      'drain',
      'resume',
    ]);
    expect(lines.every((l) => typeof l.ts === 'number')).toBe(true);
  });

  it('refuses submissions over the per-identity rate with RATE_LIMITED, keeping nothing', async () => {
    const { Requester } = await import('../netns.js');
    const req = await Requester.connect(url);
    let limited = 0;
    let accepted = 0;
    for (let i = 0; i < 45; i++) {
      const r = (await req.request({
        op: 'submit',
        spec: { kind: 'exec', argv: ['/bin/true'], env: {} },
        requirements: { node: 'strict', memory: 0, cpus: 0 },
      })) as { ok: boolean; error?: { code: string; message: string } };
      if (r.ok) accepted++;
      else if (r.error?.code === 'RATE_LIMITED') limited++;
    }
    await req.end();
    expect(accepted).toBeLessThanOrEqual(30);
    expect(limited).toBeGreaterThanOrEqual(15);
    // Another identity is not affected.
    const other = await cli(['run', '--node', 'strict', 'exec', '--', 'echo', 'still served'], { broker: url });
    expect(other.stdout).toBe('still served\n');
  });
});
