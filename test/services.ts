/**
 * The optional services a test may need, in one place: each is looked up on the PATH (never by an
 * absolute path) and comes with the one line that says what to install (Debian package names).
 *
 * A test that needs one asks `needs(...)` and skips with the reason in its name:
 *
 *   const engine = needs('docker');
 *   describe.skipIf(engine.skip)(`docker tasks${engine.tag}`, () => { … });
 *
 * so the report reads "docker tasks [skipped: needs docker engine — apt-get install docker.io …]",
 * and the skip-summary reporter (test/skip-summary.ts) tallies the tags at the end of the run.
 * With CUTTER_REQUIRE_ALL=1 (CI, .ci/run) a missing service throws instead, with the same install
 * line, so nothing is skipped there. CUTTER_REQUIRE_DOCKER=1, its older name for the Docker engine
 * alone, still requires the engine.
 *
 * No vitest import: vitest.config.ts uses this module too (the e2e-mosquitto pass needs mosquitto).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { postgresBinDir } from '../scripts/postgres.js';

export type ServiceId =
  | 'docker'
  | 'compose'
  | 'mosquitto'
  | 'redis'
  | 'chromium'
  | 'prometheusParser'
  | 'systemdAnalyze'
  | 'netns'
  | 'curl'
  | 'cgroupLimits'
  | 'zsh'
  | 'npmRegistry'
  | 'fish'
  | 'promtool'
  | 'postgres';

interface ServiceSpec {
  /** Short name shown in the skip tag ("needs <label>"); no `]` and no ` — `. */
  label: string;
  /** What to install or do, one line. */
  install: string;
  /** null when usable, else why not (one short phrase). */
  probe(): string | null;
}

/** The absolute path of `name` found on the PATH, or null. */
export function onPath(name: string): string | null {
  return allOnPath(name)[0] ?? null;
}

/** Every executable called `name` on the PATH, in PATH order (a pyenv shim first, Debian's after it). */
export function allOnPath(name: string): string[] {
  const found: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile() && !found.includes(p)) found.push(p);
    } catch {
      // not here
    }
  }
  return found;
}

/**
 * The first python3 on the PATH that can import the Prometheus parser, or null. Not simply the first
 * python3: a pyenv or venv python3 ahead of Debian's does not see Debian's python3-prometheus-client.
 */
export function pythonWithPrometheusParser(): string | null {
  return allOnPath('python3').find((py) => succeeds(py, ['-c', 'import prometheus_client.parser'])) ?? null;
}

