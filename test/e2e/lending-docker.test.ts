/**
 * Lending with a real Docker engine (issue 17): a docker task is paused (`docker inspect` shows
 * State.Paused true) when its node stops lending and unpaused when it lends again; past the
 * preempt time it is stopped, reported PREEMPTED and placed again on another node, where it
 * finishes. The trigger is the power double (deterministic); CPU burners outside cutter are
 * lending-burner.test.ts (a stress-group file, run alone). Skipped without a Docker engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';
import { lendingOf, powerDouble } from './lending-helpers.js';
import { docker, dockerExec, showTask, t, until, watch } from './recovery-helpers.js';

const engine = needs('docker');
/** Runs until /tmp/go exists in the container, then says so and exits 0. */
const GATED_OK = ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.2; done; echo finished'];
const paused = (ref: string) => docker('inspect', '-f', '{{.State.Paused}}', ref) === 'true';

describe.skipIf(engine.skip)(`lending: a docker task on a notebook${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ensureTestImage();
    ({ daemon: server, url } = await startServer());
  });
  afterAll(async () => {
    for (const a of agents) await a.stop('SIGKILL');
    await server?.stop();
  });

  it('is paused on battery, unpaused on AC, and past the grace time requeued to another node where it finishes', async () => {
    const statuses = await watch(url, t.allNodeStatus());
    const events = await watch(url, t.allTaskEvents());
    const power = powerDouble();
    agents.push(
      await startAgent(url, 'dnotebook', [
        '--lend-ac-only',
        '--power-supply-dir',
        power.dir,
        '--lend-sample',
        '1s',
        '--lend-preempt-after',
        '10m',
      ]),
    );
    try {
      await until(() => lendingOf(statuses.messages, 'dnotebook')?.state === 'lending', 20_000);
      const r = await cli(['run', '-d', 'docker', 'run', TEST_IMAGE, ...GATED_OK], { broker: url });
      expect(r.code).toBe(0);
      const id = r.stdout.trim();
      const first = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started' && e.attempt === 1), 60_000);
      expect(first.node).toBe('dnotebook');
      const ref = String(first.ref);
      expect(paused(ref)).toBe(false);

      power.set(false);
      await until(() => paused(ref), 20_000, 200);
      await until(() => lendingOf(statuses.messages, 'dnotebook')?.state === 'suspended', 10_000);
      expect(lendingOf(statuses.messages, 'dnotebook')?.reason).toBe('on battery');

      power.set(true);
      await until(() => !paused(ref), 20_000, 200);
      expect(docker('inspect', '-f', '{{.State.Running}}', ref)).toBe('true');

      agents.push(await startAgent(url, 'ddesktop'));
      const shorter = await cli(['nodes', 'policy', 'dnotebook', '--preempt-after', '3s', '--json'], { broker: url });
      expect(JSON.parse(shorter.stdout)).toMatchObject({ applied: true });
      power.set(false);
      await until(() => paused(ref), 20_000, 200);
      const failed = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'failed' && e.attempt === 1), 60_000);
      expect(failed.code).toBe('PREEMPTED');
      const second = await until(() => events.messages.find((e) => e.taskId === id && e.type === 'started' && e.attempt === 2), 60_000);
      expect(second.node).toBe('ddesktop');
      // The first attempt's container is stopped (and removed by its agent).
      await until(() => docker('ps', '-q', '--filter', `id=${ref}`) === '', 30_000, 300);

      dockerExec(String(second.ref), 'touch', '/tmp/go');
      const done = await until(async () => {
        const s = await showTask(url, id);
        return s.state === 'succeeded' ? s : null;
      }, 30_000);
      expect(done).toMatchObject({ node: 'ddesktop', attempt: 2, exitCode: 0 });
      const logs = await cli(['logs', id], { broker: url });
      expect(logs.stdout).toBe('finished\n');
    } finally {
      power.set(true);
      await statuses.close();
      await events.close();
    }
  }, 240_000);
});
