/**
 * Exit codes, signals and broken pipes of `cutter run`, like `docker run`'s: a real server, a real
 * agent (with --allow-exec), the real CLI as a process, and for docker tasks the real engine with
 * the busybox test image. What a user notices: the exit status of `cutter run`, what
 * `tasks show --json` says, that no stack trace is printed and that no task or container is left.
 */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CUTTER,
  cli,
  cliBackground,
  ensureTestImage,
  eventually,
  ISOLATED_ENV,
  startAgent,
  startServer,
  TEST_IMAGE,
  type Daemon,
} from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const NODE = 'xcodes';
/** A stack frame line as Node prints it. */
const STACK = /^\s+at /m;

function docker(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The task id `cutter run` names on stderr ("task ID placed on …"). */
function taskIdOf(stderr: string): string {
  const m = /task (\S+) placed on/.exec(stderr);
  if (!m) throw new Error(`no task id in: ${stderr}`);
  return m[1];
}

let server: Daemon;
let agent: Daemon;
let url: string;
const background: Daemon[] = [];
/** Shells of the pipe test, killed (by pid) if a failed test left them. */
const shells: ReturnType<typeof spawn>[] = [];

beforeAll(async () => {
  if (!engine.skip) ensureTestImage();
  ({ daemon: server, url } = await startServer());
  agent = await startAgent(url, NODE, ['--allow-exec']);
});
afterAll(async () => {
  // Any CLI a failed test left behind, by its own pid.
  for (const d of background) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  for (const c of shells) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await agent?.stop();
  await server?.stop();
});

async function show(id: string): Promise<{ state: string; attempt: number; exitCode: number | null; error: { code: string } | null }> {
  return JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
}

/** `cutter run --node NODE <what…>` to its end. */
const run = (...what: string[]) => cli(['run', '--node', NODE, ...what], { broker: url });

/** Starts `cutter run` in the background and waits until the task printed `up`. */
async function runInBackground(...what: string[]): Promise<Daemon> {
  const d = cliBackground(['run', '--node', NODE, ...what], url);
  background.push(d);
  await eventually(() => d.stdout.includes('up\n'), 20_000);
  return d;
}

const kinds = [
  { kind: 'exec', skip: false, argv: (...cmd: string[]) => ['exec', '--', ...cmd] },
  { kind: 'docker', skip: engine.skip, argv: (...cmd: string[]) => ['docker', 'run', TEST_IMAGE, ...cmd] },
] as const;

for (const k of kinds) {
  describe.skipIf(k.skip)(`${k.kind} tasks: exit codes like docker run's${k.kind === 'docker' ? engine.tag : ''}`, () => {
    it('a command that does not exist: exit 127, COMMAND_NOT_FOUND, not retried even under --restart on-failure', async () => {
      const r = await run('--restart', 'on-failure', '--max-attempts', '3', ...k.argv('nosuchcmd'));
      expect(r.code, r.stderr).toBe(127);
      expect(r.stderr).toContain('exec: "nosuchcmd": executable file not found in $PATH');
      expect(r.stderr).not.toMatch(STACK);
      const s = await show(taskIdOf(r.stderr));
      expect(s).toMatchObject({ state: 'failed', attempt: 1, exitCode: 127, error: { code: 'COMMAND_NOT_FOUND' } });
    });

    it('a file that is not executable: exit 126, COMMAND_NOT_INVOKABLE', async () => {
      const r = await run(...k.argv('/etc/passwd'));
      expect(r.code, r.stderr).toBe(126);
      expect(r.stderr).toContain('exec: "/etc/passwd": permission denied');
      const s = await show(taskIdOf(r.stderr));
      expect(s).toMatchObject({ state: 'failed', exitCode: 126, error: { code: 'COMMAND_NOT_INVOKABLE' } });
    });

    it("the command's own exit code", async () => {
      const r = await run(...k.argv('sh', '-c', 'exit 3'));
      expect(r.code, r.stderr).toBe(3);
      expect(await show(taskIdOf(r.stderr))).toMatchObject({ state: 'failed', exitCode: 3, error: { code: 'EXIT_CODE' } });
    });
  });
}

describe('killed by SIGKILL: exit 137', () => {
  it('exec: sh -c "kill -9 $$"', async () => {
    const r = await run('exec', '--', 'sh', '-c', 'kill -9 $$');
    expect(r.code, r.stderr).toBe(137);
    expect(await show(taskIdOf(r.stderr))).toMatchObject({ state: 'failed', exitCode: 137 });
  });

  // In a container `sh -c 'kill -9 $$'` is PID 1, which the kernel does not let kill itself:
  // the container is SIGKILLed from outside instead, as `docker kill` (or the OOM killer) does.
  it.skipIf(engine.skip)(`docker: the container is SIGKILLed (docker kill)${engine.tag}`, async () => {
    const d = await runInBackground('docker', 'run', TEST_IMAGE, 'sh', '-c', 'echo up; sleep 60');
    const id = taskIdOf(d.stderr);
    docker('kill', docker('ps', '-q', '--filter', `label=io.cutter.task=${id}`));
    expect(await d.exited, d.stderr).toBe(137);
    expect(await show(id)).toMatchObject({ state: 'failed', exitCode: 137 });
  });
});

describe('signals, like docker run --sig-proxy', () => {
  it.skipIf(engine.skip)(`SIGTERM to cutter run cancels the task, which exits with its own code${engine.tag}`, async () => {
    const d = await runInBackground(
      'docker',
      'run',
      TEST_IMAGE,
      'sh',
      '-c',
      'trap "echo TERM; exit 143" TERM; echo up; while :; do sleep 0.1; done',
    );
    const id = taskIdOf(d.stderr);
    d.child.kill('SIGTERM');
    expect(await d.exited, d.stderr).toBe(143);
    expect(d.stdout).toBe('up\nTERM\n');
    expect(d.stderr).toContain(`cancelling task ${id}`);
    expect(d.stderr).not.toMatch(STACK);
    expect(await show(id)).toMatchObject({ state: 'cancelled', exitCode: 143 });
    expect(docker('ps', '-aq', '--filter', `label=io.cutter.task=${id}`)).toBe('');
  });

  it('SIGHUP cancels an exec task; a second signal exits at once (129) and the task still ends', async () => {
    const d = await runInBackground('exec', '--', 'sh', '-c', 'trap "" TERM; echo up; while :; do sleep 0.1; done');
    const id = taskIdOf(d.stderr);
    d.child.kill('SIGHUP');
    await eventually(() => d.stderr.includes(`cancelling task ${id}`));
    const t0 = Date.now();
    d.child.kill('SIGHUP');
    expect(await d.exited).toBe(129);
    expect(Date.now() - t0).toBeLessThan(2_000); // it does not wait out the 3 s grace
    expect(d.stderr).not.toMatch(STACK);
    // SIGTERM is ignored by the job, so it is SIGKILLed after the grace.
    await eventually(async () => (await show(id)).state === 'cancelled', 15_000);
  });
});

describe.skipIf(engine.skip)(`a closed pipe: cutter run … | head -1${engine.tag}`, () => {
  it('stops quietly with 141, cancels the task, leaves no container', async () => {
    const script = `{ '${process.execPath}' '${CUTTER}' run --node ${NODE} docker run ${TEST_IMAGE} yes; echo "cutter exited $?" >&2; } | head -1`;
    const sh = spawn('sh', ['-c', script], { env: { ...ISOLATED_ENV, CUTTER_BROKER: url }, stdio: ['ignore', 'pipe', 'pipe'] });
    shells.push(sh);
    let stdout = '';
    let stderr = '';
    sh.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    sh.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => sh.once('exit', resolve));
    expect(code).toBe(0);
    expect(stdout).toBe('y\n');
    expect(stderr).toContain('cutter exited 141');
    expect(stderr).not.toMatch(STACK);
    expect(stderr).not.toContain('EPIPE');
    const id = taskIdOf(stderr);
    // The cancel's grace (3 s) for `yes`, which ignores SIGTERM as PID 1, plus its backlog of output.
    await eventually(async () => (await show(id)).state === 'cancelled', 30_000, 500);
    expect(docker('ps', '-aq', '--filter', `label=io.cutter.task=${id}`)).toBe('');
  });
});
