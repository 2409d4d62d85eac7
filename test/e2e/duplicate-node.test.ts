/**
 * One node id, one live agent (issue 14), with two real agent processes and one agent token: the
 * second is refused with the reason on both sides and retries with backoff (5 s, 10 s …), the first
 * stays online (no `offline` status ever seen), a task on the node ends at attempt 1; once the first
 * dies, the second takes the node over.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, expect, it } from 'vitest';
import { topics } from '../../shared/topics.js';
import { cli, cliBackground, describeEmbeddedBroker, eventually, startAgent, startServer, tempDir, type Daemon } from '../harness.js';

const t = topics();

describeEmbeddedBroker('one node id, one live agent', () => {
  const daemons: Daemon[] = [];
  let sub: mqtt.MqttClient | undefined;
  afterAll(async () => {
    sub?.end(true);
    for (const d of daemons.reverse()) await d.stop();
  });

  it('refuses a second agent for a live node id, with backoff; the first keeps the node; the second takes over when it dies', async () => {
    const { daemon: server, url, dataDir } = await startServer([], { secure: true });
    daemons.push(server);
    const admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const made = await cli(['token', 'create', '--role', 'agent', '--node', 'twin', '--json'], { broker: url, env: admin });
    expect(made.code, made.stderr).toBe(0);
    const creds = JSON.parse(made.stdout) as { username: string; password: string };
    const tokenFile = join(tempDir(), 'twin.json');
    writeFileSync(tokenFile, JSON.stringify(creds));

    const first = await startAgent(url, 'twin', ['--allow-exec'], { CUTTER_USERNAME: creds.username, CUTTER_PASSWORD: creds.password });
    daemons.push(first);
    // What a mosquitto_sub on the node's status would see.
    const states: string[] = [];
    sub = await mqtt.connectAsync(url, { ...JSON.parse(readFileSync(admin.CUTTER_TOKEN_FILE, 'utf8')), reconnectPeriod: 0 });
    sub.on('message', (_topic, payload) => payload.length > 0 && states.push((JSON.parse(payload.toString()) as { state: string }).state));
    await sub.subscribeAsync(t.nodeStatus('twin'), { qos: 1 });

    const run = await cli(['run', '-d', '--node', 'twin', 'exec', '--', 'sleep', '6'], { broker: url, env: admin });
    expect(run.code, run.stderr).toBe(0);
    const taskId = run.stdout.trim();

    const second = cliBackground(
      [
        'agent',
        '--broker',
        url,
        '--node-id',
        'twin',
        '--heartbeat',
        '500',
        '--allow-exec',
        '--token-file',
        tokenFile,
        '--log-level',
        'debug',
      ],
      url,
    );
    daemons.push(second);
    const refused = await second.waitForLog((l) => String(l.msg).startsWith('node twin is already served by another agent'), 15_000);
    await server.waitForLog((l) => String(l.msg).includes('node twin is already served by an agent at 127.0.0.1'), 10_000);
    // Backoff, not a loop: in the 10 s after the first refusal, 2 tries (at 0 and 5 s; the next at 15 s).
    await new Promise((r) => setTimeout(r, Math.max(0, 10_500 - (Date.now() - Number(refused.time)))));
    const tries = 1 + second.lines.filter((l) => l.msg === 'node id still in use, retrying').length;
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(tries).toBeLessThanOrEqual(3);
    expect(second.lines.filter((l) => String(l.msg).startsWith('node twin is already served'))).toHaveLength(1);

    const task = await eventually(
      async () => {
        const s = JSON.parse((await cli(['tasks', 'show', taskId, '--json'], { broker: url, env: admin })).stdout) as {
          state: string;
          attempt: number;
        };
        return s.state === 'succeeded' ? s : null;
      },
      20_000,
      250,
    );
    expect(task.attempt).toBe(1);
    expect(states).not.toContain('offline');

    await first.stop('SIGKILL');
    await second.waitForMsg('agent started', 70_000);
    // The first's death is announced (its will), then the second's heartbeat says online.
    await eventually(() => states.at(-1) === 'online' && states.includes('offline'), 10_000);
  }, 150_000);
});
