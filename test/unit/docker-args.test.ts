import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseDockerRun } from '../../cli/docker-args.js';
import { CutterError } from '../../shared/errors.js';
import { DockerSpecSchema } from '../../shared/schemas/index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Splits a command line on spaces (tests keep their arguments free of spaces unless given as arrays). */
const argv = (line: string) => line.split(' ');

/** The CutterError `fn` throws (fails the test when it throws nothing or something else). */
function thrown(fn: () => unknown): CutterError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CutterError);
    return err as CutterError;
  }
  throw new Error('expected a CutterError, nothing was thrown');
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('parseDockerRun: accepted forms', () => {
  it('parses memory, cpus, env (values may contain =), image and command', () => {
    const r = parseDockerRun(argv('run -m 24g --cpus 2 -e K=V -e K2=a=b ollama/ollama:latest serve --verbose now'));
    expect(r.detach).toBe(false);
    expect(r.spec).toEqual({
      kind: 'docker',
      image: 'ollama/ollama:latest',
      cmd: ['serve', '--verbose', 'now'],
      env: { K: 'V', K2: 'a=b' },
      labels: {},
      memoryLimit: 24 * GiB,
      cpus: 2,
    });
  });

  it('produces a spec DockerSpecSchema accepts', () => {
    const r = parseDockerRun(argv('run -m 1g --cpus 0.5 -e A=1 -w /w -u 1000 -l a=b --entrypoint /bin/sh alpine -c true'));
    expect(DockerSpecSchema.safeParse(r.spec).success).toBe(true);
  });

  it('accepts --memory=512m', () => {
    expect(parseDockerRun(argv('run --memory=512m alpine')).spec.memoryLimit).toBe(512 * MiB);
  });

  it('accepts --memory 512m (separate value)', () => {
    expect(parseDockerRun(argv('run --memory 512m alpine')).spec.memoryLimit).toBe(512 * MiB);
  });

  it('accepts -m512m (value glued to the short flag)', () => {
    expect(parseDockerRun(argv('run -m512m alpine')).spec.memoryLimit).toBe(512 * MiB);
  });

  it('accepts fractional sizes and cpus', () => {
    const r = parseDockerRun(argv('run -m 1.5g --cpus=0.25 alpine'));
    expect(r.spec.memoryLimit).toBe(1.5 * GiB);
    expect(r.spec.cpus).toBe(0.25);
  });

  it('-d and --detach set detach', () => {
    expect(parseDockerRun(argv('run -d alpine')).detach).toBe(true);
    expect(parseDockerRun(argv('run --detach alpine')).detach).toBe(true);
    expect(parseDockerRun(argv('run alpine')).detach).toBe(false);
  });

  it('accepts and ignores --rm and --name', () => {
    const r = parseDockerRun(argv('run --rm --name web alpine echo hi'));
    expect(r.spec).toEqual({ kind: 'docker', image: 'alpine', cmd: ['echo', 'hi'], env: {}, labels: {} });
    expect(r.detach).toBe(false);
  });

  it('-i and --interactive attach stdin; short flags run together (-di) are split as docker does', () => {
    expect(parseDockerRun(argv('run -i alpine cat')).spec.stdin).toBe(true);
    expect(parseDockerRun(argv('run --interactive alpine cat')).spec.stdin).toBe(true);
    expect(parseDockerRun(argv('run alpine cat')).spec.stdin).toBeUndefined();
    const r = parseDockerRun(argv('run -di alpine cat -n'));
    expect([r.detach, r.spec.stdin, r.spec.cmd]).toEqual([true, true, ['cat', '-n']]);
    // A command's own flags after the image are left alone.
    expect(parseDockerRun(argv('run alpine ls -la')).spec.cmd).toEqual(['ls', '-la']);
  });

  it('parses -w, -u, --entrypoint, -l and their long and = forms', () => {
    const r = parseDockerRun(argv('run -w /app --user=1000:1000 --entrypoint /bin/sh -l team=ml --label flag --workdir=/srv alpine'));
    expect(r.spec.workdir).toBe('/srv'); // the last one wins, as in docker
    expect(r.spec.user).toBe('1000:1000');
    expect(r.spec.entrypoint).toEqual(['/bin/sh']);
    expect(r.spec.labels).toEqual({ team: 'ml', flag: '' });
  });

  it('accepts --env=K=V and -eK=V', () => {
    expect(parseDockerRun(argv('run --env=K=V -eX=1 alpine')).spec.env).toEqual({ K: 'V', X: '1' });
  });

  it('accepts an empty env value', () => {
    expect(parseDockerRun(argv('run -e EMPTY= alpine')).spec.env).toEqual({ EMPTY: '' });
  });

  it("-e NAME without a value passes the caller's variable, or nothing when unset", () => {
    vi.stubEnv('CUTTER_TEST_PASSED', 'from-caller');
    delete process.env.CUTTER_TEST_UNSET;
    const r = parseDockerRun(argv('run -e CUTTER_TEST_PASSED -e CUTTER_TEST_UNSET alpine'));
    expect(r.spec.env).toEqual({ CUTTER_TEST_PASSED: 'from-caller' });
  });

  it('-- ends the flags: what follows is the image', () => {
    const r = parseDockerRun(argv('run -m 1g -- alpine -m 2g'));
    expect(r.spec.image).toBe('alpine');
    expect(r.spec.cmd).toEqual(['-m', '2g']);
    expect(r.spec.memoryLimit).toBe(GiB);
  });

  it('keeps flags after the image as the command', () => {
    const r = parseDockerRun(['run', '--rm', 'alpine', 'sh', '-c', 'echo "a b" && ls -l', '-m', '--privileged', '-v']);
    expect(r.spec.image).toBe('alpine');
    expect(r.spec.cmd).toEqual(['sh', '-c', 'echo "a b" && ls -l', '-m', '--privileged', '-v']);
    expect(r.spec.memoryLimit).toBeUndefined();
  });

  it('an image without a command leaves cmd empty (the image CMD runs)', () => {
    expect(parseDockerRun(argv('run alpine')).spec.cmd).toEqual([]);
  });
});

