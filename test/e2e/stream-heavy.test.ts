/**
 * A task that streams 100 MB of output as fast as it can (issue 15; the brief: "ran a task twice
 * when its output starved the agent's heartbeat"). The node's heartbeat shares one MQTT connection
 * with that output and may arrive late behind it; the node must not be taken for dead for that:
 * the task runs once (attempt 1), its bytes arrive exactly, and the server never marks the node
 * offline. The agent's memory stays bounded meanwhile (its output window, agent/output-window.ts):
 * its RSS is sampled while the bytes stream.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUTTER, ISOLATED_ENV, cli, startAgent, startServer, tempDir, type Daemon } from '../harness.js';

const NODE = 'heavy-node';
const BYTES = 100_000_000;

/** RSS of a process now, bytes (from /proc; 0 when it cannot be read). */
function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

describe('a task streaming 100 MB of output', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--allow-exec']);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('runs once, delivers every byte, and the node is never taken for dead', { timeout: 300_000 }, async () => {
    const file = join(tempDir(), 'random.bin');
    const content = randomBytes(BYTES);
    writeFileSync(file, content);
    const want = createHash('sha256').update(content).digest('hex');

    const child = spawn(process.execPath, [CUTTER, 'run', '--node', NODE, 'exec', '--', 'cat', file], {
      env: { ...ISOLATED_ENV, CUTTER_BROKER: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    let got = 0;
    child.stdout.on('data', (c: Buffer) => {
      hash.update(c);
      got += c.length;
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('latin1')));
    let agentPeak = 0;
    const sampler = setInterval(() => (agentPeak = Math.max(agentPeak, rss(agent.child.pid!))), 100);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearInterval(sampler);

    expect(code, stderr).toBe(0);
    expect({ bytes: got, sha256: hash.digest('hex') }).toEqual({ bytes: BYTES, sha256: want });
    const id = /cutter: task (\S+) placed on/.exec(stderr)?.[1];
    expect(id, stderr).toBeDefined();
    const show = await cli(['tasks', 'show', id!, '--json'], { broker: url });
    expect(JSON.parse(show.stdout)).toMatchObject({ state: 'succeeded', attempt: 1, node: NODE });
    expect(server.lines.filter((l) => l.node === NODE && /offline/.test(String(l.msg)))).toEqual([]);
    console.log(`100 MB through cutter run: agent RSS peak ${(agentPeak / 1024 / 1024).toFixed(0)} MiB`);
    // Bounded by the output window, not by what the task wrote (the agent starts near 90 MiB).
    expect(agentPeak).toBeLessThan(400 * 1024 * 1024);
  });
});
