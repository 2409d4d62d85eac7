/**
 * Turns a task's volume and host-path requests into the node's absolute directories before the
 * executor sees them (agent/tasks.ts, right after the executor's admit):
 * - docker `mounts`: a `volume` becomes a `bind` of the volume's directory; a `bind` (host path)
 *   is kept only when it lies in a directory of the node's `allowHostPath` policy (symlinks
 *   resolved), else the task is refused POLICY_DENIED. The container then gets HostConfig.Mounts
 *   of type `bind` (agent/executors/docker-container.ts), which fail on a missing source instead
 *   of creating it (Docker Engine API: `Binds` creates a missing host path, `Mounts` does not).
 * - exec `volumes`: `$CUTTER_VOLUME_<NAME>` = the volume's directory; a `cwd` of `NAME:SUBDIR`
 *   becomes that directory inside the volume.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';
import type { Mount, TaskSpec } from '../../shared/schemas/index.js';
import { normaliseVolumePath, volumeEnvName, volumeNameProblem } from '../../shared/volumes.js';
import { type VolumeConfig, volumesOf } from './config.js';

/** A refusal: the `failed` event's code and message. */
export interface StorageRefusal {
  code: 'POLICY_DENIED' | 'NOT_FOUND' | 'INVALID_ARGUMENT';
  message: string;
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
const real = (p: string) => {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
};

/** @returns the spec with absolute directories, or why the node refuses it. Specs without volumes come back unchanged. */
export function resolveStorage(spec: TaskSpec, config: VolumeConfig): { spec: TaskSpec } | StorageRefusal {
  const node = config.nodeId;
  const volumeDir = (name: string): string | StorageRefusal => {
    const problem = volumeNameProblem(name);
    if (problem) return { code: 'INVALID_ARGUMENT', message: problem };
    const store = volumesOf(config);
    if (!store) return { code: 'NOT_FOUND', message: `node ${node} has volumes off (its agent runs with --volumes-dir off)` };
    return (
      store.pathOf(name) ?? { code: 'NOT_FOUND', message: `no volume "${name}" on node ${node}: cutter volume create ${node}:${name}` }
    );
  };
  if (spec.kind === 'docker' && spec.mounts?.length) {
    const mounts: Mount[] = [];
    for (const m of spec.mounts) {
      if (m.type === 'volume') {
        const dir = volumeDir(m.source);
        if (typeof dir !== 'string') return dir;
        mounts.push({ ...m, type: 'bind', source: dir });
        continue;
      }
      const allowed = (config.allowHostPath ?? []).map((p) => real(resolve(p)) ?? resolve(p));
      const path = isAbsolute(m.source) ? real(m.source) : null;
      if (!path || !allowed.some((a) => inside(path, a)))
        return {
          code: 'POLICY_DENIED',
          message:
            `host path ${m.source} is not allowed on node ${node}: ` +
            (allowed.length ? `its policy allows only ${allowed.join(', ')}` : 'its policy allows no host paths') +
            ` (its owner can start the agent with --allow-host-path ${m.source}); or copy the data into a volume: cutter cp -r DIR ${node}:VOLUME/`,
        };
      mounts.push({ ...m, source: path });
    }
    return { spec: { ...spec, mounts } };
  }
  if (spec.kind === 'exec' && spec.volumes?.length) {
    const env = { ...spec.env };
    const dirs = new Map<string, string>();
    for (const v of spec.volumes) {
      const dir = volumeDir(v.name);
      if (typeof dir !== 'string') return dir;
      env[volumeEnvName(v.name)] = dir;
      dirs.set(v.name, dir);
    }
    let cwd = spec.cwd;
    const m = cwd !== undefined ? /^([^:/]+):(.*)$/.exec(cwd) : null;
    if (m && dirs.has(m[1])) {
      const sub = normaliseVolumePath(m[2]);
      if (sub === null) return { code: 'POLICY_DENIED', message: `working directory ${cwd} leaves volume ${m[1]} (".." or NUL)` };
      const abs = sub ? join(dirs.get(m[1])!, sub) : dirs.get(m[1])!;
      const r = real(abs);
      if (r && !inside(r, dirs.get(m[1])!))
        return { code: 'POLICY_DENIED', message: `working directory ${cwd} leaves volume ${m[1]} through a symbolic link` };
      cwd = abs;
    }
    return { spec: { ...spec, env, ...(cwd !== undefined ? { cwd } : {}) } };
  }
  return { spec };
}
