/**
 * `cutter run -i` (issue 15): the CLI's stdin, EOF included, reaches the task byte for byte — a
 * directory's tar piped through a container's `tar x` gives the same files (sha256), 1 MiB of
 * random bytes comes back through `cat` exactly, `wc -c` counts what was sent and exits (so EOF
 * arrived). A task that reads nothing yet holds back a fast producer: on the wire, never more than
 * the window is sent beyond what the task took. Without -i the task's stdin is empty. Only the task's submitter may write its stdin:
 * another admin identity publishing a frame there is cut by the broker and the task never sees it.
 * Real server, real agent, the CLI as a process; docker cases are skipped without an engine.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeStdinFrame, encodeStdinFrame, STDIN_WINDOW, type StdinAck } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import {
  CUTTER,
  cli,
  describeEmbeddedBroker,
  ensureTestImage,
  eventually,
  ISOLATED_ENV,
  startAgent,
  startServer,
  TEST_IMAGE,
  tempDir,
  type Daemon,
} from '../harness.js';
import { needs } from '../services.js';

const engine = needs('docker');
const NODE = 'stdin-node';

interface Captured {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Runs `sh -c SCRIPT` (where `$CUTTER` is the CLI) with `input` on its stdin, collecting stdout as
 * bytes. A pipeline in SCRIPT is the user's own shell pipe (`tar c … | $CUTTER run -i …`).
 */
