/**
 * `cutter cp` over real processes: a secured server, an agent with an agent token confined to one
 * directory, and the CLI with the admin token. 200 MB both ways with the SHA-256 checked, each
 * direction frozen mid-transfer (SIGSTOP until the broker cuts the agent, then SIGCONT) and shown
 * to resume from where it was, not from 0; paths outside the allowlist, in a denied directory,
 * with `..` or through a symlink refused; every transfer in the server's audit log.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeFrame } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { CUTTER, Daemon, ISOLATED_ENV, cli, describeEmbeddedBroker, eventually, startAgent, startServer, tempDir } from '../harness.js';

const MB = 1_000_000;
type Creds = { username: string; password: string };
type CpResult = { bytes: number; sha256: string; resumedFrom: number[]; startOffset: number; wireBytes: number; remotePath: string };

const sha = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

/** A file of `bytes` pseudo-random bytes (dd from /dev/urandom: fast, and not compressible). */
function randomFile(path: string, bytes: number): void {
  const r = spawnSync('head', ['-c', String(bytes), '/dev/urandom'], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: bytes + 1 });
  writeFileSync(path, r.stdout);
}

/** Waits until `path` holds more than `bytes`. */
const grows = (path: string, bytes: number) => eventually(() => existsSync(path) && statSync(path).size > bytes, 60_000, 20);

/** Freezes the agent until the broker cuts it (keepalive 2 s × 1.5), then lets it go on. */
async function freeze(agent: Daemon): Promise<void> {
  agent.child.kill('SIGSTOP');
  await new Promise((r) => setTimeout(r, 6_000));
  agent.child.kill('SIGCONT');
}

