/**
 * The mesh end to end with real processes on loopback: `cutter server`, two `cutter agent`s and
 * the `cutter` CLI, using exec tasks (no Docker engine needed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliBackground, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';

describe('mesh with two agents (exec tasks)', () => {
  let server: Daemon;
  let url: string;
  let big: Daemon;
  let small: Daemon;

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    [big, small] = await Promise.all([
      startAgent(url, 'big', ['--max-memory', '2g', '--allow-exec']),
      startAgent(url, 'small', ['--max-memory', '64m', '--allow-exec']),
    ]);
  });
  afterAll(async () => {
    await Promise.all([big?.stop('SIGKILL'), small?.stop('SIGKILL')]);
    await server?.stop();
  });

  it('lists both nodes online with their offered memory within one heartbeat', async () => {
    const r = await cli(['nodes', 'list'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+STATE\s+MEMORY AVAIL\/TOTAL\s+OFFERED\s+CPU\s+TASKS\s+EXECUTORS\s+HEARTBEAT\s+NOTE$/);
    expect(lines.find((l) => l.startsWith('big '))).toMatch(/online .* 2\.0 GiB .* 0\/4 .*exec/);
    expect(lines.find((l) => l.startsWith('small '))).toMatch(/online .* 64\.0 MiB /);

    const j = await cli(['nodes', 'list', '--json'], { broker: url });
    const nodes = JSON.parse(j.stdout) as { node: string; state: string; status: { offer: { maxMemory: number } } }[];
    expect(nodes.map((n) => [n.node, n.state, n.status.offer.maxMemory])).toEqual([
      ['big', 'online', 2 * 1024 ** 3],
      ['small', 'online', 64 * 1024 ** 2],
    ]);
  });

  it('runs an exec task, streams stdout and stderr apart, and exits with its code', async () => {
    const r = await cli(['run', '--node', 'small', 'exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], { broker: url });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(r.stderr).toContain('placed on small');
  });

  it('--auto-select --memory picks the node that fits', async () => {
    const r = await cli(['run', '--auto-select', '--memory', '512m', '--json', 'exec', '--', 'hostname'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n{', r.stdout.length - 2) + 1));
    expect(last.node).toBe('big');
    expect(last.state).toBe('succeeded');
    expect(last.placement).toContain('small: needs 512.0 MiB memory, has 64.0 MiB free');
  });

  it('with --no-queue, fails a task that fits no node with a reason per node, and exit code 125', async () => {
    const r = await cli(['run', '--no-queue', '--memory', '100g', 'exec', '--', 'true'], { broker: url });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/no node can take this exec task needing 100\.0 GiB/);
    expect(r.stderr).toMatch(/^\s+big: needs 100\.0 GiB memory, has .* free/m);
    expect(r.stderr).toMatch(/^\s+small: needs 100\.0 GiB memory, has .* free/m);

    const j = await cli(['run', '--no-queue', '--memory', '100g', '--json', 'exec', '--', 'true'], { broker: url });
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'NO_FIT', rejections: [{ node: 'big' }, { node: 'small' }] });
  });

  it('--detach prints the task id; tasks show and tasks list report it', async () => {
    const r = await cli(['run', '-d', '--node', 'big', 'exec', '--', 'sh', '-c', 'exit 0'], { broker: url });
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    const shown = await eventually(async () => {
      const s = await cli(['tasks', 'show', id, '--json'], { broker: url });
      const t = JSON.parse(s.stdout);
      return t.state === 'succeeded' ? t : null;
    });
    expect(shown).toMatchObject({ taskId: id, node: 'big', attempt: 1, exitCode: 0, kind: 'exec' });
    const human = await cli(['tasks', 'show', id], { broker: url });
    expect(human.stdout).toMatch(/^State:\s+succeeded$/m);
    const list = await cli(['tasks', 'list'], { broker: url });
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+succeeded\\s+big\\s+exec`, 'm'));
  });

  it('cancel stops a running task within 5 s', async () => {
    const r = await cli(['run', '-d', '--node', 'big', 'exec', '--', 'sleep', '60'], { broker: url });
    const id = r.stdout.trim();
    await eventually(async () => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout).state === 'running');
    const c = await cli(['cancel', id], { broker: url });
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`${id} cancelled`);
    expect(c.ms).toBeLessThan(5_000);
  });

  it('Ctrl-C on cutter run cancels the task on the node', async () => {
    const run = cliBackground(['run', '--node', 'big', 'exec', '--', 'sh', '-c', 'echo started; sleep 60'], url);
    await eventually(() => run.stdout.includes('started'));
    run.child.kill('SIGINT');
    const code = await run.exited;
    // The cancel sends SIGTERM to the task's process group: sh dies of it, 128 + 15.
    expect(code).toBe(143);
    expect(run.stderr).toContain('cancelling task');
    const id = /task ([0-9a-f]{12}) placed/.exec(run.stderr)![1];
    const t = JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
    expect(t).toMatchObject({ state: 'cancelled', exitCode: 143 });
  });

  it('reports unknown tasks and unknown nodes clearly', async () => {
    const s = await cli(['tasks', 'show', 'nope'], { broker: url });
    expect(s.code).toBe(1);
    expect(s.stderr).toBe('error: no task nope\n');
    const n = await cli(['run', '--no-queue', '--node', 'ghost', 'exec', '--', 'true'], { broker: url });
    expect(n.code).toBe(125);
    expect(n.stderr).toContain('node "ghost" is not known to the controller (known: big, small)');
  });

  it('refuses exec on a node whose agent was not started with --allow-exec', async () => {
    const strict = await startAgent(url, 'strict', ['--max-memory', '8g']);
    try {
      const r = await cli(['run', '--no-queue', '--node', 'strict', 'exec', '--', 'true'], { broker: url });
      expect(r.code).toBe(125);
      expect(r.stderr).toContain('strict: does not run exec tasks (start its agent with --allow-exec)');
    } finally {
      await strict.stop();
    }
  });

  it('marks a killed agent offline through its last will, and its running task lost', async () => {
    const doomed = await startAgent(url, 'doomed', ['--allow-exec']);
    const r = await cli(['run', '-d', '--restart', 'never', '--node', 'doomed', 'exec', '--', 'sleep', '60'], { broker: url });
    const id = r.stdout.trim();
    await eventually(async () => JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout).state === 'running');
    await doomed.stop('SIGKILL');
    const node = await eventually(async () => {
      const j = await cli(['nodes', 'list', '--json'], { broker: url });
      const n = (JSON.parse(j.stdout) as { node: string; state: string }[]).find((x) => x.node === 'doomed');
      return n?.state === 'offline' ? n : null;
    });
    expect(node.state).toBe('offline');
    const t = JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
    expect(t.state).toBe('lost');
    expect(t.error.code).toBe('NODE_LOST');
  });

  it('an agent stopped with SIGTERM announces offline and exits 0', async () => {
    const polite = await startAgent(url, 'polite', []);
    expect(await polite.stop('SIGTERM')).toBe(0);
    const j = await cli(['nodes', 'list', '--json'], { broker: url });
    const n = (JSON.parse(j.stdout) as { node: string; state: string; status: { reason?: string } }[]).find((x) => x.node === 'polite');
    expect(n).toMatchObject({ state: 'offline', status: { reason: 'agent stopped' } });
  });
});

describe('CLI without a mesh', () => {
  it('says the broker is unreachable, naming the URL', async () => {
    const port = await freePort();
    const r = await cli(['nodes', 'list', '--connect-timeout', '800'], { broker: `mqtt://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the broker at mqtt://127.0.0.1:${port}`);
    const j = await cli(['nodes', 'list', '--connect-timeout', '800', '--json'], { broker: `mqtt://127.0.0.1:${port}` });
    expect(JSON.parse(j.stdout).error.code).toBe('BROKER_UNREACHABLE');
  });

  it('rejects a bad config value naming the key and its source', async () => {
    const r = await cli(['agent', '--max-memory', 'lots']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('invalid config: maxMemory = "lots" (from flag --max-memory)');
    const e = await cli(['agent'], { env: { CUTTER_MAX_TASKS: 'many' } });
    expect(e.code).toBe(1);
    expect(e.stderr).toContain('maxTasks = "many" (from env CUTTER_MAX_TASKS)');
  });
});
