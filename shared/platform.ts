/**
 * Platforms in Docker's names (`os/architecture[/variant]`, as `docker run --platform` and
 * `docker image inspect`'s `Os`/`Architecture`/`Variant` give them), from what Node and the Docker
 * engine report, and whether a task's platform runs on a node's. Sources:
 * - Node's `process.arch` (https://nodejs.org/api/process.html#processarch): `x64`, `arm64`, `arm`,
 *   `ia32`, `ppc64`, `s390x`, `riscv64`, `loong64`; the ARM version of an `arm` build is
 *   `process.config.variables.arm_version` (`'7'`, `'6'`).
 * - `docker info`'s `Architecture` is uname-style (`x86_64`, `aarch64`, `armv7l`), not Docker's
 *   platform names (verified: `x86_64` on amd64, reference/nodes-gpus-lending-facts.md §7).
 * - Docker's platform matcher (containerd `platforms`): `arm64` is `arm64/v8`; an `arm/v7` host
 *   also runs `arm/v6` and `arm/v5` images.
 */
import type { Platform } from './schemas/index.js';

/** Node's `process.arch` → Docker's architecture name (little-endian ppc64 is Docker's `ppc64le`). */
const FROM_NODE: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

/** uname-style machine names (`docker info` Architecture, `uname -m`) → Docker's [architecture, variant]. */
const FROM_UNAME: Record<string, [string, string?]> = {
  x86_64: ['amd64'],
  amd64: ['amd64'],
  aarch64: ['arm64'],
  arm64: ['arm64'],
  armv7l: ['arm', 'v7'],
  armv6l: ['arm', 'v6'],
  armv5tel: ['arm', 'v5'],
  i386: ['386'],
  i686: ['386'],
  ppc64le: ['ppc64le'],
  s390x: ['s390x'],
  riscv64: ['riscv64'],
  loongarch64: ['loong64'],
};

/**
 * The platform this Node process runs on, in Docker's names.
 * @param platform `process.platform` (`linux`, `darwin`, `win32` → `windows`)
 * @param arch `process.arch`
 * @param armVersion `process.config.variables.arm_version` (`'7'`, `'6'`; only for `arm`)
 */
export function platformOfProcess(platform: string, arch: string, armVersion?: unknown): Platform {
  const architecture = FROM_NODE[arch] ?? arch;
  const variant = architecture === 'arm' ? `v${armVersion === '6' || armVersion === 6 ? 6 : 7}` : undefined;
  return { os: platform === 'win32' ? 'windows' : platform, architecture, ...(variant ? { variant } : {}) };
}

/**
 * A Docker engine's platform from `GET /info`: `OSType` (`linux`) and `Architecture` (uname-style).
 * @returns null when either is missing.
 */
export function platformOfEngine(osType: unknown, architecture: unknown): Platform | null {
  if (typeof osType !== 'string' || !osType || typeof architecture !== 'string' || !architecture) return null;
  const [arch, variant] = FROM_UNAME[architecture] ?? [architecture];
  return { os: osType, architecture: arch, ...(variant ? { variant } : {}) };
}

/**
 * Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`) as `docker run --platform` takes it.
 * @throws Error naming the expected form when it is not one.
 */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]{1,32}$/.test(p)))
    throw new Error(`"${text}" is not a platform: use os/architecture[/variant], e.g. linux/amd64, linux/arm64, linux/arm/v7`);
  const [os, architecture, variant] = parts;
  return {
    os,
    architecture: architecture === 'x86_64' ? 'amd64' : architecture === 'aarch64' ? 'arm64' : architecture,
    ...(variant ? { variant } : {}),
  };
}

/** `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * Whether a task built for `want` runs on a node of platform `have`: same os and architecture;
 * `arm64` with or without `v8`; an ARM node of version N runs ARM images of version N and lower.
 */
export function platformRuns(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  const w = want.variant;
  const h = have.variant;
  if (!w || !h || w === h) return true;
  if (want.architecture === 'arm64') return w === 'v8' && h === 'v8';
  if (want.architecture === 'arm') return Number(w.slice(1)) <= Number(h.slice(1));
  return false;
}
