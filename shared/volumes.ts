/**
 * Volumes: named directories cutter manages on a node (agent/volumes/store.ts), filled with
 * `cutter cp -r`, mounted into containers (`cutter run -v NAME:/data`) or handed to exec tasks
 * (`$CUTTER_VOLUME_<NAME>`). The naming and path rules both sides check, so a name or a path
 * from the network can never reach outside the node's volumes directory.
 */
import { z } from 'zod';

/** A volume name: 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter, digit or `_`, no `..`. */
export const VOLUME_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** @returns why `name` is not a valid volume name, or null. */
export function volumeNameProblem(name: string): string | null {
  if (!VOLUME_NAME_RE.test(name) || name.includes('..'))
    return `"${name.slice(0, 80)}" is not a volume name: 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter, digit or _, without ".."`;
  return null;
}

export const VolumeNameSchema = z.string().refine((n) => volumeNameProblem(n) === null, {
  message: 'must be 1-64 characters of A-Z a-z 0-9 _ . - (no "..", not starting with . or -)',
});

/** Longest path inside a volume, characters. */
export const MAX_VOLUME_PATH = 1024;

/**
 * Normalises a path inside a volume: `/` separators, no empty, `.` or `..` components, no NUL,
 * not absolute after trimming leading slashes (`/a/b` and `a//b/` both give `a/b`; `` and `/`
 * give `` = the volume's root).
 * @returns the normalised relative path, or null when it has `..`, a NUL, a backslash or is too long.
 */
export function normaliseVolumePath(path: string): string | null {
  if (path.length > MAX_VOLUME_PATH || path.includes('\0') || path.includes('\\')) return null;
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return null;
  return parts.join('/');
}

/** A path inside a volume, as the wire carries it (checked by normaliseVolumePath). */
export const VolumePathSchema = z
  .string()
  .max(MAX_VOLUME_PATH)
  .refine((p) => normaliseVolumePath(p) !== null, { message: 'must be a path inside the volume without ".." or NUL' });

/** The environment variable an exec task finds a volume's absolute path in: `CUTTER_VOLUME_` + the name upper-cased, other characters as `_`. */
export function volumeEnvName(name: string): string {
  return `CUTTER_VOLUME_${name.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

/** The names of the node volumes a task spec mounts (docker `mounts` of type `volume`, exec `volumes`), each once. */
export function mountedVolumes(spec: {
  kind: string;
  mounts?: { type: string; source: string }[];
  volumes?: { name: string }[];
}): string[] {
  const names = spec.kind === 'docker' ? (spec.mounts ?? []).filter((m) => m.type === 'volume').map((m) => m.source) : [];
  if (spec.kind === 'exec') names.push(...(spec.volumes ?? []).map((v) => v.name));
  return [...new Set(names)];
}
