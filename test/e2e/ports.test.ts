/**
 * Port forwarding with real processes and a real Docker engine: a busybox httpd container on a
 * node reached with curl through the server's port (`cutter run -p SERVER:80`), listed by `cutter ports`,
 * closed when the task ends; a node that announces no reachable address (behind NAT) is refused
 * with a clear message and its task cancelled.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, cli, cliBackground, ensureTestImage, eventually, freePort, startAgent, startServer, type Daemon } from '../harness.js';
import { needs } from '../services.js';

const need = needs('docker', 'curl');

/** `curl http://127.0.0.1:port/` as a user would → the body, or `error <curl's exit code>`. */
const fetchBody = (port: number) =>
  new Promise<string>((resolve) => {
    execFile('curl', ['-sS', '--max-time', '3', `http://127.0.0.1:${port}/`], (err, stdout) => {
      resolve(err ? `error curl exit ${(err as { code?: number }).code ?? err.message}` : stdout);
    });
  });

describe.skipIf(need.skip)(`port forwarding${need.tag}`, () => {
  let server: Daemon;
  let reachable: Daemon;
  let natted: Daemon;
  let url: string;

  beforeAll(async () => {
    ensureTestImage();
    // Behind Mosquitto the server cannot see where agents connect from: forwards dial the announced address only when told to.
    const external = process.env.CUTTER_TEST_BROKER === 'mosquitto';
    ({ daemon: server, url } = await startServer(external ? ['--forward-trust-announced'] : []));
    [reachable, natted] = await Promise.all([
      startAgent(url, 'lan-box', ['--advertise-address', '127.0.0.1']),
      startAgent(url, 'behind-nat'),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([reachable?.stop(), natted?.stop()]);
    await server?.stop();
  });

  it('reaches a busybox httpd container through the server port, lists the forward, and closes it when the task ends', async () => {
    const port = await freePort();
    const run = cliBackground(
      [
        'run',
        '--node',
        'lan-box',
        '-p',
        `${port}:80`,
        'docker',
        'run',
        TEST_IMAGE,
        'sh',
        '-c',
        'mkdir /www && echo hello-through-the-mesh > /www/index.html && exec httpd -f -p 80 -h /www',
      ],
      url,
    );
    const body = await eventually(
      async () => {
        const b = await fetchBody(port);
        return b.startsWith('hello') ? b : null;
      },
      30_000,
      200,
    );
    expect(body.trim()).toBe('hello-through-the-mesh');
    expect(run.stderr).toMatch(new RegExp(`forwarding server port ${port} → 127\\.0\\.0\\.1:\\d+ \\(container port 80\\)`));

    const listed = await cli(['ports', '--json'], { broker: url });
    const forwards = JSON.parse(listed.stdout) as {
      taskId: string;
      node: string;
      state: string;
      forwards: { server: number; container: number }[];
    }[];
    const mine = forwards.find((f) => f.forwards.some((x) => x.server === port));
    expect(mine).toMatchObject({ node: 'lan-box', state: 'open' });
    const human = await cli(['ports'], { broker: url });
    expect(human.stdout).toMatch(new RegExp(`${mine!.taskId}\\s+lan-box\\s+open\\s+${port}`));

    expect((await cli(['cancel', mine!.taskId], { broker: url })).code).toBe(0);
    expect(await run.exited).toBe(137);
    await eventually(async () => (await fetchBody(port)).startsWith('error'), 10_000);
    await eventually(async () => !(await cli(['ports', '--json'], { broker: url })).stdout.includes(mine!.taskId), 10_000);
    await server.waitForLog((l) => l.msg === 'port forwards closed' && l.taskId === mine!.taskId);
  }, 90_000);

  it('refuses a forward to a node the server cannot reach, clearly, and cancels the task', async () => {
    const port = await freePort();
    const r = await cli(['run', '--node', 'behind-nat', '-p', `${port}:80`, 'docker', 'run', TEST_IMAGE, 'httpd', '-f', '-p', '80'], {
      broker: url,
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(
      /port forward refused, task \w+ cancelled: node behind-nat announces no address the server can reach \(behind NAT\?\)/,
    );
    expect(await fetchBody(port)).toMatch(/^error/);
  }, 90_000);

  it('refuses -p forms it cannot forward before submitting', async () => {
    const r = await cli(['run', '--node', 'lan-box', 'docker', 'run', '-p', '8080:80/udp', TEST_IMAGE, 'true'], { broker: url });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/only tcp ports can be forwarded/);
  });
});
