/**
 * A node's execution policy: what its owner lets cutter run there. Checked by the agent before
 * anything starts; a refused task fails with the rule that refused it (code POLICY_DENIED).
 *
 * What no policy can allow, because cutter's task spec has no way to ask for it: privileged
 * containers, host network or PID namespaces, host mounts, added capabilities.
 */
import { globToRegExp } from '../shared/glob.js';
import type { TaskSpec } from '../shared/schemas/index.js';
import { formatBytes } from '../shared/units.js';

export interface ExecutionPolicy {
  /** Image patterns (`*` matches any run of characters), e.g. `python:*`, `ghcr.io/me/*`; empty = any image. */
  allowedImages: string[];
  /** Largest container memory limit accepted, bytes; undefined = no cap. */
  maxTaskMemory?: number;
  /** Memory limit given to a container that asks for none, bytes; undefined = none. */
  defaultTaskMemory?: number;
  /** Commands exec tasks may run (argv[0], exact path or bare name); empty = any. */
  execAllowlist: string[];
}

/** Applies the policy's defaults (a memory limit for containers that set none). */
export function withPolicyDefaults(spec: TaskSpec, policy: ExecutionPolicy): TaskSpec {
  if (spec.kind === 'docker' && spec.memoryLimit === undefined && policy.defaultTaskMemory !== undefined) {
    return { ...spec, memoryLimit: policy.defaultTaskMemory };
  }
  return spec;
}

/** @returns why `allowedImages` refuses the image (a task's, or one pushed with `cutter image push`), or null. */
export function imageViolation(image: string, allowedImages: string[]): string | null {
  if (!allowedImages.length || allowedImages.some((p) => globToRegExp(p).test(image))) return null;
  return `image ${image} is not allowed here (allowedImages: ${allowedImages.join(', ')})`;
}

/** @returns why the policy refuses the task (naming the rule), or null. */
export function policyViolation(spec: TaskSpec, policy: ExecutionPolicy): string | null {
  if (spec.kind === 'docker') {
    const image = imageViolation(spec.image, policy.allowedImages);
    if (image) return image;
    if (policy.maxTaskMemory !== undefined && (spec.memoryLimit === undefined || spec.memoryLimit > policy.maxTaskMemory)) {
      return spec.memoryLimit === undefined
        ? `containers here must set a memory limit of at most ${formatBytes(policy.maxTaskMemory)} (maxTaskMemory)`
        : `memory limit ${formatBytes(spec.memoryLimit)} is over this node's maxTaskMemory of ${formatBytes(policy.maxTaskMemory)}`;
    }
    return null;
  }
  if (spec.kind === 'ollama') return null;
  const cmd = spec.argv[0];
  const name = cmd.split('/').pop()!;
  if (
    policy.execAllowlist.length &&
    !policy.execAllowlist.some((a) => a === cmd || (!a.includes('/') && a === name && !cmd.includes('/')))
  ) {
    return `command ${cmd} is not allowed here (execAllowlist: ${policy.execAllowlist.join(', ')})`;
  }
  return null;
}