// A secured server: the transfer ACL, the tokens and the server's audit of who asked are the embedded broker's.
describeEmbeddedBroker('cutter cp', () => {
  let server: Daemon;
  let agent: Daemon;
  let url: string;
  let dataDir: string;
  let admin: NodeJS.ProcessEnv;
  let agentEnv: NodeJS.ProcessEnv;
  const agentArgs = () => ['--files-allow', allowed, '--files-deny', join(allowed, 'secret'), '--files-max-size', '300m'];
  const allowed = tempDir('cutter-files-allowed-');
  const outside = tempDir('cutter-files-outside-');
  const local = tempDir('cutter-files-local-');
  const as = (args: string[], timeoutMs = 120_000) => cli(args, { broker: url, env: admin, timeoutMs });
  /** A CLI command running in the background with the admin token. */
  const background = (args: string[]) =>
    new Daemon(
      spawn(process.execPath, [CUTTER, ...args], {
        env: { ...ISOLATED_ENV, CUTTER_BROKER: url, ...admin },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      `cli ${args[0]}`,
    );

  beforeAll(async () => {
    ({ daemon: server, url, dataDir } = await startServer([], { secure: true }));
    admin = { CUTTER_TOKEN_FILE: join(dataDir, 'admin.json') };
    const r = await as(['token', 'create', '--role', 'agent', '--node', 'store', '--json']);
    const creds = JSON.parse(r.stdout) as Creds;
    mkdirSync(join(allowed, 'secret'));
    agentEnv = { CUTTER_USERNAME: creds.username, CUTTER_PASSWORD: creds.password };
    agent = await startAgent(url, 'store', agentArgs(), agentEnv);
    await agent.waitForMsg('file transfer enabled');
    randomFile(join(local, 'big.bin'), 200 * MB);
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    // About 1 GB of test files: do not leave them to fill a CI disk.
    for (const d of [allowed, outside, local]) rmSync(d, { recursive: true, force: true });
  });

  it('copies 200 MB to the node, resumes after the agent is cut off mid-transfer, and the SHA-256 matches', async () => {
    const cp = background(['cp', join(local, 'big.bin'), 'store:big.bin', '--json']);
    await grows(join(allowed, 'big.bin.cutter-part'), 40 * MB);
    await freeze(agent);
    expect(await cp.exited, cp.stderr).toBe(0);
    const result = JSON.parse(cp.stdout) as CpResult;
    expect(result.remotePath).toBe(join(allowed, 'big.bin'));
    expect(result.bytes).toBe(200 * MB);
    // It resumed from where the node was, not from 0, and sent little more than the file once.
    expect(result.resumedFrom.length).toBeGreaterThan(0);
    expect(result.resumedFrom[0]).toBeGreaterThan(40 * MB);
    expect(result.wireBytes).toBeLessThan(200 * MB + result.resumedFrom[0]);
    await agent.waitForMsg('file transfer reopened');
    const digest = await sha(join(local, 'big.bin'));
    expect(result.sha256).toBe(digest);
    expect(await sha(join(allowed, 'big.bin'))).toBe(digest);
    expect(existsSync(join(allowed, 'big.bin.cutter-part'))).toBe(false);
  }, 180_000);

  it('copies 200 MB back from the node, resumes after a cut, and the SHA-256 matches', async () => {
    const dest = join(local, 'back.bin');
    const cp = background(['cp', 'store:big.bin', dest, '--json']);
    await grows(`${dest}.cutter-part`, 40 * MB);
    await freeze(agent);
    expect(await cp.exited, cp.stderr).toBe(0);
    const result = JSON.parse(cp.stdout) as CpResult;
    expect(result.resumedFrom.length).toBeGreaterThan(0);
    expect(result.resumedFrom[0]).toBeGreaterThan(40 * MB);
    expect(await sha(dest)).toBe(await sha(join(local, 'big.bin')));
    expect(result.sha256).toBe(await sha(dest));
  }, 180_000);

  it('resumes from the part file the node kept after its agent was killed and restarted', async () => {
    const cp = background(['cp', join(local, 'big.bin'), 'store:again.bin', '--json']);
    await grows(join(allowed, 'again.bin.cutter-part'), 40 * MB);
    await agent.stop('SIGKILL');
    agent = await startAgent(url, 'store', agentArgs(), agentEnv);
    expect(await cp.exited, cp.stderr).toBe(0);
    const result = JSON.parse(cp.stdout) as CpResult;
    expect(result.resumedFrom[0]).toBeGreaterThan(40 * MB);
    const resumed = await agent.waitForMsg('file transfer resumed from a partial file');
    expect(resumed.offset).toBe(result.resumedFrom[0]);
    expect(await sha(join(allowed, 'again.bin'))).toBe(await sha(join(local, 'big.bin')));
  }, 180_000);

  it('refuses paths outside the allowlist, in a denied directory, with .., and over the size limit', async () => {
    writeFileSync(join(local, 'small.txt'), 'hello\n');
    writeFileSync(join(outside, 'secret.txt'), 'not yours\n');
    const cases: [string[], RegExp][] = [
      [[join(local, 'small.txt'), `store:${join(outside, 'x.txt')}`], /outside the allowed directories/],
      [[`store:${join(outside, 'secret.txt')}`, join(local, 'x.txt')], /outside the allowed directories/],
      [[join(local, 'small.txt'), 'store:secret/x.txt'], /in the denied directory/],
      [[join(local, 'small.txt'), `store:${allowed}/../x.txt`], /contains "\.\."/],
    ];
    for (const [args, message] of cases) {
      const r = await as(['cp', ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(join(outside, 'x.txt'))).toBe(false);
    randomFile(join(local, 'huge.bin'), 301 * 1024 * 1024);
    const big = await as(['cp', join(local, 'huge.bin'), 'store:huge.bin', '--json']);
    expect(big.code).toBe(1);
    expect((JSON.parse(big.stdout) as { error: { message: string } }).error.message).toMatch(/over this node's limit/);
  }, 60_000);

  it('refuses a symlink that escapes the allowed directory, for reading and for writing', async () => {
    symlinkSync(outside, join(allowed, 'escape-dir'));
    symlinkSync(join(outside, 'secret.txt'), join(allowed, 'escape-file'));
    const read = await as(['cp', 'store:escape-file', join(local, 'stolen.txt')]);
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(/outside the allowed directories/);
    const readDir = await as(['cp', 'store:escape-dir/secret.txt', join(local, 'stolen.txt')]);
    expect(readDir.code).toBe(1);
    const write = await as(['cp', join(local, 'small.txt'), 'store:escape-dir/planted.txt']);
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/outside the allowed directories/);
    // Writing onto a link that points outside must not write through it either.
    const over = await as(['cp', join(local, 'small.txt'), 'store:escape-file']);
    expect(over.code).toBe(1);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('not yours\n');
    expect(existsSync(join(outside, 'planted.txt'))).toBe(false);
    expect(existsSync(join(local, 'stolen.txt'))).toBe(false);
  }, 60_000);

  it('drops malformed control messages and chunk frames, logging them, and keeps serving', async () => {
    const creds = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as Creds;
    const raw = await mqtt.connectAsync(url, {
      clientId: 'cutter-cli-fuzz',
      username: creds.username,
      password: creds.password,
      reconnectPeriod: 0,
    });
    const t = topics();
    await raw.publishAsync(t.filesIn('store', 'cutter-cli-fuzz'), 'not json', { qos: 1 });
    await raw.publishAsync(
      t.filesIn('store', 'cutter-cli-fuzz'),
      JSON.stringify({ v: 1, type: 'put', xfer: 'short', path: '/x', size: -1, sha256: 'no' }),
      { qos: 1 },
    );
    await raw.publishAsync(t.filesInData('store', 'cutter-cli-fuzz'), Buffer.from([9, 9, 9]), { qos: 0 });
    await raw.publishAsync(t.filesInData('store', 'cutter-cli-fuzz'), encodeFrame('ab'.repeat(16), 0, Buffer.from('stray')), { qos: 0 });
    await agent.waitForLog((l) => l.msg === 'dropped invalid chunk frame');
    // Every drop is logged at debug; at warn (this agent's level) the first of 10 s at once, the rest in one summary line.
    await agent.waitForLog((l) => String(l.msg).startsWith('dropped invalid input') && String(l.topic).includes('/files/in/'));
    await raw.endAsync();
    writeFileSync(join(local, 'after.txt'), 'still works\n');
    const r = await as(['cp', join(local, 'after.txt'), 'store:after.txt']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(allowed, 'after.txt'), 'utf8')).toBe('still works\n');
  });

  it('records every transfer in the audit log with who asked', async () => {
    const records = await eventually(() => {
      const lines = readFileSync(join(dataDir, 'audit.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string>);
      const files = lines.filter((l) => l.action?.startsWith('file.'));
      return files.some((l) => l.outcome === 'denied') && files.some((l) => l.action === 'file.put' && l.outcome === 'ok') ? files : null;
    });
    expect(records.every((r) => r.who === 'admin:local' && r.node === 'store')).toBe(true);
    expect(records.find((r) => r.action === 'file.put' && r.outcome === 'ok')?.detail).toContain(join(allowed, 'big.bin'));
    expect(records.some((r) => r.action === 'file.get' && r.outcome === 'ok')).toBe(true);
  });
});