describe('parseDockerRun: -p forwards', () => {
  it('turns -p SERVER:CONTAINER, -p PORT and --publish=… into spec.ports', () => {
    expect(parseDockerRun(['run', '-p', '8080:80', '--publish=9000:9000/tcp', '-p', '53', 'alpine']).spec.ports).toEqual([
      { server: 8080, container: 80 },
      { server: 9000, container: 9000 },
      { server: 53, container: 53 },
    ]);
    expect(parseDockerRun(['run', 'alpine']).spec.ports).toBeUndefined();
  });
});

describe('parseDockerRun: refused and invalid', () => {
  it.each([
    ['-p', ['-p', '1.2.3.4:8080:80']],
    ['--publish', ['--publish=8080:80/udp']],
    ['-p', ['-p', '8080-8090:80']],
    ['-p', ['-p', '0:80']],
    ['--privileged', ['--privileged']],
    ['--privileged', ['--privileged=true']],
    ['--network', ['--network', 'host']],
    ['--network', ['--network=host']],
    ['--net', ['--net', 'host']],
    ['--pid', ['--pid=host']],
  ])('refuses %s (%j) with INVALID_ARGUMENT naming the flag', (flag, flags) => {
    const err = thrown(() => parseDockerRun(['run', ...flags, 'alpine']));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(`docker run ${flag}:`);
  });

  // Issue 16: -v and --mount name the node's volumes; a host path is the node's policy to allow (agent/volumes/resolve.ts).
  it('explains a volume flag it cannot take', () => {
    expect(thrown(() => parseDockerRun(argv('run -v ./a:/b alpine'))).message).toMatch(/host paths must be absolute/);
    expect(thrown(() => parseDockerRun(argv('run -v /data alpine'))).message).toMatch(/anonymous volumes are not supported/);
  });

  it('takes a short volume flag with a glued value too', () => {
    expect(parseDockerRun(argv('run -v/data:/data alpine')).spec.mounts).toEqual([
      { type: 'bind', source: '/data', target: '/data', readOnly: false },
    ]);
  });

  it('rejects an unknown flag, naming it and listing the supported ones', () => {
    const err = thrown(() => parseDockerRun(argv('run --shm-size 1g alpine')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('--shm-size');
    expect(err.message).toContain('supported: -m');
  });

  it('splits combined short flags only when each is known: -it is -i -t, -vi names -v, -ix is refused whole', () => {
    const it_ = parseDockerRun(argv('run -it alpine sh')).spec;
    expect([it_.stdin, it_.tty, it_.cmd]).toEqual([true, { rows: 0, cols: 0 }, ['sh']]);
    expect(parseDockerRun(argv('run --tty alpine sh')).spec.tty).toEqual({ rows: 0, cols: 0 });
    expect(thrown(() => parseDockerRun(argv('run -vi alpine sh'))).message).toContain('docker run -v:');
    const ix = thrown(() => parseDockerRun(argv('run -ix alpine sh')));
    expect(ix.code).toBe('INVALID_ARGUMENT');
    expect(ix.message).toContain('-ix');
  });

  it('requires an image', () => {
    for (const args of [['run'], ['run', '--rm', '-d'], ['run', '-m', '1g', '--']]) {
      const err = thrown(() => parseDockerRun(args));
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain('IMAGE');
    }
  });

  it.each([['-m'], ['--memory'], ['--cpus'], ['-e'], ['-w'], ['--entrypoint']])('%s at the end needs a value', (flag) => {
    const err = thrown(() => parseDockerRun(['run', flag]));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toBe(`docker run ${flag} needs a value`);
  });

  it('must start with run', () => {
    const err = thrown(() => parseDockerRun(argv('ps -a')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('"docker ps"');
    expect(thrown(() => parseDockerRun([])).code).toBe('INVALID_ARGUMENT');
    expect(thrown(() => parseDockerRun(argv('alpine run'))).code).toBe('INVALID_ARGUMENT');
  });

  it.each(['0', '-1', 'two', 'Infinity', ''])('rejects --cpus %j', (value) => {
    const err = thrown(() => parseDockerRun(['run', `--cpus=${value}`, 'alpine']));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('--cpus');
  });

  it('rejects -e with an empty variable name', () => {
    const err = thrown(() => parseDockerRun(argv('run -e =value alpine')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('missing variable name');
  });

  it('rejects a memory value that is not a size, naming the flag and the value', () => {
    const err = thrown(() => parseDockerRun(argv('run -m lots alpine')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('docker run -m lots');
    expect(err.message).toContain('"lots"');
  });
});
