/**
 * The disk fills, the server stays (issue 14): `cutter server` with its data dir on a small tmpfs
 * filled to the last byte by a filler file. The server stays up, bad and good logins work, a
 * submit is refused STORAGE_UNAVAILABLE naming the dir and its free bytes, listings answer; an exec
 * task started before the fill finishes while the disk is full, and after a SIGKILL of the server,
 * the filler deleted and a restart, it is `succeeded` and ran once (its marker file has one line);
 * new work is accepted again within seconds.
 *
 * Needs root and `mount` (tmpfs); skipped otherwise. The tmpfs is always unmounted in afterAll.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type Daemon, describeEmbeddedBroker, eventually, startAgent, startServer, tempDir } from '../harness.js';
import { onPath } from '../services.js';

/** Like test/services.ts `needs()`: root and mount, or a skip tag that says so. */
const mountable = process.getuid?.() === 0 && onPath('mount') !== null && onPath('umount') !== null;
const tag = mountable ? '' : ' [skipped: needs root and mount — run the tests as root with util-linux]';

type Creds = { username: string; password: string };

/** Writes zeros until the file system says ENOSPC, then single bytes until it says so again: full to the last byte. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (const size of [64 * 1024, 4096, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

// Tokens and logins are the embedded broker's: on Mosquitto this runs only where they are (describeEmbeddedBroker).
(mountable ? describeEmbeddedBroker : describe.skip)(`a full data dir${tag}`, () => {
  const mnt = tempDir('cutter-disk-full-');
  const work = tempDir('cutter-disk-full-work-');
  const marker = join(work, 'marker');
  const gate = join(work, 'gate');
  const filler = join(mnt, 'filler');
  const env = { CUTTER_MIN_FREE_BYTES: '128k' };
  let server: Daemon;
  let agent: Daemon | undefined;
  let url: string;
  let port: number;
  let admin: NodeJS.ProcessEnv;
  let agentCreds: Creds;

  beforeAll(async () => {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
    mkdirSync(join(mnt, 'data'));
    ({ daemon: server, url, port } = await startServer([], { secure: true, dataDir: join(mnt, 'data'), env }));
    admin = { CUTTER_TOKEN_FILE: join(mnt, 'data', 'admin.json') };
    const t = await cli(['token', 'create', '--role', 'agent', '--node', 'filler-node', '--json'], { broker: url, env: admin });
    expect(t.code, t.stderr).toBe(0);
    agentCreds = JSON.parse(t.stdout) as Creds;
    agent = await startAgent(url, 'filler-node', ['--allow-exec', '--lost-after', '120s'], {
      CUTTER_USERNAME: agentCreds.username,
      CUTTER_PASSWORD: agentCreds.password,
    });
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await server?.stop('SIGKILL');
    const u = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  const login = (username: string, password: string) =>
    mqtt
      .connectAsync(url, { clientId: `disk-full-${Math.random().toString(16).slice(2, 8)}`, username, password, reconnectPeriod: 0 })
      .then(
        async (c) => {
          await c.endAsync();
          return 0;
        },
        (err: { code?: number }) => err.code ?? -1,
      );

  it('stays up, refuses new work with a clear error, and runs a task that finished meanwhile exactly once', async () => {
    const run = await cli(
      ['run', '-d', '--node', 'filler-node', 'exec', '--', 'sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.1; done; echo ran >> ${marker}`],
      { broker: url, env: admin },
    );
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    await eventually(async () => {
      const s = await cli(['tasks', 'show', id, '--json'], { broker: url, env: admin });
      return (JSON.parse(s.stdout) as { state: string }).state === 'running';
    }, 20_000);

    fill(filler);

    // A failed login writes an audit line: the full disk does not end the server.
    expect(await login(agentCreds.username, 'wrong')).toBe(4);
    expect(await login('admin:local', JSON.parse(readFileSync(admin.CUTTER_TOKEN_FILE!, 'utf8')).password)).toBe(0);
    expect(server.child.exitCode).toBeNull();

    const refused = await eventually(async () => {
      const r = await cli(['run', '-d', '--json', '--node', 'filler-node', 'exec', '--', 'true'], { broker: url, env: admin });
      return r.code !== 0 && r.stdout.includes('STORAGE_UNAVAILABLE') ? r : null;
    }, 20_000);
    const error = (JSON.parse(refused!.stdout) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('STORAGE_UNAVAILABLE');
    expect(error.message).toContain(`data dir ${join(mnt, 'data')}`);
    expect(error.message).toMatch(/\d+(\.\d)? (B|KiB) free/);
    const list = await cli(['tasks', 'list', '--json'], { broker: url, env: admin });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(id);

    // The task finishes while nothing can be stored.
    writeFileSync(gate, '');
    await eventually(() => existsSync(marker) && readFileSync(marker, 'utf8') === 'ran\n', 20_000);
    await agent!.waitForLog((l) => l.msg === 'task finished' && l.taskId === id);
    // Its result could not be committed, so it was not acknowledged: the agent still holds it.
    await server.waitForLog((l) => String(l.msg).startsWith('state commit failed'), 10_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(server.child.exitCode).toBeNull();

    await server.stop('SIGKILL');
    unlinkSync(filler);
    ({ daemon: server } = await startServer([], { secure: true, dataDir: join(mnt, 'data'), port, env }));

    const done = await eventually(async () => {
      const s = await cli(['tasks', 'show', id, '--json'], { broker: url, env: admin });
      const state = s.code === 0 ? (JSON.parse(s.stdout) as { state: string; attempt: number }) : null;
      return state && state.state !== 'running' && state.state !== 'unknown' ? state : null;
    }, 30_000);
    expect(done).toMatchObject({ state: 'succeeded', attempt: 1 });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(readFileSync(marker, 'utf8')).toBe('ran\n');

    const again = await eventually(async () => {
      const r = await cli(['run', '-d', '--node', 'filler-node', 'exec', '--', 'true'], { broker: url, env: admin });
      return r.code === 0 ? r : null;
    }, 5_000);
    expect(again!.stdout.trim()).toMatch(/^[0-9a-f]+$/);
  });
});
