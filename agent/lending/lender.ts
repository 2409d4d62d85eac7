/**
 * The lender (issue 17): every sampling interval it reads the owner's side of the machine
 * (./sources.ts), judges it against the node's lending policy (shared/lending.ts) and acts on the
 * tasks running here, after HTCondor's desktop policy:
 * - a condition stops holding (SUSPEND): docker tasks are paused (`docker pause`, the cgroup
 *   freezer), exec tasks get SIGSTOP on their process group; ollama requests run on (short);
 * - it holds again (CONTINUE): `docker unpause`, SIGCONT;
 * - a task suspended longer than `preemptAfterMs` (PREEMPT): resumed, then stopped and reported
 *   `failed` PREEMPTED, a node fault the controller places again by the task's restart policy.
 * The state (`lending`, `suspended: on battery`, `closed: outside 22:00-07:00`) goes out in the
 * node's status (NodeStatus `lending`); the scheduler places nothing on a node that is not lending.
 *
 * Owner CPU = the host's busy time minus what cutter's own tasks used in the same interval (docker:
 * the container's `cpu_stats.cpu_usage.total_usage` from a one-shot `GET /containers/{id}/stats`;
 * exec: utime+stime of its process group from /proc), as BOINC measures non-BOINC CPU use.
 */
import { cpus } from 'node:os';
import type Docker from 'dockerode';
import { describeLending, type LendingPolicy, lendingVerdict, type OwnerSample, patchPolicy } from '../../shared/lending.js';
import type { Logger } from '../../shared/logger.js';
import type { LendingSet, LendingState, LendingStatus, TaskKind } from '../../shared/schemas/index.js';
import { within } from '../tasks.js';
import { processGroupCpuMs, readCpuTicks, readFreeMemory, readIdle, readOnBattery } from './sources.js';

/** A task running here as the lender sees it: `ref` is the container id or the exec task's pid. */
export interface LendableTask {
  key: string;
  kind?: TaskKind;
  ref?: string;
}

/** What the lender needs from the agent. */
export interface LenderDeps {
  /** The policy from the agent's flags and file; undefined: none configured (until one is set at runtime). */
  policy?: LendingPolicy;
  /** Sampling interval, ms. */
  sampleMs: number;
  /** Directory shaped like /sys/class/power_supply (the test double). */
  powerSupplyDir: string;
  log: Logger;
  /** The attempts running here now. */
  tasks: () => LendableTask[];
  /** Stops an attempt and has it reported `failed` PREEMPTED with `why`. */
  preempt: (key: string, why: string) => void;
  /** The Docker engine's client, when the node runs docker tasks. */
  docker?: () => Docker | undefined;
  /** Publishes the node status soon (the state changed). */
  announce: () => void;
  /** The clock windows are judged by (tests inject one). */
  now?: () => Date;
}

const DEFAULT_POLICY: LendingPolicy = { enabled: true, mode: 'auto', acOnly: false, preemptAfterMs: 600_000 };

/** Samples, judges and acts; see the file comment. `start()` once, `stop()` once. */
export class Lender {
  private policy?: LendingPolicy;
  private timer?: NodeJS.Timeout;
  private state: LendingState = 'lending';
  private reason?: string;
  private since = Date.now();
  private owner?: OwnerSample;
  private applied?: string;
  /** Paused attempts and since when, ms epoch. */
  private readonly suspended = new Map<string, { at: number; task: LendableTask }>();
  private lastTicks?: { busy: number; total: number; at: number };
  /** Cumulative CPU ms of each task at the last sample. */
  private lastTaskCpu = new Map<string, number>();
  private sampling = false;
  /** Attempts being stopped for preemption: not suspended again while they stop. */
  private readonly preempting = new Set<string>();

  constructor(private readonly deps: LenderDeps) {
    this.policy = deps.policy;
  }

