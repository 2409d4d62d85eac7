/**
 * `npm run demo`: the main job on this machine. Starts `cutter server` (embedded broker +
 * controller) and two agents — `pi`, offering 256 MiB, and `notebook`, offering 2 GiB — then
 * submits a task that needs 1 GiB with --auto-select and shows the node table, the placement
 * decision, the task's output and its final state, as the commands a user would type.
 *
 * With a Docker engine the task is a real container (the busybox image is built locally when
 * missing, since no registry may be reachable); without one it says so and routes an `exec` task
 * the same way. Exits 0 when the task succeeded.
 *
 * Every port is a free one (broker, dashboard, Ollama API: a real Ollama or another server keeps its
 * own), and nothing is left behind: the data dir with the admin and agent tokens is removed at the
 * end, and the daemons get their own XDG_DATA_HOME inside it (no hint file in the user's home).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerExecutor } from '../agent/executors/docker.js';
import { bold, cyan } from '../cli/tty.js';
import { CUTTER, ROOT, freePort, startDaemon } from './procs.js';
const IMAGE = 'cutter-test/busybox:latest';
const children: ChildProcess[] = [];

const say = (text: string) => process.stdout.write(`\n${bold(text)}\n`);
/** The demo's temporary data dir (tokens included), removed at the end. */
let dataDir = '';
/** Environment of every child: its own XDG_DATA_HOME inside the data dir. */
const childEnv = (): NodeJS.ProcessEnv => ({ ...process.env, XDG_DATA_HOME: join(dataDir, 'xdg') });

/** Starts a daemon for the demo and remembers it for the clean-up. */
async function daemon(args: string[], ready: string): Promise<ChildProcess> {
  const child = await startDaemon(args, ready, childEnv());
  children.push(child);
  return child;
}

/** Runs `cutter …` in the foreground with its output on this terminal, printing the command first. */
/** The admin credentials the demo's server wrote on its first start (the CLI's default looks in ~/.local/share/cutter). */
let adminTokenFile = '';

function cutter(args: string[], broker: string, stdout: 'inherit' | 'pipe' = 'inherit'): Promise<number> {
  if (stdout === 'inherit') process.stdout.write(`${cyan(`$ cutter ${args.map((a) => (/[\s$'"]/.test(a) ? `'${a}'` : a)).join(' ')}`)}\n`);
  const child = spawn(process.execPath, [CUTTER, ...args], {
    stdio: ['ignore', stdout, 'inherit'],
    env: { ...childEnv(), CUTTER_BROKER: broker, CUTTER_TOKEN_FILE: adminTokenFile },
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
}

/** Creates an agent token with the CLI, as a user would, and writes it where `--token-file` reads it. */
async function agentToken(broker: string, node: string, dir: string): Promise<string> {
  const file = join(dir, `${node}.token.json`);
  const child = spawn(process.execPath, [CUTTER, 'token', 'create', '--role', 'agent', '--node', node, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...childEnv(), CUTTER_BROKER: broker, CUTTER_TOKEN_FILE: adminTokenFile },
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`cutter token create for ${node} failed`);
  writeFileSync(file, out, { mode: 0o600 });
  return file;
}

async function main(): Promise<number> {
  const probe = await new DockerExecutor().probe();
  let useDocker = probe.available;
  if (!useDocker) {
    say(`No Docker engine reachable (${probe.error}).`);
    process.stdout.write(
      'To see a real container routed, install and start one (Debian: apt-get install -y docker.io busybox-static && dockerd &), then run npm run demo again.\nShowing the same routing with an exec task instead.\n',
    );
  } else if (spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0) {
    say(`Building the local image ${IMAGE} (no registry needed)`);
    const b = spawnSync('bash', [`${ROOT}scripts/build-test-image.sh`, IMAGE], { stdio: 'inherit' });
    if (b.status !== 0) {
      process.stdout.write('Could not build the image (needs busybox-static); showing the routing with an exec task instead.\n');
      useDocker = false;
    }
  }

  const port = await freePort();
  const broker = `mqtt://127.0.0.1:${port}`;
  say(`Starting cutter server (embedded MQTT broker on ${broker} + controller) and two agents`);
  dataDir = mkdtempSync(join(tmpdir(), 'cutter-demo-'));
  const [httpPort, ollamaPort] = [await freePort(), await freePort()];
  await daemon(
    [
      'server',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
      '--http-port',
      String(httpPort),
      '--ollama-port',
      String(ollamaPort),
      '--log-format',
      'json',
    ],
    'broker listening',
  );
  process.stdout.write(`dashboard: http://127.0.0.1:${httpPort}/  Ollama-compatible API: http://127.0.0.1:${ollamaPort}\n`);
  adminTokenFile = join(dataDir, 'admin.json');
  process.stdout.write(`server up; anonymous clients are refused: it wrote its first admin token to ${adminTokenFile} (mode 0600)\n`);
  const [piToken, nbToken] = await Promise.all([agentToken(broker, 'pi', dataDir), agentToken(broker, 'notebook', dataDir)]);
  await Promise.all([
    daemon(
      [
        'agent',
        '--broker',
        broker,
        '--node-id',
        'pi',
        '--token-file',
        piToken,
        '--max-memory',
        '256m',
        '--allow-exec',
        '--heartbeat',
        '1000',
      ],
      'agent started',
    ),
    daemon(
      [
        'agent',
        '--broker',
        broker,
        '--node-id',
        'notebook',
        '--token-file',
        nbToken,
        '--max-memory',
        '2g',
        '--allow-exec',
        '--heartbeat',
        '1000',
      ],
      'agent started',
    ),
  ]);
  process.stdout.write(
    'agent "pi" (offers 256 MiB) and agent "notebook" (offers 2 GiB) joined with their own tokens (cutter token create --role agent)\n',
  );

  say('The mesh, from the retained heartbeats');
  await cutter(['nodes', 'list'], broker);

  say('A task that needs 1 GiB: the scheduler rejects pi and places it on notebook');
  const script =
    'echo "hello from a cutter task"; echo "memory limit: $(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo none)"; echo "a line on stderr" >&2';
  const runArgs = useDocker
    ? ['run', '--auto-select', '--memory', '1g', 'docker', 'run', '-m', '1g', IMAGE, 'sh', '-c', script]
    : [
        'run',
        '--auto-select',
        '--memory',
        '1g',
        'exec',
        '--',
        'sh',
        '-c',
        'echo "hello from a cutter task on $(hostname)"; echo "a line on stderr" >&2',
      ];
  const code = await cutter(runArgs, broker);
  process.stdout.write(`(cutter run exited with ${code})\n`);

  say('What the controller recorded');
  await cutter(['tasks', 'list'], broker);

  say('A task no node can take fails at once, with a reason per node');
  await cutter(
    ['run', '--no-queue', '--memory', '64g', useDocker ? 'docker' : 'exec', ...(useDocker ? ['run', IMAGE, 'true'] : ['--', 'true'])],
    broker,
  );
  return code;
}

/** Stops the daemons, then removes the data dir (the tokens) once they are gone. */
const stopAll = async () => {
  const exits = children
    .reverse()
    .map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null));
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
};
main()
  .then(async (code) => {
    await stopAll();
    say(code === 0 ? 'Demo finished: the task ran on the node that had room.' : `Demo failed: the task exited with ${code}.`);
    process.stdout.write('(the demo removed its data dir and tokens)\n');
    process.exit(code);
  })
  .catch(async (err) => {
    process.stderr.write(`demo failed: ${(err as Error).message}\n`);
    await stopAll();
    process.exit(1);
  });
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void stopAll().then(() => process.exit(130));
  });
