/**
 * Finding an exec task's command before it is spawned, the way a shell does, so a command that
 * cannot run is told apart from one that ran and failed: not found → COMMAND_NOT_FOUND (a shell's
 * and `docker run`'s exit code 127), found but not executable or a directory →
 * COMMAND_NOT_INVOKABLE (126). Messages read like the Docker engine's
 * (`exec: "nosuchcmd": executable file not found in $PATH`).
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, resolve } from 'node:path';

/** The search path when the task's environment has no PATH (glibc's `execvp` default). */
export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Where the command is, or why it cannot be run. */
export type Resolution = { ok: true; path: string } | { ok: false; code: 'COMMAND_NOT_FOUND' | 'COMMAND_NOT_INVOKABLE'; message: string };

type Probe = 'executable' | 'not-executable' | 'directory' | 'missing';

function probe(file: string): Probe {
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch {
    return 'missing';
  }
  if (isDir) return 'directory';
  try {
    accessSync(file, constants.X_OK);
    return 'executable';
  } catch {
    return 'not-executable';
  }
}

/**
 * Resolves `command` (an exec task's argv[0]) as `execvp` would.
 * - With a `/` in it (absolute, or relative like `./x`, taken from `cwd`): that file.
 * - Otherwise each directory of `pathVar` in order (an empty entry is `cwd`, as POSIX says); the
 *   first executable file wins. A match that is not executable (and no executable one later) is
 *   COMMAND_NOT_INVOKABLE, as in sh; directories of that name are skipped.
 * @param pathVar the task's PATH (the environment the job gets); undefined → DEFAULT_PATH.
 * @param cwd the task's working directory; default the agent's.
 */
export function resolveCommand(command: string, pathVar: string | undefined, cwd: string = process.cwd()): Resolution {
  const notFound = (why: string): Resolution => ({ ok: false, code: 'COMMAND_NOT_FOUND', message: `exec: "${command}": ${why}` });
  const notInvokable = (why: string): Resolution => ({
    ok: false,
    code: 'COMMAND_NOT_INVOKABLE',
    message: `exec: "${command}": ${why}`,
  });
  if (command === '') return notFound('executable file not found in $PATH');
  if (command.includes('/')) {
    const file = isAbsolute(command) ? command : resolve(cwd, command);
    switch (probe(file)) {
      case 'executable':
        return { ok: true, path: file };
      case 'missing':
        return notFound(`stat ${command}: no such file or directory`);
      case 'directory':
        return notInvokable('is a directory');
      case 'not-executable':
        return notInvokable('permission denied');
    }
  }
  let denied = false;
  for (const dir of (pathVar ?? DEFAULT_PATH).split(delimiter)) {
    const file = resolve(cwd, dir, command);
    const found = probe(file);
    if (found === 'executable') return { ok: true, path: file };
    if (found === 'not-executable') denied = true;
  }
  return denied ? notInvokable('permission denied') : notFound('executable file not found in $PATH');
}
