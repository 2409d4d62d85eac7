/**
 * Settling a container's OOM kill after its exit. The Docker Engine reports one through
 * `State.OOMKilled` of `GET /containers/{id}/json`, set when the daemon handles containerd's OOM
 * event; that event can arrive after the exit event (containerd/containerd#12372 and #12260), so an
 * inspect right after the wait may still say false for a container the kernel killed for its
 * memory limit: it was reported as a plain exit 137 under load (seen in CI). When an exit looks
 * like one (137 = SIGKILL, a memory limit set, not our own stop), the container is inspected again
 * a few times before it is believed.
 */
import type { ContainerInspectInfo } from 'dockerode';

/** Inspections after the first, and the pause before each, ms: at most 0.5 s more for a SIGKILL. */
export const OOM_SETTLE_TRIES = 5;
export const OOM_SETTLE_STEP_MS = 100;

/**
 * The inspect result to report: `info` itself, or a later one that says OOMKilled.
 * @param info the inspect right after the wait (undefined when the engine was down).
 * @param reinspect inspects the container again (it is not removed yet); a failure ends the wait.
 * @param stopRequested the task was stopped by cutter (cancel, drain, fence): its SIGKILL is ours.
 */
export async function settleOomKilled(
  info: ContainerInspectInfo | undefined,
  reinspect: () => Promise<ContainerInspectInfo | undefined>,
  stopRequested: boolean,
): Promise<ContainerInspectInfo | undefined> {
  if (!info || info.State.OOMKilled || info.State.ExitCode !== 137 || stopRequested || !((info.HostConfig?.Memory ?? 0) > 0)) return info;
  for (let i = 0; i < OOM_SETTLE_TRIES; i++) {
    await new Promise((r) => setTimeout(r, OOM_SETTLE_STEP_MS));
    const again = await reinspect().catch(() => undefined);
    if (!again) return info;
    if (again.State.OOMKilled) return again;
  }
  return info;
}
