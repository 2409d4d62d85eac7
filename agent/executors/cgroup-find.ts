/**
 * Where this process can put an exec task's cgroup so its memory and CPU limits hold: the cgroup
 * v2 hierarchy when its memory and cpu controllers are there, else the v1 `memory` and `cpu`
 * hierarchies (a hybrid host such as one with cgroup2 at /sys/fs/cgroup/unified holding only
 * `hugetlb` keeps memory and cpu in v1). Reads /proc/self/mountinfo and /proc/self/cgroup
 * (proc(5): mountinfo fields 4 root, 5 mount point, after " - " fstype, source, super options;
 * /proc/[pid]/cgroup lines `hierarchy-ID:controller-list:cgroup-path`, `0::path` for v2).
 *
 * Where the task cgroups go:
 * - v2: `<mount>/cutter/` under the root of the mounted hierarchy, controllers enabled in the
 *   root's and `cutter`'s `cgroup.subtree_control` (kernel Documentation/admin-guide/cgroup-v2.rst:
 *   a cgroup that hands controllers to its children may hold no processes itself, the root
 *   excepted; so not under the agent's own cgroup, which holds the agent).
 * - v1: `<mount>/<the agent's own cgroup>/cutter/` in each of `memory` and `cpu` (v1 has no
 *   such rule, and nesting keeps whatever limit the agent itself runs under).
 * Needs root (or a cgroup tree delegated to the agent's user); systemd-run is not used.
 */
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { errorMessage } from '../../shared/errors.js';

/** One cgroup mount, from /proc/self/mountinfo. */
export interface CgroupMount {
  /** 1 or 2. */
  version: 1 | 2;
  /** Where it is mounted, e.g. `/sys/fs/cgroup/memory`. */
  mountPoint: string;
  /** The cgroup shown at the mount point (`/` unless a container mounted its own subtree). */
  root: string;
  /** v1: its super options, among them the controllers bound to it (`rw,cpu,cpuacct`); v2: empty. */
  controllers: string[];
}

/** Where an exec task's cgroups are made, and with which files its limits are written. */
export type CgroupBase =
  | { version: 2; dir: string }
  | {
      version: 1;
      /** The `cutter` directory in the memory hierarchy; absent when no writable one. */
      memory?: string;
      /** The `cutter` directory in the cpu hierarchy; absent when no writable one. */
      cpu?: string;
    };

/** What this node can enforce for exec tasks, and why not where it cannot. */
export interface LimitSupport {
  memory: boolean;
  cpus: boolean;
  /** How (`cgroup v2`, `cgroup v1`), or null when neither limit holds. */
  via: string | null;
  /** Why a limit cannot be enforced, one line a node owner can act on; absent when both hold. */
  why?: string;
  /** Where task cgroups go; absent when neither limit holds. */
  base?: CgroupBase;
}

/** The name of the directory task cgroups are made in. */
export const CUTTER_CGROUP = 'cutter';

/** Unescapes mountinfo's octal escapes (`\040` for a space). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The cgroup mounts in a /proc/self/mountinfo text (proc(5)); other lines are skipped. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const f = left.split(' ');
    const [fstype, , superOptions = ''] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    // v1 super options list its controllers among the rest (`rw,cpu,cpuacct`); the rest match no controller name.
    const controllers = fstype === 'cgroup' ? superOptions.split(',') : [];
    mounts.push({
      version: fstype === 'cgroup2' ? 2 : 1,
      mountPoint: unescapeOctal(f[4] ?? ''),
      root: unescapeOctal(f[3] ?? '/'),
      controllers,
    });
  }
  return mounts;
}

/** The process's cgroup path per v1 controller, and `''` for v2, from a /proc/self/cgroup text. */
export function parseOwnCgroups(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') own.set('', m[3]);
    else for (const c of m[2].split(',')) own.set(c, m[3]);
  }
  return own;
}