function shell(script: string, env: NodeJS.ProcessEnv, input?: Buffer, timeoutMs = 60_000): Promise<Captured> {
  const child = spawn('sh', ['-c', script], {
    env: { ...ISOLATED_ENV, ...env, CUTTER: `${process.execPath} ${CUTTER}` },
    stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  if (input) child.stdin!.end(input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sh -c ${script} did not finish within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

describe('cutter run -i streams stdin to the task', () => {
  let server: Daemon;
  let url: string;
  let agent: Daemon;
  const run = (script: string, input?: Buffer) => shell(script, { CUTTER_BROKER: url }, input);

  beforeAll(async () => {
    if (!engine.skip) ensureTestImage();
    ({ daemon: server, url } = await startServer());
    agent = await startAgent(url, NODE, ['--allow-exec']);
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it('an exec task that cats 1 MiB of random bytes gives them back exactly', async () => {
    const input = randomBytes(1024 * 1024);
    const r = await run(`$CUTTER run -i --node ${NODE} exec -- cat`, input);
    expect(r.code, r.stderr).toBe(0);
    expect({ bytes: r.stdout.length, sha256: sha256(r.stdout) }).toEqual({ bytes: input.length, sha256: sha256(input) });
  });

  it('EOF reaches an exec task: wc -c counts the bytes and exits; empty stdin counts 0', async () => {
    const r = await run(`printf 'hello' | $CUTTER run -i --node ${NODE} exec -- wc -c`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString().trim()).toBe('5');
    const empty = await run(`$CUTTER run -i --node ${NODE} exec -- wc -c </dev/null`);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout.toString().trim()).toBe('0');
  });

  it('without -i the task reads an empty stdin and the CLI reads none of its own', async () => {
    const r = await run(`printf 'not for the task' | $CUTTER run --node ${NODE} exec -- wc -c`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString().trim()).toBe('0');
  });

  it('a fast producer waits for a task that does not read yet: never more than the window beyond what the task took', async () => {
    const dir = tempDir('cutter-stdin-window-');
    const go = join(dir, 'go');
    // The task reads nothing until `go` exists; the test sees every frame and every ack on the wire.
    const sniffer = await mqtt.connectAsync(url, { clientId: 'stdin-sniffer', reconnectPeriod: 0 });
    const t = topics();
    await sniffer.subscribeAsync([t.nodeStdin(NODE, '+'), t.nodeStdinAck(NODE, '+')], { qos: 1 });
    let written = 0;
    let sent = 0;
    let worst = 0;
    sniffer.on('message', (topic, payload) => {
      const p = t.parse(topic);
      if (p?.kind === 'nodeStdinAck') written = Math.max(written, (JSON.parse(payload.toString()) as StdinAck).written);
      else if (p?.kind === 'nodeStdin') {
        const f = decodeStdinFrame(payload)!;
        sent = Math.max(sent, f.offset + f.data.length);
        worst = Math.max(worst, sent - written);
      }
    });
    const input = randomBytes(16 * 1024 * 1024);
    const waiting = `while [ ! -e '${go}' ]; do sleep 0.05; done; wc -c`;
    const running = run(`$CUTTER run -i --node ${NODE} exec -- sh -c "${waiting}"`, input);
    // The window is full and the task has taken nothing beyond the pipe's buffer: the CLI waits.
    await eventually(() => sent >= STDIN_WINDOW, 30_000);
    writeFileSync(go, '');
    const r = await running;
    sniffer.end(true);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString().trim()).toBe(String(input.length));
    expect(sent).toBe(input.length);
    expect(worst).toBeLessThanOrEqual(STDIN_WINDOW);
  });

  describe.skipIf(engine.skip)(`docker tasks${engine.tag}`, () => {
    it('tar c DIR | cutter run -i docker run -i IMG tar x: the same files arrive (sha256 of each)', async () => {
      const dir = tempDir('cutter-stdin-tar-');
      const files: Record<string, Buffer> = {
        'a.bin': randomBytes(300_000),
        empty: Buffer.alloc(0),
        'sub/b.bin': randomBytes(1_500_000),
        'sub/deeper/c.txt': Buffer.from('hello\n'),
      };
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(join(dir, name, '..'), { recursive: true });
        writeFileSync(join(dir, name), content);
      }
      const inContainer = 'mkdir -p /tmp/x && tar x -C /tmp/x && cd /tmp/x && find . -type f | sort | xargs sha256sum';
      const r = await run(`tar c -C '${dir}' . | $CUTTER run -i --node ${NODE} docker run -i ${TEST_IMAGE} sh -c '${inContainer}'`);
      expect(r.code, r.stderr).toBe(0);
      const expected = Object.keys(files)
        .map((name) => `./${name}`)
        .sort()
        .map((path) => `${sha256(files[path.slice(2)])}  ${path}`);
      expect(r.stdout.toString().trim().split('\n')).toEqual(expected);
    });

    it('-t through a pty: the container has a tty device and cutter exits with its code', async () => {
      // `script` gives the CLI a pseudo-terminal (30 rows, 100 columns), as a user's terminal would.
      const r = await run(
        `script -qfec "stty rows 30 cols 100; $CUTTER run -it --node ${NODE} docker run -it ${TEST_IMAGE} sh -c 'tty; exit 3'" /dev/null`,
      );
      expect(r.code, r.stderr).toBe(3);
      expect(r.stdout.toString()).toMatch(/\/dev\/pts\/\d+\r/);
      expect(r.stdout.toString()).not.toContain('not a tty');
    });

    it("-it is an interactive shell: typed lines run, the window size is the terminal's, exit ends it", async () => {
      const child = spawn(
        'script',
        ['-qfec', `stty rows 30 cols 100; $CUTTER run -it --node ${NODE} docker run -it ${TEST_IMAGE} sh`, '/dev/null'],
        { env: { ...ISOLATED_ENV, CUTTER_BROKER: url, CUTTER: `${process.execPath} ${CUTTER}` } },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      // The shell's prompt (busybox ash may follow it with a cursor position query, ESC [6n).
      await eventually(() => out.includes('/ # '), 30_000).catch((err) => {
        child.kill('SIGKILL');
        throw err;
      });
      child.stdin.write('echo $((6*7)); stty size\n');
      await eventually(() => /42\r+\n30 100\r/.test(out), 15_000);
      child.stdin.write('exit 4\n');
      expect(await exited, out).toBe(4);
    });

    it('EOF reaches the container: wc -c counts 100,000 bytes and exits', async () => {
      const r = await run(`$CUTTER run --node ${NODE} docker run -i ${TEST_IMAGE} wc -c`, randomBytes(100_000));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString().trim()).toBe('100000');
    });
  });
});

describeEmbeddedBroker('only the submitter writes a task stdin', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let admin: NodeJS.ProcessEnv;

  beforeAll(async () => {
    let dataDir: string;
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    admin = { CUTTER_BROKER: url, CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const node = JSON.parse((await cli(['token', 'create', '--role', 'agent', '--node', NODE, '--json'], { env: admin })).stdout);
    agent = await startAgent(url, NODE, ['--allow-exec'], { CUTTER_USERNAME: node.username, CUTTER_PASSWORD: node.password });
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
  });

  it("another admin identity publishing on the task's stdin topic is cut and its bytes never reach the task", async () => {
    const other = JSON.parse((await cli(['token', 'create', '--role', 'admin', '--name', 'mallory', '--json'], { env: admin })).stdout);
    // The submitter's stdin: a FIFO held open by the shell, written only after the intruder tried.
    // Made before either shell starts: a writer that won the race would create a regular file.
    const fifo = join(tempDir('cutter-stdin-acl-'), 'in');
    execFileSync('mkfifo', [fifo]);
    const owner = spawn('sh', ['-c', `$CUTTER run -i --node ${NODE} exec -- cat < '${fifo}'`], {
      env: { ...ISOLATED_ENV, ...admin, CUTTER: `${process.execPath} ${CUTTER}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    owner.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    owner.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => owner.once('close', r));
    // The FIFO's writer end: the CLI opens its stdin only once this opens too.
    const writer = spawn('sh', ['-c', `cat > '${fifo}'`], { stdio: ['pipe', 'ignore', 'ignore'] });
    const taskId = await eventually(() => /cutter: task (\S+) placed on/.exec(stderr)?.[1], 30_000);
    await eventually(
      async () => JSON.parse((await cli(['tasks', 'show', taskId, '--json'], { env: admin })).stdout).state === 'running',
      30_000,
    );

    const intruder = await mqtt.connectAsync(url, { ...other, clientId: 'mallory-1', reconnectPeriod: 0 });
    const closed = new Promise<void>((r) => intruder.once('close', () => r()));
    const frame = encodeStdinFrame({ attempt: 1, offset: 0, eof: true, data: Buffer.from('INTRUDER\n') });
    intruder.publish(topics().nodeStdin(NODE, taskId), frame, { qos: 1 });
    await closed; // denied: the broker cut the connection (MQTT 3.1.1 has no negative PUBACK)

    writer.stdin.end('from the owner\n');
    expect(await exited, stderr).toBe(0);
    expect(stdout).toBe('from the owner\n');
    const audit = await cli(['tasks', 'show', taskId, '--json'], { env: admin });
    expect(JSON.parse(audit.stdout).state).toBe('succeeded');
    intruder.end(true);
  });
});
