/**
 * `cutter cp -r A:VOL/DIR B:VOL/DIR`: a directory goes from one node's volume into another's agent
 * to agent. The bytes' path is asserted from the sending agent's own log: every file it sent went
 * to client `cutter-agent-<B>` (B's agent), none to the CLI's client; B's volume then holds files
 * equal to the originals; a second copy after one file changed moves that file only. No Docker needed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, cli, startAgent, startServer, tempDir } from '../harness.js';

const FILES = 12;
const FILE_BYTES = 200_000;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const name = (i: number) => `f-${String(i).padStart(2, '0')}.bin`;

describe('node-to-node copies', () => {
  let server: Daemon;
  let url: string;
  let a: Daemon;
  let b: Daemon;
  const volA = tempDir('cutter-n2n-a-');
  const volB = tempDir('cutter-n2n-b-');
  const local = tempDir('cutter-n2n-local-');
  const run = (args: string[], timeoutMs = 120_000) => cli(args, { broker: url, timeoutMs });
  /** `file send started` lines of node A's agent since `from`: to whom it sent which file. */
  const sends = (from: number) => a.lines.slice(from).filter((l) => l.msg === 'file send started');

  beforeAll(async () => {
    ({ daemon: server, url } = await startServer());
    [a, b] = await Promise.all([startAgent(url, 'n2na', ['--volumes-dir', volA]), startAgent(url, 'n2nb', ['--volumes-dir', volB])]);
    mkdirSync(join(local, 'set', 'sub'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(local, 'set', i % 3 ? '' : 'sub', name(i)), randomBytes(FILE_BYTES));
    for (const n of ['n2na:data', 'n2nb:data']) expect((await run(['volume', 'create', n])).code).toBe(0);
    const up = await run(['cp', '-r', join(local, 'set'), 'n2na:data/set']);
    expect(up.code, up.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await server?.stop();
    for (const d of [volA, volB, local]) rmSync(d, { recursive: true, force: true });
  });

  it('copies a volume directory from node A to node B without the bytes passing through the client', async () => {
    const mark = a.lines.length;
    const r = await run(['cp', '-r', 'n2na:data/set', 'n2nb:data/copy', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      direction: 'node-to-node',
      files: FILES,
      filesSent: FILES,
      bytesSent: FILES * FILE_BYTES,
    });
    const sent = sends(mark);
    expect(sent).toHaveLength(FILES);
    for (const l of sent) expect(l.client).toBe('cutter-agent-n2nb');
    for (let i = 0; i < FILES; i++) {
      const rel = join(i % 3 ? '' : 'sub', name(i));
      expect(sha(join(volB, 'data', 'copy', rel)), rel).toBe(sha(join(local, 'set', rel)));
    }
  }, 180_000);

  it('moves only the changed file the second time', async () => {
    writeFileSync(join(local, 'set', name(4)), randomBytes(FILE_BYTES + 9));
    expect((await run(['cp', '-r', join(local, 'set'), 'n2na:data/set'])).code).toBe(0);
    const mark = a.lines.length;
    const r = await run(['cp', '-r', 'n2na:data/set', 'n2nb:data/copy', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: FILES, filesSent: 1, filesSkipped: FILES - 1, bytesSent: FILE_BYTES + 9 });
    expect(sends(mark).map((l) => [l.client, String(l.path).endsWith(name(4))])).toEqual([['cutter-agent-n2nb', true]]);
    expect(sha(join(volB, 'data', 'copy', name(4)))).toBe(sha(join(local, 'set', name(4))));
  }, 180_000);

  it('refuses a node-to-node copy without -r and onto the same node', async () => {
    const flat = await run(['cp', 'n2na:data/set', 'n2nb:data/copy']);
    expect(flat.code).not.toBe(0);
    expect(flat.stderr).toContain('cutter cp -r A:VOLUME/DIR B:VOLUME/DIR');
    const same = await run(['cp', '-r', 'n2na:data/set', 'n2na:data/other']);
    expect(same.stderr).toContain('same node');
  }, 60_000);
});
