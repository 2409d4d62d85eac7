/**
 * A node's execution policy: what its owner lets cutter run there. Each executor applies the
 * rules of its kind in `admit()` before anything starts (docker: images and memory; exec: the
 * command allowlist); a refused task fails with the rule that refused it (code POLICY_DENIED).
 *
 * What no policy can allow, because cutter's task spec has no way to ask for it: privileged
 * containers, host network or PID namespaces, added capabilities. Host mounts only of the
 * directories `allowHostPath` lists (agent/volumes/resolve.ts).
 */
import { basename } from 'node:path';
import { globToRegExp } from '../shared/glob.js';
import type { DockerSpec } from '../shared/schemas/index.js';
import { formatBytes } from '../shared/units.js';

/** The rules for docker tasks (agent config `allowedImages`, `maxTaskMemory`, `defaultTaskMemory`). */
export interface DockerPolicy {
  /** Image patterns (`*` matches any run of characters), e.g. `python:*`, `ghcr.io/me/*`; empty = any image. */
  allowedImages: string[];
  /** Largest container memory limit accepted, bytes; undefined = no cap. */
  maxTaskMemory?: number;
  /** Memory limit given to a container that asks for none, bytes; undefined = none. */
  defaultTaskMemory?: number;
}

/** Applies the policy's defaults (a memory limit for containers that set none). */
export function withDockerDefaults(spec: DockerSpec, policy: DockerPolicy): DockerSpec {
  if (spec.memoryLimit === undefined && policy.defaultTaskMemory !== undefined) return { ...spec, memoryLimit: policy.defaultTaskMemory };
  return spec;
}

/** @returns why `allowedImages` refuses the image (a task's, or one pushed with `cutter image push`), or null. */
export function imageViolation(image: string, allowedImages: string[]): string | null {
  if (!allowedImages.length || allowedImages.some((p) => globToRegExp(p).test(image))) return null;
  return `image ${image} is not allowed here (allowedImages: ${allowedImages.join(', ')})`;
}

/** @returns why the policy refuses the docker task (naming the rule), or null. Apply `withDockerDefaults` first. */
export function dockerViolation(spec: DockerSpec, policy: DockerPolicy): string | null {
  const image = imageViolation(spec.image, policy.allowedImages);
  if (image) return image;
  if (policy.maxTaskMemory !== undefined && (spec.memoryLimit === undefined || spec.memoryLimit > policy.maxTaskMemory)) {
    return spec.memoryLimit === undefined
      ? `containers here must set a memory limit of at most ${formatBytes(policy.maxTaskMemory)} (maxTaskMemory)`
      : `memory limit ${formatBytes(spec.memoryLimit)} is over this node's maxTaskMemory of ${formatBytes(policy.maxTaskMemory)}`;
  }
  return null;
}

/**
 * @param cmd the task's argv[0]
 * @param allowlist agent config `execAllowlist`: exact paths, or bare names that match a bare
 *   command only (`python3` does not allow `/tmp/python3`); empty = any command.
 * @returns why the allowlist refuses the command, or null.
 */
export function execViolation(cmd: string, allowlist: string[]): string | null {
  const name = basename(cmd);
  if (allowlist.length && !allowlist.some((a) => a === cmd || (!a.includes('/') && a === name && !cmd.includes('/')))) {
    return `command ${cmd} is not allowed here (execAllowlist: ${allowlist.join(', ')})`;
  }
  return null;
}
