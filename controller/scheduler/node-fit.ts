/**
 * Feasibility checks for what a node will enforce or simply is (issue 16): the task's constraints
 * against the node's labels, its platform against the node's, the free disk it asks for, and the
 * node's announced execution policy (the agent's own rules, shared/policy.ts). Pure functions of a
 * NodeSnapshot; each rejects with a coded reason as data (shared/schemas/rejection.ts).
 *
 * A node that does not announce a figure the task asks about (an older agent) is rejected for a
 * platform or disk the task names, since nothing says it fits; its policy, when not announced, is
 * left to the agent (which still refuses at admit time, as before).
 */
import { formatPlatform, platformRuns } from '../../shared/platform.js';
import { dockerViolation, execViolation, withDockerDefaults } from '../../shared/policy.js';
import type { Constraint, DockerSpec, TaskSpec } from '../../shared/schemas/index.js';
import type { NodeRejection } from './feasibility.js';
import type { NodeSnapshot, PlacementRequest } from './snapshot.js';

/** `gpu=rtx4090`, `site!=home`. */
export function formatConstraint(c: Constraint): string {
  return `${c.key}${c.op}${c.value}`;
}

/** The first of the task's constraints the node's labels fail, or null. */
export function constraintReason(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  const labels = n.status.offer?.labels ?? {};
  for (const c of req.requirements.constraints ?? []) {
    const has = Object.hasOwn(labels, c.key) ? labels[c.key] : undefined;
    const ok = c.op === '=' ? has === c.value : has !== c.value;
    if (!ok) return { code: 'constraint', wanted: formatConstraint(c), ...(has !== undefined ? { has } : {}) };
  }
  return null;
}

/**
 * The node's platform for the task's kind: a container runs on the engine's platform (the agent's
 * own when an older agent does not say), an exec task on the agent's.
 */
export function nodePlatform(n: NodeSnapshot, req: PlacementRequest) {
  const own = n.status.offer?.platform;
  return req.kind === 'docker' ? (n.status.capacity?.docker.platform ?? own) : own;
}

/** Rejects a node whose platform cannot run the task's (`--platform`), or that does not say its platform. */
export function platformReason(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  const want = req.requirements.platform;
  if (!want || req.kind === 'ollama') return null;
  const have = nodePlatform(n, req);
  const wanted = formatPlatform(want);
  if (!have) return { code: 'platform', wanted, detail: 'its agent does not announce its platform (an older agent)' };
  return platformRuns(want, have) ? null : { code: 'platform', wanted, has: formatPlatform(have) };
}

/** Free bytes where the task's data goes: the Docker root dir's filesystem for containers (else the data dir's), the data dir's for exec. */
export function diskFree(n: NodeSnapshot, req: PlacementRequest): number | undefined {
  const cap = n.status.capacity;
  return (req.kind === 'docker' ? cap?.docker.diskFree : undefined) ?? cap?.disk?.free;
}

/** Rejects a node with less free disk than the task asks for (`--disk`), or that does not say how much it has. */
export function diskReason(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  const needed = req.requirements.disk;
  if (!needed) return null;
  const free = diskFree(n, req);
  if (free === undefined) return { code: 'disk', needed, detail: 'its agent does not announce its free disk (an older agent)' };
  return free < needed ? { code: 'disk', needed, free } : null;
}

/**
 * Rejects a node whose announced policy would refuse the task at admit time, with the rule in the
 * agent's own words: a docker task's image (`allowedImages`) and memory limit (`maxTaskMemory`,
 * after `defaultTaskMemory`), an exec task's command (`execAllowlist`).
 */
export function policyReason(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  const policy = n.status.offer?.policy;
  const admit = req.admit;
  if (!policy || !admit) return null;
  let why: string | null = null;
  if (req.kind === 'docker' && admit.image !== undefined) {
    const docker = {
      allowedImages: policy.allowedImages ?? [],
      maxTaskMemory: policy.maxTaskMemory,
      defaultTaskMemory: policy.defaultTaskMemory,
    };
    const spec = { kind: 'docker', image: admit.image, memoryLimit: admit.memoryLimit } as DockerSpec;
    why = dockerViolation(withDockerDefaults(spec, docker), docker);
  } else if (req.kind === 'exec' && admit.command !== undefined) {
    why = execViolation(admit.command, policy.execAllowlist ?? []);
  }
  return why ? { code: 'policy', detail: why } : null;
}

/** The checks of this file in order (constraints, platform, policy, disk): the first rejection, or null. */
export function nodeFitReason(n: NodeSnapshot, req: PlacementRequest): NodeRejection | null {
  return constraintReason(n, req) ?? platformReason(n, req) ?? policyReason(n, req) ?? diskReason(n, req);
}

/** What of a task's spec the node's policy judges (PlacementRequest `admit`): a container's image and memory limit, an exec task's command. */
export function admitOf(spec: TaskSpec): PlacementRequest['admit'] {
  if (spec.kind === 'docker') return { image: spec.image, ...(spec.memoryLimit !== undefined ? { memoryLimit: spec.memoryLimit } : {}) };
  if (spec.kind === 'exec') return { command: spec.argv[0] };
  return undefined;
}
