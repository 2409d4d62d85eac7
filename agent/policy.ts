/**
 * A node's execution policy: what its owner lets cutter run there. Each executor applies the
 * rules of its kind in `admit()` before anything starts (docker: images and memory; exec: the
 * command allowlist); a refused task fails with the rule that refused it (code POLICY_DENIED).
 * The rules live in shared/policy.ts, because the scheduler applies them too (to the policy the
 * node announces); this module re-exports them so the agent's imports stay as they were.
 *
 * What no policy can allow, because cutter's task spec has no way to ask for it: privileged
 * containers, host network or PID namespaces, added capabilities. Host mounts only of the
 * directories `allowHostPath` lists (agent/volumes/resolve.ts).
 */
export { type DockerPolicy, dockerViolation, execViolation, imageViolation, withDockerDefaults } from '../shared/policy.js';
