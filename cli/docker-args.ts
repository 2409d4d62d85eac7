/**
 * Parses the `docker run …` part of `cutter run … docker run [FLAGS] IMAGE [CMD…]` into a
 * DockerSpec, accepting the docker flags a user types for the work cutter does. Flags that would
 * change the node itself (host network, privileged) are refused with a clear message
 * rather than silently ignored. `-p SERVER:CONTAINER` forwards a port through the server; `-v`
 * and `--mount` name the node's volumes (or host paths its policy allows: cli/volume-args.ts).
 */
import { CutterError } from '../shared/errors.js';
import type { DockerSpec, GpuRequirement } from '../shared/schemas/index.js';
import { parseBytes } from '../shared/units.js';
import { parseGpus } from './gpu-args.js';
import { checkLogging, parseLogFlag } from './log-args.js';
import { parseDockerMount, parseDockerVolume } from './volume-args.js';

export interface ParsedDockerRun {
  spec: DockerSpec;
  /** `-d`/`--detach` was given. */
  detach: boolean;
  /** `--platform os/arch[/variant]`, as given (a placement requirement, cli/placement-flags.ts). */
  platform?: string;
  /** `--gpus` (./gpu-args.ts): GPUs the task needs; absent: none. */
  gpus?: Omit<GpuRequirement, 'memory'>;
  /** The node a `-v NODE:VOLUME:/data` names (the task must run there). */
  node?: string;
}

/** Flags that take a value, by every spelling. */
const VALUE_FLAGS: Record<string, string> = {
  '-m': 'memory',
  '--memory': 'memory',
  '--cpus': 'cpus',
  '-e': 'env',
  '--env': 'env',
  '-w': 'workdir',
  '--workdir': 'workdir',
  '-u': 'user',
  '--user': 'user',
  '--entrypoint': 'entrypoint',
  '-l': 'label',
  '--label': 'label',
  '--name': 'name',
  '-p': 'publish',
  '--publish': 'publish',
  '--platform': 'platform',
  '--gpus': 'gpus',
  '-v': 'volume',
  '--volume': 'volume',
  '--mount': 'mount',
  '--log-driver': 'logDriver',
  '--log-opt': 'logOpt',
};
/**
 * Flags without a value that are accepted. `--rm` is what cutter always does; `-i` attaches stdin
 * (the CLI's, streamed to the node); `-t` gives the container a TTY.
 */
const BOOL_FLAGS: Record<string, string> = {
  '--rm': 'rm',
  '-d': 'detach',
  '--detach': 'detach',
  '-i': 'stdin',
  '--interactive': 'stdin',
  '-t': 'tty',
  '--tty': 'tty',
};
const REFUSED: Record<string, string> = {
  '--privileged': 'privileged containers are not allowed',
  '--network': 'choosing the network is not supported',
  '--net': 'choosing the network is not supported',
  '--pid': 'sharing the host PID namespace is not allowed',
};

/**
 * Parses `-p SERVER:CONTAINER` (or `-p PORT`, the same number on both sides) into a forward:
 * the container port is published on a free port of the node and reached at SERVER on the cutter
 * server. An address (`IP:…`) or a protocol other than tcp is refused.
 * @throws CutterError INVALID_ARGUMENT naming the flag and value.
 */
export function parsePublish(value: string, flag = '-p'): { server: number; container: number } {
  const bad = (why: string) => new CutterError('INVALID_ARGUMENT', `docker run ${flag}: "${value}": ${why}`);
  let v = value;
  if (v.endsWith('/tcp')) v = v.slice(0, -4);
  else if (v.includes('/')) throw bad('only tcp ports can be forwarded');
  const parts = v.split(':');
  if (parts.length > 2) throw bad('give SERVER_PORT:CONTAINER_PORT (the server chooses its own interface)');
  const nums = parts.map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : NaN));
  if (nums.some((n) => !Number.isInteger(n) || n < 1 || n > 65535))
    throw bad('ports are numbers from 1 to 65535 (ranges are not supported)');
  return { server: nums[0], container: nums[nums.length - 1] };
}

/**
 * @param args everything after `docker`, starting with `run`.
 * @throws CutterError INVALID_ARGUMENT naming the flag or value at fault.
 */
