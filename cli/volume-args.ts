/**
 * Parses the volume flags of `cutter run` and `docker run`: `-v VOLUME:/data[:ro]`,
 * `-v NODE:VOLUME:/data[:ro]` (the node that holds the volume), `-v /host/path:/data[:ro]` (a host
 * path, which the node refuses unless its policy allows it) and `--mount
 * type=volume|bind,src=…,dst=…[,readonly]` (docker's spelling); for exec tasks `-v VOLUME` or
 * `-v NODE:VOLUME` (the command finds the directory in `$CUTTER_VOLUME_<NAME>`).
 */
import { CutterError } from '../shared/errors.js';
import type { Mount, TaskSpec } from '../shared/schemas/index.js';
import { ID_RE } from '../shared/topics.js';
import { volumeNameProblem } from '../shared/volumes.js';

/** A parsed flag: the mount, and the node it names (`NODE:VOLUME:/data`), if any. */
export interface ParsedMount {
  mount: Mount;
  node?: string;
}

const bad = (flag: string, value: string, why: string) => new CutterError('INVALID_ARGUMENT', `${flag}: "${value}": ${why}`);

function volumeName(flag: string, value: string, name: string): string {
  const problem = volumeNameProblem(name);
  if (problem) throw bad(flag, value, problem);
  return name;
}

function nodeName(flag: string, value: string, node: string): string {
  if (!ID_RE.test(node)) throw bad(flag, value, `"${node}" is not a node id`);
  return node;
}

/** `ro`/`rw` (docker also takes them comma separated with others, which cutter does not support). */
function readOnlyOf(flag: string, value: string, opts: string | undefined): boolean {
  if (opts === undefined || opts === 'rw') return false;
  if (opts === 'ro') return true;
  throw bad(flag, value, `unsupported option "${opts}" (only ro or rw)`);
}

/**
 * `-v` / `--volume` of a docker task.
 * @throws CutterError INVALID_ARGUMENT naming the flag, the value and what to write instead.
 */
export function parseDockerVolume(value: string, flag = '-v'): ParsedMount {
  const parts = value.split(':');
  const target = (t: string | undefined) => {
    if (!t?.startsWith('/')) throw bad(flag, value, 'the container path must be absolute: VOLUME:/data[:ro]');
    return t;
  };
  if (parts.length === 1)
    throw bad(
      flag,
      value,
      'anonymous volumes are not supported: name a volume of the node, VOLUME:/data (cutter volume create NODE:VOLUME)',
    );
  if (parts[0].startsWith('/')) {
    if (parts.length > 3) throw bad(flag, value, 'expected /host/path:/container/path[:ro]');
    return { mount: { type: 'bind', source: parts[0], target: target(parts[1]), readOnly: readOnlyOf(flag, value, parts[2]) } };
  }
  if ((parts[0].startsWith('.') || parts[0].startsWith('~')) && parts[1]?.startsWith('/'))
    throw bad(
      flag,
      value,
      'host paths must be absolute (and allowed by the node); to send local files, cutter cp -r DIR NODE:VOLUME/ then -v VOLUME:/data',
    );
  if (parts[1]?.startsWith('/')) {
    if (parts.length > 3) throw bad(flag, value, 'expected VOLUME:/data[:ro]');
    return {
      mount: {
        type: 'volume',
        source: volumeName(flag, value, parts[0]),
        target: target(parts[1]),
        readOnly: readOnlyOf(flag, value, parts[2]),
      },
    };
  }
  if (parts.length >= 3 && parts[2].startsWith('/')) {
    if (parts.length > 4) throw bad(flag, value, 'expected NODE:VOLUME:/data[:ro]');
    return {
      node: nodeName(flag, value, parts[0]),
      mount: {
        type: 'volume',
        source: volumeName(flag, value, parts[1]),
        target: target(parts[2]),
        readOnly: readOnlyOf(flag, value, parts[3]),
      },
    };
  }
  throw bad(flag, value, 'expected VOLUME:/data[:ro], NODE:VOLUME:/data[:ro] or /host/path:/data[:ro]');
}

/**
 * `--mount type=volume,src=NAME,dst=/data[,readonly]` (or `type=bind,source=/host,target=/data`),
 * docker's keys: `type`, `src`/`source`, `dst`/`destination`/`target`, `readonly`/`ro`[`=true|false`].
 * @throws CutterError INVALID_ARGUMENT naming the key at fault.
 */
