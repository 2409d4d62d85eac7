/**
 * Finding an exec task's command before it is spawned (agent/executors/resolve-command.ts), on
 * real files in a temporary directory, and the exec executor's answer for a command that cannot
 * run: the codes and exit codes a shell (and `docker run`) would give.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecExecutor } from '../../agent/executors/exec.js';
import type { ExecutorContext } from '../../agent/executors/executor.js';
import { DEFAULT_PATH, resolveCommand } from '../../agent/executors/resolve-command.js';
import type { CutterError } from '../../shared/errors.js';

let dir: string;
let bin: string;
let other: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cutter-resolve-'));
  bin = join(dir, 'bin');
  other = join(dir, 'other');
  mkdirSync(bin);
  mkdirSync(other);
  writeFileSync(join(bin, 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  writeFileSync(join(bin, 'plain'), 'not a program\n', { mode: 0o644 });
  writeFileSync(join(other, 'plain'), '#!/bin/sh\necho other plain\n', { mode: 0o755 });
  writeFileSync(join(dir, 'local'), '#!/bin/sh\necho local\n', { mode: 0o755 });
  writeFileSync(join(dir, 'noexec'), 'data\n', { mode: 0o600 });
  mkdirSync(join(bin, 'adir'));
  mkdirSync(join(dir, 'sub'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveCommand', () => {
  it('finds a bare name on the PATH it is given, first match first', () => {
    expect(resolveCommand('tool', `${other}:${bin}`)).toEqual({ ok: true, path: join(bin, 'tool') });
    expect(resolveCommand('sh', '/usr/bin:/bin')).toMatchObject({ ok: true });
  });

  it('a name on no PATH directory is COMMAND_NOT_FOUND, worded like the Docker engine', () => {
    expect(resolveCommand('nosuchcmd', bin)).toEqual({
      ok: false,
      code: 'COMMAND_NOT_FOUND',
      message: 'exec: "nosuchcmd": executable file not found in $PATH',
    });
    // The task's PATH decides, not the agent's: `sh` is not in bin.
    expect(resolveCommand('sh', bin)).toMatchObject({ code: 'COMMAND_NOT_FOUND' });
    expect(resolveCommand('', bin)).toMatchObject({ code: 'COMMAND_NOT_FOUND' });
  });

  it('a match without execute permission is skipped for a later executable one, else COMMAND_NOT_INVOKABLE', () => {
    expect(resolveCommand('plain', `${bin}:${other}`)).toEqual({ ok: true, path: join(other, 'plain') });
    expect(resolveCommand('plain', bin)).toEqual({
      ok: false,
      code: 'COMMAND_NOT_INVOKABLE',
      message: 'exec: "plain": permission denied',
    });
  });

  it('a directory of that name on the PATH is not a command', () => {
    expect(resolveCommand('adir', bin)).toMatchObject({ code: 'COMMAND_NOT_FOUND' });
  });

  it('an absolute path is taken as it is: missing, a directory, not executable, or found', () => {
    expect(resolveCommand(join(dir, 'local'), '')).toEqual({ ok: true, path: join(dir, 'local') });
    expect(resolveCommand(join(dir, 'gone'), bin)).toEqual({
      ok: false,
      code: 'COMMAND_NOT_FOUND',
      message: `exec: "${join(dir, 'gone')}": stat ${join(dir, 'gone')}: no such file or directory`,
    });
    expect(resolveCommand('/etc', bin)).toEqual({ ok: false, code: 'COMMAND_NOT_INVOKABLE', message: 'exec: "/etc": is a directory' });
    expect(resolveCommand(join(dir, 'noexec'), bin)).toMatchObject({ code: 'COMMAND_NOT_INVOKABLE', message: /permission denied/ });
  });

  it('a relative path (./x, sub/../x) is taken from the working directory, not the PATH', () => {
    expect(resolveCommand('./local', bin, dir)).toEqual({ ok: true, path: join(dir, 'local') });
    expect(resolveCommand('sub/../local', bin, dir)).toEqual({ ok: true, path: join(dir, 'local') });
    expect(resolveCommand('./tool', bin, dir)).toMatchObject({ code: 'COMMAND_NOT_FOUND' });
    expect(resolveCommand('./noexec', bin, dir)).toMatchObject({ code: 'COMMAND_NOT_INVOKABLE' });
  });

  it('an empty PATH entry is the working directory; no PATH at all searches the default', () => {
    expect(resolveCommand('local', `${bin}:`, dir)).toEqual({ ok: true, path: join(dir, 'local') });
    expect(DEFAULT_PATH.split(':')).toContain('/bin');
    expect(resolveCommand('sh', undefined)).toMatchObject({ ok: true });
  });
});

describe('the exec executor and a command that cannot run', () => {
  const ctx: ExecutorContext = {
    taskId: 't',
    attempt: 1,
    node: 'n',
    memory: 0,
    output: () => true,
    progress: () => undefined,
    started: () => undefined,
  };
  const failure = (argv: string[], env: Record<string, string> = {}, cwd?: string) =>
    new ExecExecutor().start({ kind: 'exec', argv, env, ...(cwd ? { cwd } : {}) }, ctx).done.then(
      () => null,
      (err: CutterError) => ({ code: err.code, message: err.message }),
    );

  it('fails COMMAND_NOT_FOUND / COMMAND_NOT_INVOKABLE without starting anything', async () => {
    expect(await failure(['nosuchcmd'])).toEqual({
      code: 'COMMAND_NOT_FOUND',
      message: 'exec: "nosuchcmd": executable file not found in $PATH',
    });
    expect(await failure(['/etc/passwd'])).toEqual({ code: 'COMMAND_NOT_INVOKABLE', message: 'exec: "/etc/passwd": permission denied' });
    // The task's own PATH is searched.
    expect(await failure(['tool'], { PATH: bin })).toBeNull();
    expect(await failure(['tool'])).toMatchObject({ code: 'COMMAND_NOT_FOUND' });
  });

  it('a working directory that does not exist is START_FAILED, not a missing command', async () => {
    expect(await failure(['true'], {}, join(dir, 'nowhere'))).toMatchObject({ code: 'START_FAILED', message: /working directory/ });
  });

  it('a command killed by SIGKILL ends with exit code 137', async () => {
    const out = await new ExecExecutor().start({ kind: 'exec', argv: ['sh', '-c', 'kill -9 $$'], env: {} }, ctx).done;
    expect(out.exitCode).toBe(137);
  });
});
