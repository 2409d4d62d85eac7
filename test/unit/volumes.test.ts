/** Volumes without a mesh: names and paths, the CLI's -v/--mount parsing, the agent's store and task resolution, and placement's `volume` check. */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveStorage } from '../../agent/volumes/resolve.js';
import { VolumeStore } from '../../agent/volumes/store.js';
import { applyVolumeFlags, parseDockerMount, parseDockerVolume, parseExecVolume } from '../../cli/volume-args.js';
import { storageRejection } from '../../controller/scheduler/feasibility.js';
import { formatRejection } from '../../shared/reasons.js';
import type { DockerSpec, ExecSpec, NodeStatus } from '../../shared/schemas/index.js';
import { normaliseVolumePath, volumeEnvName, volumeNameProblem } from '../../shared/volumes.js';

const root = mkdtempSync(join(tmpdir(), 'cutter-volumes-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const thrown = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('did not throw');
};

describe('names and paths', () => {
  it.each(['..', 'a..b', '.hidden', '-x', 'a/b', '', 'x'.repeat(65), 'a b'])('refuses the volume name %j', (n) => {
    expect(volumeNameProblem(n)).toMatch(/is not a volume name/);
  });
  it.each(['data', 'my_vol.v2', '_x', 'A-1'])('takes the volume name %j', (n) => expect(volumeNameProblem(n)).toBeNull());
  it('normalises paths inside a volume and refuses ..', () => {
    expect(normaliseVolumePath('/a//b/./c/')).toBe('a/b/c');
    expect(normaliseVolumePath('')).toBe('');
    expect(normaliseVolumePath('a/../b')).toBeNull();
    expect(normaliseVolumePath('a\0b')).toBeNull();
  });
  it('names the environment variable after the volume', () => expect(volumeEnvName('my-data.v2')).toBe('CUTTER_VOLUME_MY_DATA_V2'));
});

describe('-v and --mount', () => {
  it('parses a volume, a pinned volume, a host path and read-only', () => {
    expect(parseDockerVolume('data:/data')).toEqual({ mount: { type: 'volume', source: 'data', target: '/data', readOnly: false } });
    expect(parseDockerVolume('box:data:/data:ro')).toEqual({
      node: 'box',
      mount: { type: 'volume', source: 'data', target: '/data', readOnly: true },
    });
    expect(parseDockerVolume('/srv/x:/in').mount).toEqual({ type: 'bind', source: '/srv/x', target: '/in', readOnly: false });
    expect(parseDockerMount('type=volume,src=data,dst=/d,readonly').mount).toEqual({
      type: 'volume',
      source: 'data',
      target: '/d',
      readOnly: true,
    });
  });
  it('refuses what it cannot mount, saying what to write', () => {
    expect(thrown(() => parseDockerVolume('a..b:/data')).message).toMatch(/not a volume name/);
    expect(thrown(() => parseDockerVolume('data:rel')).message).toMatch(/expected VOLUME:\/data/);
    expect(thrown(() => parseDockerVolume('data:/d:z')).message).toMatch(/only ro or rw/);
    expect(thrown(() => parseDockerMount('type=tmpfs,dst=/t')).message).toMatch(/not supported/);
    expect(thrown(() => parseExecVolume('data:/data')).message).toMatch(/CUTTER_VOLUME_<NAME>/);
  });
  it('adds the flags to the task and returns the node they name', () => {
    const exec: ExecSpec = { kind: 'exec', argv: ['true'], env: {} };
    expect(applyVolumeFlags(exec, ['box:data', 'more'], [])).toBe('box');
    expect(exec.volumes).toEqual([{ name: 'data' }, { name: 'more' }]);
    const docker = { kind: 'docker', image: 'x', cmd: [], env: {}, labels: {} } as DockerSpec;
    expect(thrown(() => applyVolumeFlags(docker, ['box:data:/d'], [], 'other')).message).toMatch(/names node box/);
  });
});

describe('the node side', () => {
  const store = new VolumeStore(join(root, 'volumes'), 'n1');
  const config = { nodeId: 'n1', volumesDir: join(root, 'volumes'), allowHostPath: [join(root, 'allowed')] };
  mkdirSync(join(root, 'allowed', 'in'), { recursive: true });

  it('creates, lists, writes into, compares and removes a volume', async () => {
    // Before the first volume the directory does not exist: none, without an error.
    expect(store.names()).toEqual([]);
    const info = await store.create('data');
    expect(info).toMatchObject({ name: 'data', files: 0, bytes: 0, path: join(realpathSync(root), 'volumes', 'data') });
    const dest = await store.forWrite('data', 'deep/er/file.bin');
    writeFileSync(dest, 'abc');
    expect(store.names()).toEqual(['data']);
    expect((await store.list())[0]).toMatchObject({ files: 1, bytes: 3 });
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    const diff = await store.diff('data', [
      { path: 'deep/er/file.bin', size: 3, sha256: abc },
      { path: 'other', size: 1, sha256: abc },
    ]);
    expect(diff).toEqual({ need: [1], haveBytes: 3 });
    expect((await store.manifest('data', 'deep', 0, 10)).files).toEqual([{ path: 'er/file.bin', size: 3, sha256: abc }]);
    await store.create('gone');
    await store.remove('gone');
    expect(store.names()).toEqual(['data']);
  });

  it('refuses .., a link out of the volume and a missing volume', async () => {
    await expect(store.forWrite('data', '../x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    symlinkSync(root, join(root, 'volumes', 'data', 'out'));
    await expect(store.forWrite('data', 'out/x')).rejects.toThrow(/through a symbolic link/);
    await expect(store.forRead('data', 'out/allowed')).rejects.toThrow(/through a symbolic link/);
    await expect(store.info('nope')).rejects.toThrow(/cutter volume create n1:nope/);
  });

  it('resolves a docker task to bind mounts of absolute directories, and refuses a host path the policy lacks', () => {
    const spec = { kind: 'docker', image: 'x', cmd: [], env: {}, labels: {} } as DockerSpec;
    const ok = resolveStorage(
      {
        ...spec,
        mounts: [
          { type: 'volume', source: 'data', target: '/d' },
          { type: 'bind', source: join(root, 'allowed', 'in'), target: '/i' },
        ],
      },
      config,
    );
    expect('spec' in ok && ok.spec.kind === 'docker' && ok.spec.mounts).toEqual([
      { type: 'bind', source: join(realpathSync(root), 'volumes', 'data'), target: '/d' },
      { type: 'bind', source: join(realpathSync(root), 'allowed', 'in'), target: '/i' },
    ]);
    const refused = resolveStorage({ ...spec, mounts: [{ type: 'bind', source: '/etc', target: '/e' }] }, config);
    expect(refused).toMatchObject({ code: 'POLICY_DENIED' });
    expect('message' in refused && refused.message).toMatch(
      /host path \/etc is not allowed on node n1: its policy allows only .*--allow-host-path \/etc/,
    );
    expect(resolveStorage({ ...spec, mounts: [{ type: 'volume', source: 'typo', target: '/d' }] }, config)).toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('gives an exec task $CUTTER_VOLUME_<NAME> and a working directory inside the volume', () => {
    const r = resolveStorage({ kind: 'exec', argv: ['true'], env: {}, volumes: [{ name: 'data' }], cwd: 'data:deep/er' }, config);
    const dir = join(realpathSync(root), 'volumes', 'data');
    expect(r).toEqual({ spec: expect.objectContaining({ env: { CUTTER_VOLUME_DATA: dir }, cwd: join(dir, 'deep/er') }) });
    expect(resolveStorage({ kind: 'exec', argv: ['true'], env: {}, volumes: [{ name: 'data' }], cwd: 'data:../x' }, config)).toMatchObject({
      code: 'POLICY_DENIED',
    });
  });
});

describe('placement', () => {
  const status = (volumes?: string[], hostPaths?: string[]) => ({ volumes, hostPaths }) as NodeStatus;
  const req = (volumes?: string[], hostPaths?: string[]) => ({
    kind: 'docker' as const,
    requirements: { memory: 0, cpus: 0 },
    volumes,
    hostPaths,
  });
  it('rejects a node without the volume, or whose policy lacks the host path, with code volume', () => {
    expect(storageRejection(status(['data']), req(['data']))).toBeNull();
    const missing = storageRejection(status(['other']), req(['data']));
    expect(missing).toMatchObject({ code: 'volume' });
    expect(formatRejection({ node: 'n', ...missing! })).toBe('lacks what the task mounts (no volume data: cutter volume create NODE:data)');
    expect(storageRejection(status(undefined), req(['data']))?.detail).toMatch(/older agent/);
    expect(storageRejection(status([], ['/srv/data']), req(undefined, ['/srv/data/x']))).toBeNull();
    expect(storageRejection(status([], ['/srv/data']), req(undefined, ['/srv/database']))?.detail).toMatch(/host path \/srv\/database/);
  });
});