/** The directory of cgroup `path` inside `mount` (a container's mount shows only its own subtree). */
export function cgroupDir(mount: CgroupMount, path: string): string {
  const rel = relative(mount.root, path);
  return rel.startsWith('..') ? mount.mountPoint : join(mount.mountPoint, rel);
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Makes `dir` (and parents) unless it exists, and checks this process may make cgroups in it (an
 * agent of another user may have made it). Throws an Error saying which directory and why.
 */
function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${errorMessage(err)}`);
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new Error(`cannot create cgroups in ${dir}: ${errorMessage(err)}`);
  }
}

/** Enables `wanted` controllers in `dir`'s cgroup.subtree_control (v2); throws when the kernel refuses. */
function enableControllers(dir: string, wanted: string[]): void {
  const on = (read(join(dir, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/);
  const missing = wanted.filter((c) => !on.includes(c));
  if (missing.length === 0) return;
  try {
    writeFileSync(join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
  } catch (err) {
    throw new Error(`cannot enable ${missing.join(', ')} in ${dir}/cgroup.subtree_control: ${errorMessage(err)}`);
  }
}

/** The v2 base when the hierarchy has memory and cpu and they can be handed to `cutter/`, else why not. */
function tryV2(mount: CgroupMount): CgroupBase | string {
  const controllers = (read(join(mount.mountPoint, 'cgroup.controllers')) ?? '').trim().split(/\s+/);
  const missing = ['memory', 'cpu'].filter((c) => !controllers.includes(c));
  if (missing.length) return `cgroup v2 at ${mount.mountPoint} has no ${missing.join(' or ')} controller`;
  try {
    enableControllers(mount.mountPoint, ['memory', 'cpu']);
    const dir = join(mount.mountPoint, CUTTER_CGROUP);
    makeDir(dir);
    enableControllers(dir, ['memory', 'cpu']);
    return { version: 2, dir };
  } catch (err) {
    return errorMessage(err);
  }
}

/** The `cutter` directory under the process's own cgroup in the v1 hierarchy of `controller`, else why not. */
function tryV1(mounts: CgroupMount[], own: Map<string, string>, controller: string, file: string): string | { dir: string } {
  const mount = mounts.find((m) => m.version === 1 && m.controllers.includes(controller));
  if (!mount) return `no cgroup v1 ${controller} hierarchy is mounted`;
  const dir = join(cgroupDir(mount, own.get(controller) ?? '/'), CUTTER_CGROUP);
  try {
    makeDir(dir);
  } catch (err) {
    return errorMessage(err);
  }
  if (read(join(dir, file)) === null) return `${dir} has no ${file}`;
  return { dir };
}

/**
 * Finds what this node can enforce for exec tasks and prepares the `cutter` cgroup directories
 * (created once; task cgroups are made in them). Never throws: what cannot be used is said in `why`.
 * @param mountinfo the text of /proc/self/mountinfo; @param cgroupText that of /proc/self/cgroup
 *   (parameters so a test can feed other hosts' files; the directories named must exist).
 */
export function findLimitSupport(
  mountinfo = read('/proc/self/mountinfo') ?? '',
  cgroupText = read('/proc/self/cgroup') ?? '',
): LimitSupport {
  if (process.platform !== 'linux')
    return { memory: false, cpus: false, via: null, why: `cgroups are Linux-only (this node runs ${process.platform})` };
  const mounts = parseCgroupMounts(mountinfo);
  const own = parseOwnCgroups(cgroupText);
  const v2 = mounts.find((m) => m.version === 2);
  const v2Why = v2 ? tryV2(v2) : 'no cgroup v2 hierarchy is mounted';
  if (typeof v2Why !== 'string') return { memory: true, cpus: true, via: 'cgroup v2', base: v2Why };

  const memory = tryV1(mounts, own, 'memory', 'memory.limit_in_bytes');
  const cpu = tryV1(mounts, own, 'cpu', 'cpu.cfs_quota_us');
  const hasMemory = typeof memory !== 'string';
  const hasCpu = typeof cpu !== 'string';
  const uid = process.getuid?.();
  const notRoot = uid !== undefined && uid !== 0 ? `the agent runs as uid ${uid}, not root: ` : '';
  if (!hasMemory && !hasCpu) return { memory: false, cpus: false, via: null, why: `${notRoot}${v2Why}; ${memory}; ${cpu}` };
  const why = [hasMemory ? '' : memory, hasCpu ? '' : cpu].filter(Boolean).join('; ');
  return {
    memory: hasMemory,
    cpus: hasCpu,
    via: 'cgroup v1',
    ...(why ? { why } : {}),
    base: { version: 1, ...(hasMemory ? { memory: memory.dir } : {}), ...(hasCpu ? { cpu: cpu.dir } : {}) },
  };
}