  /**
   * Samples now and then every `sampleMs` (only while a policy is in force). Containers re-adopted
   * from an agent that died while it had them paused are unpaused first: nothing here remembers
   * pausing them, and the first sample pauses them again if the node is still not lending.
   */
  async start(): Promise<void> {
    const docker = this.deps.docker?.();
    const readopted = this.deps.tasks().filter((t) => t.kind === 'docker' && t.ref);
    // Bounded: a hung engine must not hold up the agent's start.
    const unpause = (t: LendableTask) =>
      docker!
        .getContainer(t.ref!)
        .unpause()
        .catch(() => undefined);
    if (docker) await within(Promise.all(readopted.map(unpause)), 5_000);
    this.schedule();
  }

  /** Stops sampling and resumes whatever it paused (the agent is leaving: its tasks must be stoppable). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const key of [...this.suspended.keys()]) await this.resume(key);
  }

  /** The NodeStatus `lending` field; undefined while no policy is in force. */
  status(): LendingStatus | undefined {
    if (!this.policy) return undefined;
    return {
      state: this.state,
      ...(this.reason ? { reason: this.reason.slice(0, 300) } : {}),
      since: this.since,
      policy: this.policy,
      sampleMs: this.deps.sampleMs,
      ...(this.owner ? { owner: { ...this.owner, idleSource: this.owner.idleSource.slice(0, 200) } } : {}),
      ...(this.suspended.size ? { suspended: [...this.suspended.keys()] } : {}),
      ...(this.applied ? { applied: this.applied } : {}),
    };
  }

  /** Why a new task is refused here now (`closed: on battery`), or undefined when the node lends. */
  refusal(): string | undefined {
    return this.policy && this.state !== 'lending' ? describeLending({ state: this.state, reason: this.reason }) : undefined;
  }

  /** Applies a runtime change (`cutter nodes policy`, Home Assistant) and samples at once. */
  apply(set: LendingSet): void {
    const base = set.reset ? (this.deps.policy ?? DEFAULT_POLICY) : (this.policy ?? this.deps.policy ?? DEFAULT_POLICY);
    this.policy = patchPolicy(base, set.patch);
    this.applied = set.id;
    this.deps.log.info({ policy: this.policy, id: set.id }, 'lending policy changed');
    this.schedule();
    this.deps.announce();
  }

  /** A task is being stopped (cancel, fence, drain): resumed first, so its signal and stop reach it. */
  async release(key: string): Promise<void> {
    if (this.suspended.has(key)) await this.resume(key);
  }