export function parseDockerMount(value: string, flag = '--mount'): ParsedMount {
  const kv = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    kv.set(eq < 0 ? part : part.slice(0, eq), eq < 0 ? 'true' : part.slice(eq + 1));
  }
  const type = kv.get('type') ?? 'volume';
  if (type !== 'volume' && type !== 'bind') throw bad(flag, value, `type=${type} is not supported (volume or bind)`);
  const source = kv.get('src') ?? kv.get('source');
  const target = kv.get('dst') ?? kv.get('destination') ?? kv.get('target');
  if (!source) throw bad(flag, value, 'needs src=VOLUME (or a host path with type=bind)');
  if (!target?.startsWith('/')) throw bad(flag, value, 'needs dst=/absolute/container/path');
  const ro = kv.get('readonly') ?? kv.get('ro');
  const readOnly = ro === undefined ? false : ro === 'true' || ro === '1';
  for (const k of kv.keys())
    if (!['type', 'src', 'source', 'dst', 'destination', 'target', 'readonly', 'ro'].includes(k))
      throw bad(flag, value, `option ${k} is not supported (type, src, dst, readonly)`);
  if (type === 'bind') {
    if (!source.startsWith('/')) throw bad(flag, value, 'a bind source must be an absolute host path');
    return { mount: { type: 'bind', source, target, readOnly } };
  }
  return { mount: { type: 'volume', source: volumeName(flag, value, source), target, readOnly } };
}

/**
 * `cutter run -v` for an exec task: `VOLUME` or `NODE:VOLUME`.
 * @throws CutterError INVALID_ARGUMENT for a container path or `:ro`, which an exec task cannot have.
 */
export function parseExecVolume(value: string, flag = '-v'): { name: string; node?: string } {
  const parts = value.split(':');
  if (parts.some((p) => p.startsWith('/')) || parts.includes('ro') || parts.includes('rw') || parts.length > 2)
    throw bad(
      flag,
      value,
      'an exec task runs on the node itself: give -v VOLUME (or NODE:VOLUME); it finds the directory in $CUTTER_VOLUME_<NAME>, and cannot be held to read-only',
    );
  if (parts.length === 2) return { node: nodeName(flag, value, parts[0]), name: volumeName(flag, value, parts[1]) };
  return { name: volumeName(flag, value, parts[0]) };
}

/**
 * Adds `cutter run -v …` / `--mount …` to the task: mounts for a docker task, volumes for an exec
 * task (refused for ollama).
 * @param node the node already named (`--node`, or a docker `-v NODE:…`), if any.
 * @returns the node the task must run on (named by a flag), or undefined.
 * @throws CutterError INVALID_ARGUMENT for a bad flag, or two flags naming different nodes.
 */
export function applyVolumeFlags(spec: TaskSpec, volumes: string[], mounts: string[], node?: string): string | undefined {
  const pin = (n: string | undefined, flag: string) => {
    if (n && node && n !== node) throw new CutterError('INVALID_ARGUMENT', `${flag} names node ${n}, but the task is for node ${node}`);
    node ??= n;
  };
  if ((volumes.length || mounts.length) && spec.kind === 'ollama')
    throw new CutterError('INVALID_ARGUMENT', '-v and --mount are for docker and exec tasks');
  if (spec.kind === 'docker') {
    for (const v of volumes) {
      const m = parseDockerVolume(v);
      (spec.mounts ??= []).push(m.mount);
      pin(m.node, `-v ${v}`);
    }
    for (const v of mounts) {
      const m = parseDockerMount(v);
      (spec.mounts ??= []).push(m.mount);
    }
  } else if (spec.kind === 'exec') {
    if (mounts.length) throw new CutterError('INVALID_ARGUMENT', '--mount is for docker tasks: an exec task takes -v VOLUME');
    for (const v of volumes) {
      const m = parseExecVolume(v);
      if (!(spec.volumes ??= []).some((x) => x.name === m.name)) spec.volumes.push({ name: m.name });
      pin(m.node, `-v ${v}`);
    }
  }
  return node;
}

/**
 * Refuses at once a docker task that bind-mounts a host path no node's policy allows (nodes
 * announce theirs as `hostPaths`), rather than leaving it queued for a node that may never come.
 * @param hostPaths what each node announces, by node id.
 * @throws CutterError POLICY_DENIED naming the path and the agent flag that would allow it.
 */
export function refuseUnallowedHostPaths(spec: TaskSpec, hostPaths: Map<string, string[]>, node?: string): void {
  if (spec.kind !== 'docker') return;
  const within = (p: string, dir: string) => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  for (const m of spec.mounts ?? []) {
    if (m.type !== 'bind') continue;
    const allowing = [...hostPaths].filter(([n, dirs]) => (!node || n === node) && dirs.some((d) => within(m.source, d)));
    if (allowing.length === 0)
      throw new CutterError(
        'POLICY_DENIED',
        `-v ${m.source}:${m.target}: host path ${m.source} is not allowed by ${node ? `node ${node}'s` : "any node's"} policy ` +
          `(its owner can start the agent with --allow-host-path ${m.source}); or copy the data into a volume: cutter cp -r DIR NODE:VOLUME/, then -v VOLUME:${m.target}`,
      );
  }
}
