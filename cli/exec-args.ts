/**
 * Parses the `exec …` part of `cutter run … exec [FLAGS] [--] CMD [ARGS…]` into an ExecSpec. The
 * flags are `docker run`'s for the same things: `-e NAME=VALUE` (or `-e NAME`: this shell's value),
 * `-w DIR`, `-u USER[:GROUP]`, `-m SIZE` and `--cpus N` (limits the node enforces with a cgroup, or
 * refuses the task). Flags end at `--` or at the first argument that is not one.
 */
import { CutterError } from '../shared/errors.js';
import type { ExecSpec } from '../shared/schemas/index.js';
import { parseBytes } from '../shared/units.js';

const VALUE_FLAGS: Record<string, 'env' | 'workdir' | 'user' | 'memory' | 'cpus'> = {
  '-e': 'env',
  '--env': 'env',
  '-w': 'workdir',
  '--workdir': 'workdir',
  '-u': 'user',
  '--user': 'user',
  '-m': 'memory',
  '--memory': 'memory',
  '--cpus': 'cpus',
};

/**
 * @param args what follows `exec` on the command line.
 * @throws CutterError INVALID_ARGUMENT naming the flag, or when no command is given.
 */
export function parseExecArgs(args: string[]): ExecSpec {
  const spec: ExecSpec = { kind: 'exec', argv: [], env: {} };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    let flag = arg;
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) [flag, inline] = [arg.slice(0, eq), arg.slice(eq + 1)];
    else if (!arg.startsWith('--') && arg.length > 2) [flag, inline] = [arg.slice(0, 2), arg.slice(2)];
    const name = VALUE_FLAGS[flag];
    if (!name)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `exec ${flag}: not an exec flag (supported: -e, -w, -u, -m, --cpus; put the command after --: exec -- CMD ${flag} …)`,
      );
    const value = inline ?? args[++i];
    if (value === undefined) throw new CutterError('INVALID_ARGUMENT', `exec ${flag} needs a value`);
    if (name === 'env') {
      const k = value.indexOf('=');
      if (k === 0) throw new CutterError('INVALID_ARGUMENT', `exec -e ${value}: missing variable name`);
      if (k > 0) spec.env[value.slice(0, k)] = value.slice(k + 1);
      else if (process.env[value] !== undefined) spec.env[value] = process.env[value]!; // like docker: this shell's value
    } else if (name === 'workdir') spec.cwd = value;
    else if (name === 'user') spec.user = value;
    else if (name === 'memory') {
      try {
        spec.memoryLimit = parseBytes(value);
      } catch (err) {
        throw new CutterError('INVALID_ARGUMENT', `exec ${flag} ${value}: ${(err as Error).message}`);
      }
    } else {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0)
        throw new CutterError('INVALID_ARGUMENT', `exec --cpus ${value}: expected a positive number of CPUs`);
      spec.cpus = n;
    }
  }
  spec.argv = args.slice(i);
  if (spec.argv.length === 0)
    throw new CutterError('INVALID_ARGUMENT', 'exec needs a command: cutter run exec [-e K=V] [-w DIR] [-u USER] -- CMD [ARGS…]');
  return spec;
}