  private schedule(): void {
    clearInterval(this.timer);
    if (!this.policy) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.deps.sampleMs);
  }

  /** One sample, verdict and the actions it calls for. Never throws. */
  async tick(): Promise<void> {
    const policy = this.policy;
    if (!policy || this.sampling) return;
    this.sampling = true;
    try {
      const tasks = this.deps.tasks();
      this.owner = await this.sample(policy, tasks);
      const verdict = lendingVerdict(policy, this.owner, this.deps.now?.() ?? new Date());
      const live = new Set(tasks.map((t) => t.key));
      for (const key of [...this.suspended.keys()]) if (!live.has(key)) this.suspended.delete(key);
      for (const key of [...this.preempting]) if (!live.has(key)) this.preempting.delete(key);
      let state: LendingState = 'lending';
      if (verdict.open) for (const key of [...this.suspended.keys()]) await this.resume(key);
      else {
        const now = Date.now();
        for (const t of tasks) {
          // ollama requests are short: not suspended; a preempted task is on its way out
          if ((t.kind !== 'docker' && t.kind !== 'exec') || this.preempting.has(t.key)) continue;
          const s = this.suspended.get(t.key);
          if (!s) await this.suspend(t, verdict.why);
          else if (now - s.at >= policy.preemptAfterMs) {
            await this.resume(t.key);
            this.preempting.add(t.key);
            this.deps.log.warn({ task: t.key, why: verdict.why, suspendedMs: now - s.at }, 'preempting a task suspended too long');
            this.deps.preempt(t.key, `suspended ${Math.round((now - s.at) / 1000)} s (${verdict.why})`);
          }
        }
        state = this.suspended.size > 0 ? 'suspended' : 'closed';
      }
      const reason = verdict.open ? undefined : verdict.why;
      if (state !== this.state || reason !== this.reason) {
        this.state = state;
        this.reason = reason;
        this.since = Date.now();
        this.deps.log.info({ lending: describeLending({ state, reason }), owner: this.owner }, 'lending state changed');
        this.deps.announce();
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'lending sample failed');
    } finally {
      this.sampling = false;
    }
  }

  /** Reads power, idle (only when a condition needs it), CPU and memory. */
  private async sample(policy: LendingPolicy, tasks: LendableTask[]): Promise<OwnerSample> {
    const [onBattery, idle, ticks, freeMemory, taskCpu] = await Promise.all([
      readOnBattery(this.deps.powerSupplyDir),
      policy.idleMinutes ? readIdle() : Promise.resolve({ idleSec: null, source: 'not read (no idle condition)' }),
      readCpuTicks(),
      readFreeMemory(),
      this.tasksCpu(tasks),
    ]);
    let ownerCpuPercent: number | null = null;
    const at = Date.now();
    if (ticks && this.lastTicks && ticks.total > this.lastTicks.total) {
      const host = ((ticks.busy - this.lastTicks.busy) / (ticks.total - this.lastTicks.total)) * 100;
      let used = 0;
      for (const [key, ms] of taskCpu) {
        const before = this.lastTaskCpu.get(key);
        if (before !== undefined && ms >= before) used += ms - before;
      }
      const cutter = (used / Math.max(1, (at - this.lastTicks.at) * cpus().length)) * 100;
      ownerCpuPercent = Math.min(100, Math.max(0, host - cutter));
    }
    if (ticks) this.lastTicks = { ...ticks, at };
    this.lastTaskCpu = taskCpu;
    return { onBattery, idleSec: idle.idleSec, idleSource: idle.source, ownerCpuPercent, freeMemory };
  }

  /** Cumulative CPU ms of each docker and exec task running here (unreadable ones left out). */
  private async tasksCpu(tasks: LendableTask[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    await Promise.all(
      tasks.map(async (t) => {
        if (!t.ref) return;
        try {
          if (t.kind === 'exec') out.set(t.key, await processGroupCpuMs(Number(t.ref)));
          else if (t.kind === 'docker') {
            const docker = this.deps.docker?.();
            if (!docker) return;
            const s = (await docker.getContainer(t.ref).stats({ stream: false, 'one-shot': true } as { stream: false })) as {
              cpu_stats?: { cpu_usage?: { total_usage?: number } };
            };
            const ns = s.cpu_stats?.cpu_usage?.total_usage;
            if (typeof ns === 'number') out.set(t.key, ns / 1e6);
          }
        } catch {
          // gone meanwhile: counted from its next sample
        }
      }),
    );
    return out;
  }

  /** Pauses a task (docker pause, SIGSTOP of its process group). */
  private async suspend(t: LendableTask, why: string): Promise<void> {
    if (!t.ref) return; // not started yet: suspended at the next sample
    try {
      if (t.kind === 'exec') process.kill(-Number(t.ref), 'SIGSTOP');
      else await this.deps.docker?.()?.getContainer(t.ref).pause();
      this.suspended.set(t.key, { at: Date.now(), task: t });
      this.deps.log.info({ task: t.key, kind: t.kind, why }, 'task suspended');
    } catch (err) {
      if (/already paused/i.test(String((err as Error).message))) this.suspended.set(t.key, { at: Date.now(), task: t });
      else this.deps.log.warn({ err, task: t.key }, 'cannot suspend task');
    }
  }

  /** Resumes a paused task (docker unpause, SIGCONT). */
  private async resume(key: string): Promise<void> {
    const s = this.suspended.get(key);
    if (!s) return;
    this.suspended.delete(key);
    const t = s.task;
    try {
      if (t.kind === 'exec') process.kill(-Number(t.ref), 'SIGCONT');
      else await this.deps.docker?.()?.getContainer(t.ref!).unpause();
      this.deps.log.info({ task: key, kind: t.kind }, 'task resumed');
    } catch (err) {
      if (!/not paused|no such/i.test(String((err as Error).message))) this.deps.log.warn({ err, task: key }, 'cannot resume task');
    }
  }
}
