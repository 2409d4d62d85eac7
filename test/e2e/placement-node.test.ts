/**
 * Placement honours the node (issue 16), with a real server and two agents as processes:
 * - `alpha`: exec allowed for `echo` only, images `cutter-test/*` only, machine `m-alpha`;
 * - `zeta`: label gpu=rtx4090, no exec, 1 GiB offered, machine `m-zeta`.
 * Both are idle on one machine, so plain spread picks alpha (more memory free): every test below
 * shows a task going where spread alone would not, or refused before any attempt with each
 * node's reason — never placed and then refused by the agent.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, ensureTestImage, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

/** A second name for the test image, outside alpha's allowedImages (this file's own prefix; removed after). */
const OTHER_IMAGE = 'i16place/busybox:latest';

const engine = needs('docker');

describe.skipIf(engine.skip)(`placement honours the node${engine.tag}`, () => {
  let server: Daemon;
  let url: string;
  const agents: Daemon[] = [];

  beforeAll(async () => {
    ensureTestImage();
    execFileSync('docker', ['tag', TEST_IMAGE, OTHER_IMAGE]);
    ({ daemon: server, url } = await startServer());
    agents.push(
      await startAgent(url, 'alpha', ['--allow-exec'], {
        CUTTER_EXEC_ALLOWLIST: 'echo',
        CUTTER_ALLOWED_IMAGES: 'cutter-test/*',
        CUTTER_MACHINE_ID: 'm-alpha',
      }),
      await startAgent(url, 'zeta', ['--label', 'gpu=rtx4090', '--max-memory', '1g'], { CUTTER_MACHINE_ID: 'm-zeta' }),
    );
  }, 60_000);
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await server?.stop();
    try {
      execFileSync('docker', ['rmi', OTHER_IMAGE], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  });

  /** Runs a task to its end and returns its final state (`cutter run --json`). */
  async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
    const r = await cli(['run', '--json', ...args], { broker: url, env });
    expect(r.code, r.stderr).toBe(0);
    // One JSON line per event, then the final state, pretty-printed.
    return JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('\n{\n') + 1)) as { node: string; placement: string; state: string };
  }

  it('spread alone picks alpha; --constraint gpu=rtx4090 goes to the labelled node', async () => {
    expect((await run(['docker', 'run', TEST_IMAGE, 'true'])).node).toBe('alpha');
    const t = await run(['--constraint', 'gpu=rtx4090', 'docker', 'run', TEST_IMAGE, 'true']);
    expect(t.node).toBe('zeta');
    expect(t.placement).toContain('alpha: constraint gpu=rtx4090 not met: the node has no such label');
  });

  it('a constraint no node meets is refused before assignment: queued, no attempt, each node named', async () => {
    const id = (await cli(['run', '-d', '--constraint', 'gpu=a100', 'docker', 'run', TEST_IMAGE, 'true'], { broker: url })).stdout.trim();
    const shown = JSON.parse((await cli(['tasks', 'show', id, '--json'], { broker: url })).stdout);
    expect(shown).toMatchObject({ state: 'queued', attempt: 0, node: null });
    expect(shown.reason).toContain('alpha: constraint gpu=a100 not met: the node has no such label');
    expect(shown.reason).toContain('zeta: constraint gpu=a100 not met: its label is gpu=rtx4090');
    const human = await cli(['tasks', 'show', id], { broker: url });
    expect(human.stdout).toMatch(/Waiting: +waiting: no node can take this docker task now \(alpha: constraint gpu=a100 not met/);
    expect((await cli(['cancel', id], { broker: url })).code).toBe(0);
  });

  it.skipIf(process.arch !== 'x64')('--platform linux/arm64 is refused on this amd64 machine with the platform reason', async () => {
    const r = await cli(['run', '--no-queue', '--platform', 'linux/arm64', 'docker', 'run', TEST_IMAGE, 'true'], { broker: url });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('alpha: needs platform linux/arm64, the node is linux/amd64');
    expect(r.stderr).toContain('zeta: needs platform linux/arm64, the node is linux/amd64');
    const json = JSON.parse(
      (await cli(['run', '--json', '--no-queue', 'docker', 'run', '--platform', 'linux/arm64', TEST_IMAGE, 'true'], { broker: url }))
        .stdout,
    );
    expect(json.error.code).toBe('NO_FIT');
    expect(json.error.rejections.map((x: { node: string; code: string }) => `${x.node}:${x.code}`)).toEqual([
      'alpha:platform',
      'zeta:platform',
    ]);
  });

  it('--disk larger than any free space is refused with the disk reason', async () => {
    const r = await cli(['run', '--json', '--no-queue', '--disk', '1000t', 'docker', 'run', TEST_IMAGE, 'true'], { broker: url });
    expect(r.code).toBe(125);
    const rejections = JSON.parse(r.stdout).error.rejections as { node: string; code: string; needed: number; free: number }[];
    expect(rejections.map((x) => `${x.node}:${x.code}`)).toEqual(['alpha:disk', 'zeta:disk']);
    for (const x of rejections) expect(x.free).toBeLessThan(x.needed);
  });

  it("an image outside alpha's allowedImages runs on zeta; an exec task skips zeta, which runs none", async () => {
    const image = await run(['docker', 'run', OTHER_IMAGE, 'echo', 'ran']);
    expect(image.node).toBe('zeta');
    expect(image.placement).toContain('alpha: its policy refuses the task: image i16place/busybox:latest is not allowed here');
    const exec = await run(['exec', '--', 'echo', 'hi']);
    expect(exec.node).toBe('alpha');
    expect(exec.placement).toContain('zeta: does not run exec tasks');
  });

  it('a command no node admits is refused with policy (and no-exec), never placed', async () => {
    const r = await cli(['run', '--no-queue', 'exec', '--', 'sh', '-c', 'echo sneaky'], { broker: url });
    expect(r.code).toBe(125);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('alpha: its policy refuses the task: command sh is not allowed here (execAllowlist: echo)');
    expect(r.stderr).toContain('zeta: does not run exec tasks');
    // Pinned to alpha: refused at once in the agent's words, not left queued forever.
    const pinned = await cli(['run', '--node', 'alpha', 'exec', '--', 'sh', '-c', 'echo sneaky'], { broker: url });
    expect(pinned.code).toBe(125);
    expect(pinned.stderr).toContain("refused by node alpha's policy: command sh is not allowed here (execAllowlist: echo)");
  });

  it('prefer-local picks the local node, then the other once its headroom would be crossed', async () => {
    const local = { CUTTER_MACHINE_ID: 'm-zeta' };
    const flags = ['--prefer-local', '--local-headroom', '512m'];
    // zeta offers 1 GiB: 256 MiB leaves 768 MiB (keeps 512 MiB), 768 MiB leaves 256 MiB (does not).
    const small = await run([...flags, '--memory', '256m', 'docker', 'run', TEST_IMAGE, 'true'], local);
    expect(small.node).toBe('zeta');
    expect(small.placement).toContain('local node, keeps the headroom of 512.0 MiB');
    const big = await run([...flags, '--memory', '768m', 'docker', 'run', TEST_IMAGE, 'true'], local);
    expect(big.node).toBe('alpha');
    expect(big.placement).toContain('the local node zeta would keep less than 512.0 MiB: offloaded to the best other node');
  });
});
