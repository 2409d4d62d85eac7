/**
 * What the node announces so placement can honour it (issue 16): its platform (`process.arch` in
 * Docker's names), the free disk of its data dir (`fs.statfs`, Node 18.15+: one syscall, no
 * shell), what its execution policy admits, and the machine's stable id (for `--prefer-local`).
 * The heartbeat adds these to NodeStatus `offer` and `capacity` (shared/schemas/node.ts).
 */
import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { AgentConfig } from '../shared/config.js';
import { defaultDataDir } from '../shared/config/common.js';
import { machineId } from '../shared/machine-id.js';
import { platformOfProcess } from '../shared/platform.js';
import type { NodeStatus, Offer } from '../shared/schemas/node.js';
import { type Disk, type NodePolicy, NodePolicySchema } from '../shared/schemas/placement.js';

/**
 * Free and total bytes of the filesystem holding `dir` (or its nearest existing parent: the data
 * dir may not exist before the first file is kept), from `fs.statfs`: `bavail` (the blocks an
 * unprivileged process may use, what `df` shows as available) × `bsize`.
 * @param orParent measure the nearest existing parent when `dir` does not exist (else null).
 * @returns null when statfs fails (no such path, no permission, a platform without it).
 */
export async function diskOf(dir: string, orParent = true): Promise<Disk | null> {
  let path = resolve(dir);
  for (;;) {
    try {
      const s = await statfs(path);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    } catch (err) {
      const parent = dirname(path);
      if (!orParent || (err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path) return null;
      path = parent;
    }
  }
}

/** The agent's data dir: where volumes and kept files go (XDG_DATA_HOME/cutter, ~/.local/share/cutter). */
export function agentDataDir(): string {
  return defaultDataDir();
}

/**
 * What the node's policy admits, as NodeStatus `offer.policy`; a rule whose list is longer than
 * the wire allows is left out (the agent still enforces it at admit time).
 * @returns the policy and the names of the rules left out.
 */
export function policyOffer(config: AgentConfig): { policy: NodePolicy; omitted: string[] } {
  const policy: NodePolicy = {
    ...(config.maxTaskMemory !== undefined ? { maxTaskMemory: config.maxTaskMemory } : {}),
    ...(config.defaultTaskMemory !== undefined ? { defaultTaskMemory: config.defaultTaskMemory } : {}),
  };
  const omitted: string[] = [];
  const lists = { allowedImages: config.allowedImages, execAllowlist: config.execAllowlist } as const;
  for (const [key, list] of Object.entries(lists) as [keyof typeof lists, string[]][]) {
    if (NodePolicySchema.shape[key].safeParse(list).success) policy[key] = list;
    else omitted.push(key);
  }
  return { policy, omitted };
}

/** The fields this file adds to the node's offer: platform, policy, machine id. */
export function offerFacts(config: AgentConfig, policy: NodePolicy): Pick<Offer, 'platform' | 'policy' | 'machineId'> {
  const variables = (process.config as { variables?: Record<string, unknown> }).variables ?? {};
  return {
    platform: platformOfProcess(process.platform, process.arch, variables.arm_version),
    policy,
    machineId: machineId(config.machineId),
  };
}

/**
 * Keeps the placement facts between heartbeats: the offer's (fixed for the agent's run) and the
 * data dir's free disk (measured again at every refresh). `addTo()` puts them in a status.
 */
export class PlacementFacts {
  private disk: Disk | null = null;
  private readonly offer: Pick<Offer, 'platform' | 'policy' | 'machineId'>;

  /** @param warn told once about a policy rule too long to announce. */
  constructor(config: AgentConfig, warn: (msg: string) => void) {
    const { policy, omitted } = policyOffer(config);
    if (omitted.length)
      warn(`${omitted.join(' and ')} too long to announce: placement cannot see it, the agent still enforces it when a task arrives`);
    this.offer = offerFacts(config, policy);
  }

  /** Measures the data dir's free disk again. Never throws. */
  async refresh(): Promise<void> {
    this.disk = await diskOf(agentDataDir());
  }

  /** Adds the facts to a status being built (its `offer` and `capacity`, when present). */
  addTo(status: NodeStatus): void {
    if (status.offer) Object.assign(status.offer, this.offer);
    if (status.capacity && this.disk) status.capacity.disk = this.disk;
  }
}