export function parseDockerRun(argv: string[]): ParsedDockerRun {
  const args = [...argv];
  if (args[0] !== 'run') throw new CutterError('INVALID_ARGUMENT', `expected "docker run …", got "docker ${args[0] ?? ''}"`);
  const env: Record<string, string> = {};
  const labels: Record<string, string> = {};
  const spec: Partial<DockerSpec> = {};
  let detach = false;
  let platform: string | undefined;
  let gpus: ParsedDockerRun['gpus'];
  let node: string | undefined;
  let i = 1;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    // Short flags run together, as docker takes them: -it, -di.
    if (/^-[a-zA-Z]{2,}$/.test(arg) && [...arg.slice(1)].every((c) => BOOL_FLAGS[`-${c}`] || REFUSED[`-${c}`])) {
      args.splice(i, 1, ...[...arg.slice(1)].map((c) => `-${c}`));
      i--;
      continue;
    }
    // --flag=value and -mVALUE forms
    let flag = arg;
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      flag = arg.slice(0, eq);
      inline = arg.slice(eq + 1);
    } else if (!arg.startsWith('--') && arg.length > 2 && VALUE_FLAGS[arg.slice(0, 2)]) {
      flag = arg.slice(0, 2);
      inline = arg.slice(2);
    }
    if (REFUSED[flag]) throw new CutterError('INVALID_ARGUMENT', `docker run ${flag}: ${REFUSED[flag]}`);
    if (BOOL_FLAGS[flag]) {
      if (BOOL_FLAGS[flag] === 'detach') detach = true;
      if (BOOL_FLAGS[flag] === 'stdin') spec.stdin = true;
      // The terminal's size is filled in by `cutter run` (cli/commands/run.ts).
      if (BOOL_FLAGS[flag] === 'tty') spec.tty = { rows: 0, cols: 0 };
      continue;
    }
    const name = VALUE_FLAGS[flag];
    if (!name)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `docker run flag ${flag} is not supported by cutter (supported: -m, --cpus, -e, -w, -u, --entrypoint, -l, --name, -p, --gpus, -v, --mount, --log-driver, --log-opt, --rm, -d, -i, -t)`,
      );
    const value = inline ?? args[++i];
    if (value === undefined) throw new CutterError('INVALID_ARGUMENT', `docker run ${flag} needs a value`);
    switch (name) {
      case 'memory':
        try {
          spec.memoryLimit = parseBytes(value);
        } catch (err) {
          throw new CutterError('INVALID_ARGUMENT', `docker run ${flag} ${value}: ${(err as Error).message}`);
        }
        break;
      case 'cpus': {
        const n = Number(value);
        if (!Number.isFinite(n) || n <= 0)
          throw new CutterError('INVALID_ARGUMENT', `docker run --cpus ${value}: expected a positive number of CPUs`);
        spec.cpus = n;
        break;
      }
      case 'env': {
        const k = value.indexOf('=');
        if (k === 0) throw new CutterError('INVALID_ARGUMENT', `docker run -e ${value}: missing variable name`);
        if (k < 0) {
          // like docker: `-e NAME` passes the caller's value, or nothing when unset
          if (process.env[value] !== undefined) env[value] = process.env[value]!;
        } else env[value.slice(0, k)] = value.slice(k + 1);
        break;
      }
      case 'label': {
        const k = value.indexOf('=');
        labels[k < 0 ? value : value.slice(0, k)] = k < 0 ? '' : value.slice(k + 1);
        break;
      }
      case 'workdir':
        spec.workdir = value;
        break;
      case 'user':
        spec.user = value;
        break;
      case 'entrypoint':
        spec.entrypoint = [value];
        break;
      case 'publish':
        (spec.ports ??= []).push(parsePublish(value, flag));
        break;
      case 'gpus':
        gpus = parseGpus(value, `docker run ${flag}`);
        break;
      case 'volume':
      case 'mount': {
        const m = name === 'volume' ? parseDockerVolume(value, `docker run ${flag}`) : parseDockerMount(value, `docker run ${flag}`);
        (spec.mounts ??= []).push(m.mount);
        if (m.node && node && m.node !== node)
          throw new CutterError('INVALID_ARGUMENT', `${flag} ${value}: names node ${m.node}, another -v names ${node}`);
        node ??= m.node;
        break;
      }
      case 'name':
        break; // containers are named cutter-<task>-<attempt> so an agent can find its own
      case 'platform':
        platform = value;
        break;
      case 'logDriver':
      case 'logOpt':
        spec.logging = parseLogFlag(spec.logging, name, value, flag);
        break;
    }
  }
  if (spec.logging) checkLogging(spec.logging);
  const image = args[i];
  if (!image) throw new CutterError('INVALID_ARGUMENT', 'docker run needs an IMAGE');
  return {
    detach,
    ...(platform !== undefined ? { platform } : {}),
    ...(node ? { node } : {}),
    spec: { kind: 'docker', image, cmd: args.slice(i + 1), env, labels, ...spec } as DockerSpec,
    ...(gpus ? { gpus } : {}),
  };
}