/** Runs a command found on the PATH; true when it exits 0 within 20 s. */
function succeeds(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

/** null when every command is on the PATH, else "no X on the PATH". */
function commands(...names: string[]): string | null {
  const missing = names.filter((n) => !onPath(n));
  return missing.length ? `no ${missing.join(', ')} on the PATH` : null;
}

const SPECS: Record<ServiceId, ServiceSpec> = {
  docker: {
    label: 'docker engine',
    install: 'apt-get install docker.io busybox-static, and start dockerd',
    probe: () =>
      commands('docker') ??
      (succeeds('docker', ['version', '--format', '{{.Server.Version}}']) ? null : 'no Docker engine answers `docker version`'),
  },
  compose: {
    label: 'docker compose',
    install: 'apt-get install docker-compose',
    probe: () =>
      succeeds('docker', ['compose', 'version']) || succeeds('docker-compose', ['version'])
        ? null
        : 'neither `docker compose` nor docker-compose runs',
  },
  mosquitto: {
    label: 'mosquitto',
    install: 'apt-get install mosquitto mosquitto-clients',
    probe: () => commands('mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'mosquitto_passwd'),
  },
  redis: { label: 'redis-server', install: 'apt-get install redis-server', probe: () => commands('redis-server', 'redis-cli') },
  chromium: {
    label: 'chromium',
    install: 'apt-get install chromium',
    probe: () => commands('chromium') ?? (succeeds('chromium', ['--version']) ? null : '`chromium --version` fails'),
  },
  prometheusParser: {
    label: 'Prometheus parser',
    install: 'apt-get install python3-prometheus-client',
    probe: () =>
      commands('python3') ?? (pythonWithPrometheusParser() ? null : 'no python3 on the PATH can import prometheus_client.parser'),
  },
  systemdAnalyze: {
    label: 'systemd-analyze',
    install: 'apt-get install systemd',
    probe: () => commands('systemd-analyze') ?? (succeeds('systemd-analyze', ['--version']) ? null : '`systemd-analyze --version` fails'),
  },
  netns: {
    label: 'ip netns',
    install: 'apt-get install iproute2, and run the tests as root',
    probe: () => {
      if (process.getuid?.() !== 0) return 'not running as root';
      const missing = commands('ip');
      if (missing) return missing;
      const probe = `cutter-probe-${process.pid}`;
      const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
      if (r.status !== 0) return `ip netns add failed: ${(r.stderr ?? '').trim()}`;
      spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
      return null;
    },
  },
  curl: { label: 'curl', install: 'apt-get install curl', probe: () => commands('curl') },
  npmRegistry: {
    label: 'the npm registry',
    install: 'a network path to the npm registry (npm ping must answer)',
    probe: () => commands('npm') ?? (succeeds('npm', ['ping']) ? null : '`npm ping` gets no answer'),
  },
  zsh: { label: 'zsh', install: 'apt-get install zsh', probe: () => commands('zsh') },
  fish: { label: 'fish', install: 'apt-get install fish', probe: () => commands('fish') },
  promtool: { label: 'promtool', install: 'apt-get install prometheus', probe: () => commands('promtool') },
  postgres: {
    label: 'postgresql',
    install: 'apt-get install -y postgresql',
    probe: () => (postgresBinDir() ? null : 'no initdb and pg_ctl under /usr/lib/postgresql/*/bin or on the PATH'),
  },
  cgroupLimits: {
    label: 'cgroup memory and cpu limits',
    install: 'run the tests as root on Linux with the memory and cpu cgroup controllers mounted (v2, or v1 memory and cpu)',
    probe: () => {
      if (process.platform !== 'linux') return 'not Linux';
      if (process.getuid?.() !== 0) return 'not running as root';
      let mountinfo = '';
      try {
        mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
      } catch {
        return 'no /proc/self/mountinfo';
      }
      const v1 = (c: string) => mountinfo.split('\n').some((l) => / - cgroup /.test(l) && l.split(' ').at(-1)?.split(',').includes(c));
      if (v1('memory') && v1('cpu')) return null;
      const v2 = mountinfo
        .split('\n')
        .find((l) => / - cgroup2 /.test(l))
        ?.split(' ')[4];
      let controllers = '';
      try {
        controllers = v2 ? readFileSync(`${v2}/cgroup.controllers`, 'utf8') : '';
      } catch {
        // none
      }
      return /\bmemory\b/.test(controllers) && /\bcpu\b/.test(controllers) ? null : 'no memory and cpu cgroup controllers mounted';
    },
  },
};

const probed = new Map<ServiceId, string | null>();

/** Why `id` is not usable here (one phrase), or null when it is. Probed once per process. */
export function whyMissing(id: ServiceId): string | null {
  if (!probed.has(id)) probed.set(id, SPECS[id].probe());
  return probed.get(id) ?? null;
}

/** The skip tag for a missing service, e.g. "[skipped: needs mosquitto — apt-get install mosquitto mosquitto-clients]". */
export function skipTag(id: ServiceId): string {
  return `[skipped: needs ${SPECS[id].label} — ${SPECS[id].install}]`;
}

/** The label and install line of a service, as the tags show them. */
export function describeService(id: ServiceId): { label: string; install: string } {
  return { label: SPECS[id].label, install: SPECS[id].install };
}

/** Whether a missing service is a failure rather than a skip (CUTTER_REQUIRE_ALL=1; CUTTER_REQUIRE_DOCKER=1 for the engine). */
export function required(id: ServiceId): boolean {
  return process.env.CUTTER_REQUIRE_ALL === '1' || (id === 'docker' && process.env.CUTTER_REQUIRE_DOCKER === '1');
}

/**
 * What a test needing `ids` does here: `skip` when one is missing, and `tag` to append to its name
 * (" [skipped: needs … — …]" per missing service, "" when none is missing).
 * @throws Error naming the service, why it is missing and what to install, when one is missing and
 *   required (CUTTER_REQUIRE_ALL=1).
 */
export function needs(...ids: ServiceId[]): { skip: boolean; tag: string } {
  const missing = ids.filter((id) => whyMissing(id) !== null);
  for (const id of missing) {
    if (required(id)) {
      const env = process.env.CUTTER_REQUIRE_ALL === '1' ? 'CUTTER_REQUIRE_ALL=1' : 'CUTTER_REQUIRE_DOCKER=1';
      throw new Error(`${env} but ${SPECS[id].label} is missing (${whyMissing(id)}): ${SPECS[id].install}`);
    }
  }
  return { skip: missing.length > 0, tag: missing.map((id) => ` ${skipTag(id)}`).join('') };
}
