/**
 * `cutter run`'s placement flags (issue 16): `--constraint key=value` / `key!=value` (repeatable,
 * Nomad's constraint operators), `--platform os/arch[/variant]` (docker run's flag), `--disk SIZE`
 * (Nomad's ephemeral_disk: free disk the node must have), `--prefer-local` and `--local-headroom`.
 * They become optional Requirements fields the scheduler checks (controller/scheduler/node-fit.ts,
 * prefer-local.ts). The submitting machine's id goes with every task, so the server's own
 * `--prefer-local` default can find its node.
 */
import type { Command } from 'commander';
import type Docker from 'dockerode';
import { CutterError } from '../shared/errors.js';
import { engineAddress, inspectImage } from './local-engine.js';
import { parseHeadroom } from '../shared/headroom.js';
import { machineId } from '../shared/machine-id.js';
import { parsePlatform } from '../shared/platform.js';
import { type Constraint, ConstraintSchema, type Headroom, type Platform, type Requirements } from '../shared/schemas/index.js';
import { parseBytes } from '../shared/units.js';

/** The flags as commander gives them. */
export interface PlacementFlags {
  constraint?: string[];
  platform?: string;
  disk?: string;
  preferLocal?: boolean;
  localHeadroom?: string;
}

/** Adds the placement flags to `cutter run`. */
export function withPlacementOptions(cmd: Command): Command {
  return cmd
    .option(
      '--constraint <key=value>',
      'run only on nodes whose label key equals value (key!=value: differs); repeatable, all must hold (cutter agent --label)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--platform <os/arch>', 'run only on nodes of this platform, e.g. linux/arm64, linux/arm/v7 (docker run --platform)')
    .option('--disk <size>', 'free disk the node must have for the task, e.g. 10g')
    .option('--prefer-local', "run on this machine's own node while it keeps --local-headroom, else on the best other node")
    .option(
      '--local-headroom <pct|size>',
      "with --prefer-local: what this machine's node must keep free, e.g. 20% of its memory or 4g (default: the server's, 20%)",
    );
}

/**
 * Parses `key=value` or `key!=value`.
 * @throws CutterError INVALID_ARGUMENT naming the flag and the expected form.
 */
export function parseConstraint(text: string): Constraint {
  const m = /^([^=!\s]+)(!=|=)(.*)$/.exec(text.trim());
  const parsed = m ? ConstraintSchema.safeParse({ key: m[1], op: m[2], value: m[3] }) : null;
  if (!parsed?.success)
    throw new CutterError(
      'INVALID_ARGUMENT',
      `--constraint ${text}: expected key=value or key!=value (key up to 64 characters without = ! or spaces, value up to 256)`,
    );
  return parsed.data;
}

/**
 * Parses `--local-headroom`: `20%` (of the local node's memory) or a size (`4g`).
 * @throws CutterError INVALID_ARGUMENT.
 */
export function parseHeadroomFlag(text: string): Headroom {
  try {
    return parseHeadroom(text);
  } catch (err) {
    throw new CutterError('INVALID_ARGUMENT', `--local-headroom: ${(err as Error).message}`);
  }
}

/**
 * The placement fields of a task's requirements from the flags.
 * @param platform `--platform` (cutter's, else docker run's), or the platform of the local image.
 * @param configuredMachineId the CLI config's `machineId` (env CUTTER_MACHINE_ID), else this machine's.
 * @throws CutterError INVALID_ARGUMENT naming the flag at fault.
 */
export function placementRequirements(
  flags: PlacementFlags,
  platform: string | Platform | undefined,
  configuredMachineId?: string,
): Partial<Requirements> {
  const out: Partial<Requirements> = { machineId: machineId(configuredMachineId) };
  if (flags.constraint?.length) out.constraints = flags.constraint.map(parseConstraint);
  if (typeof platform === 'string') {
    try {
      out.platform = parsePlatform(platform);
    } catch (err) {
      throw new CutterError('INVALID_ARGUMENT', `--platform: ${(err as Error).message}`);
    }
  } else if (platform) out.platform = platform;
  if (flags.disk !== undefined) {
    try {
      out.disk = parseBytes(flags.disk);
    } catch (err) {
      throw new CutterError('INVALID_ARGUMENT', `--disk ${flags.disk}: ${(err as Error).message}`);
    }
  }
  if (flags.preferLocal) out.preferLocal = true;
  if (flags.localHeadroom !== undefined) out.localHeadroom = parseHeadroomFlag(flags.localHeadroom);
  return out;
}

/** How long the CLI asks its own Docker engine about an image, ms: past that, the task goes without. */
const INSPECT_MS = 1_500;

/**
 * The platform of `image` when this machine's Docker engine has it and it was built here (no
 * `RepoDigests`: it came from no registry, so it exists for this one platform and a node must
 * run that platform, e.g. after `cutter image push`). An image pulled from a registry may be a
 * multi-platform index of which only this machine's platform is here: its tag runs elsewhere
 * too, so nothing is said. `docker image inspect` → `Os`, `Architecture`, `Variant`, asked over the
 * engine's socket without dockerode (./local-engine.ts) unless only dockerode can reach it.
 * @returns null when there is no engine, no such image, or it came from a registry. Never throws.
 */
export async function localImagePlatform(image: string, docker?: Docker): Promise<Platform | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const address = docker ? null : engineAddress();
    let info: Record<string, unknown> | null;
    if (address) info = await inspectImage(address, image, INSPECT_MS);
    else {
      // A TLS or SSH engine (or a given client): dockerode, loaded only here.
      const engine = docker ?? new (await import('dockerode')).default();
      const late = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), INSPECT_MS);
      });
      info = (await Promise.race([engine.getImage(image).inspect(), late])) as Record<string, unknown> | null;
    }
    if (!info) return null;
    const { Os: os, Architecture: architecture, Variant: variant, RepoDigests: digests } = info;
    if (
      (Array.isArray(digests) && digests.length > 0) ||
      typeof os !== 'string' ||
      !os ||
      typeof architecture !== 'string' ||
      !architecture
    )
      return null;
    return { os, architecture, ...(typeof variant === 'string' && variant ? { variant } : {}) };
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
