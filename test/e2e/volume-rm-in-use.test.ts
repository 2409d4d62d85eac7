/**
 * `cutter volume rm` refuses a volume a queued or running task mounts, naming the tasks and what to
 * do (wait, cancel, or --force); once they are gone the remove goes through, and `--force` removes
 * one in use. Exec tasks over real processes: no Docker needed.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, cli, eventually, startAgent, startServer, tempDir } from '../harness.js';

describe('volume rm while tasks mount the volume', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  const volumes = tempDir('cutter-volrm-');
  const run = (args: string[], timeoutMs = 60_000) => cli(args, { broker: url, timeoutMs });
  const stateOf = async (task: string) => JSON.parse((await run(['tasks', 'show', task, '--json'])).stdout).state as string;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, 'vrm', ['--allow-exec', '--volumes-dir', volumes]);
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    rmSync(volumes, { recursive: true, force: true });
  });

  it('refuses while a task runs with it or waits in the queue for it, and removes it once they are gone', async () => {
    expect((await run(['volume', 'create', 'vrm:busy'])).code).toBe(0);
    const running = (await run(['run', '-d', '-v', 'busy', 'exec', '--', 'sleep', '60'])).stdout.trim();
    await eventually(async () => expect(await stateOf(running)).toBe('running'), 30_000);
    // A task no node can take now: it waits in the queue, mounting the volume.
    const queued = (await run(['run', '-d', '-v', 'busy', '--memory', '100000g', 'exec', '--', 'true'])).stdout.trim();
    expect(await stateOf(queued)).toBe('queued');

    const refused = await run(['volume', 'rm', 'vrm:busy']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`task ${running} (running)`);
    expect(refused.stderr).toContain(`task ${queued} (queued)`);
    expect(refused.stderr).toMatch(/cutter cancel TASK.*--force/);
    expect(existsSync(join(volumes, 'busy'))).toBe(true);

    await run(['cancel', queued]);
    await run(['cancel', running]);
    await eventually(async () => expect(await stateOf(running)).toBe('cancelled'), 30_000);
    // The node's own record of the task goes with its end.
    await eventually(async () => expect((await run(['volume', 'rm', 'vrm:busy', '--json'])).code).toBe(0), 30_000);
    expect(existsSync(join(volumes, 'busy'))).toBe(false);
  }, 120_000);

  it('removes a volume in use with --force', async () => {
    expect((await run(['volume', 'create', 'vrm:forced'])).code).toBe(0);
    const task = (await run(['run', '-d', '-v', 'forced', 'exec', '--', 'sleep', '60'])).stdout.trim();
    await eventually(async () => expect(await stateOf(task)).toBe('running'), 30_000);
    expect((await run(['volume', 'rm', 'vrm:forced'])).code).not.toBe(0);
    const forced = await run(['volume', 'rm', 'vrm:forced', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(existsSync(join(volumes, 'forced'))).toBe(false);
    await run(['cancel', task]);
  }, 120_000);
});
