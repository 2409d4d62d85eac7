/** `cutter agent`'s config. */
import { z } from 'zod';
import { IPV4_PATTERN } from '../schemas/node.js';
import { ID_RE } from '../topics.js';
import { Bool, CommonConfigSchema, DurationSchema, Int, ListSchema, SizeSchema, defaultNodeId } from './common.js';

/** `cutter agent`: one node. */
export const AgentConfigSchema = CommonConfigSchema.extend({
  /** Node id; defaults to the hostname, reduced to the allowed characters. */
  nodeId: z.string().regex(ID_RE, 'node ids are 1-64 characters of A-Z a-z 0-9 _ . -').default(defaultNodeId()),
  /** Heartbeat interval, ms. The controller marks the node offline after 2.5 intervals of silence. */
  heartbeatMs: Int(100, 600_000).default(1_000),
  /** Memory cutter may commit to tasks here (e.g. `12g`); default: all of it. */
  maxMemory: SizeSchema.optional(),
  /** Concurrent tasks. */
  maxTasks: Int(1, 10_000).default(4),
  /** Run `exec` tasks (shell jobs) — off by default: it is remote code execution. */
  allowExec: Bool.default(false),
  /** Key=value labels for placement, comma separated in env/flags (`gpu=rtx4090,site=home`). */
  labels: z
    .union([z.record(z.string(), z.string()), z.string()])
    .transform((v, ctx) => {
      const labels = typeof v === 'string' ? parseLabels(v) : (labelBoundsError(v) ?? v);
      if (typeof labels === 'string') {
        ctx.addIssue({ code: 'custom', message: labels });
        return z.NEVER;
      }
      return labels;
    })
    .default({}),
  /** Keepalive in seconds: the broker fires the last will after 1.5× this without traffic. */
  keepaliveSec: Int(1, 3600).default(2),
  /** How long this node may be disconnected (asleep, roaming) before its tasks are lost and rescheduled (`10m`; 0 = at once). */
  lostAfterMs: DurationSchema.default(0),
  /** On SIGTERM the agent drains: it takes no new tasks and waits this long for running ones before stopping them. */
  drainTimeoutMs: DurationSchema.default(300_000),
  /**
   * How long a docker task waits for a Docker engine that died or hung under it before it ends
   * EXECUTOR_LOST (and is retried by its restart policy), ms (`30s`).
   */
  dockerEngineGraceMs: DurationSchema.default(30_000),
  /** Execution policy: image patterns allowed here (comma separated in env and flags; `*` wildcards); empty = any. */
  allowedImages: ListSchema(),
  /** Execution policy: largest container memory limit accepted (`16g`); containers must set one. */
  maxTaskMemory: SizeSchema.optional(),
  /** Execution policy: memory limit given to containers that set none (`4g`). */
  defaultTaskMemory: SizeSchema.optional(),
  /**
   * Base URL of this node's Ollama server (the `ollama` client does not read OLLAMA_HOST, so it is
   * set here); `off` or empty = do not look for one.
   */
  ollamaUrl: z
    .string()
    .default('http://127.0.0.1:11434')
    .transform((v, ctx) => {
      if (v === '' || v === 'off') return undefined;
      try {
        const u = new URL(v);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
        return v.replace(/\/+$/, '');
      } catch {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not an http(s) URL (e.g. http://127.0.0.1:11434), or "off"` });
        return z.NEVER;
      }
    }),
  /** A file the agent rewrites after every heartbeat the broker accepted (container healthchecks: its age). */
  healthFile: z.string().min(1).optional(),
  /** Execution policy: commands exec tasks may run (argv[0]; comma separated in env and flags); empty = any. */
  execAllowlist: ListSchema(),
  /** File transfer (`cutter cp`): directories files may be read from and written to (comma separated); empty = file transfer off. */
  filesAllow: ListSchema(),
  /** File transfer: directories refused even inside an allowed one (deny wins). */
  filesDeny: ListSchema(),
  /**
   * Port forwarding (`cutter run -p`): the address the server dials to reach this node's published
   * ports; unset = this node is not reachable from the server (behind NAT) and forwards are refused.
   */
  advertiseAddress: z.string().min(1).max(255).optional(),
  /**
   * Wake-on-LAN relayed for a sleeping node on this LAN (the server asks, shared/schemas/wake.ts):
   * send those packets to this IPv4 address instead of the LAN's broadcast address.
   */
  wakeAddress: z.string().regex(IPV4_PATTERN, 'an IPv4 address').optional(),
  /** Wake-on-LAN relayed for another node: this UDP port instead of the one the server names. */
  wakePort: Int(1, 65535).optional(),
  /**
   * This machine's id for `cutter run --prefer-local` (env CUTTER_MACHINE_ID); default: a keyed hash
   * of /etc/machine-id (shared/machine-id.ts). Set it to tell two agents on one machine apart.
   */
  machineId: z.string().min(1).max(128).optional(),
  /** File transfer and image sync: largest file sent or received, bytes (`4g`). */
  filesMaxSize: SizeSchema.default(4 * 1024 * 1024 * 1024),
  /**
   * Volumes (`cutter volume`, `cutter run -v`): the directory holding one subdirectory per volume;
   * unset = `<data dir>/volumes/<node id>`; `off` = no volumes on this node.
   */
  volumesDir: z.string().min(1).max(4096).optional(),
  /** Execution policy: host directories containers may bind-mount (`-v /srv/data:/data`) and exec tasks be pointed at; empty = none. */
  allowHostPath: ListSchema(),
  /** Lending (issue 17, shared/lending.ts): a policy file, YAML or JSON; the `lend*` keys below override its fields. */
  lendPolicy: z.string().min(1).max(4096).optional(),
  /** Lending: take work only on mains power. */
  lendAcOnly: Bool.optional(),
  /** Lending: only when the owner has been idle this many minutes. */
  lendIdleMinutes: Int(0, 10_080).optional(),
  /** Lending: only while the owner's CPU use (minus cutter's tasks) is at most this, %. */
  lendMaxOwnerCpu: Int(0, 100).optional(),
  /** Lending: only while this much memory is available (`2g`). */
  lendMinFreeMemory: SizeSchema.optional(),
  /** Lending: time windows, `;` between them (`mon-fri 22:00-07:00; sat,sun *`). */
  lendWindows: z.string().max(2_000).optional(),
  /** Lending: how long a task stays suspended before it is preempted and placed elsewhere (`10m`). */
  lendPreemptAfterMs: DurationSchema.optional(),
  /** Lending: how often the owner's state is sampled (`5s`). */
  lendSampleMs: DurationSchema.optional(),
  /** Lending: the directory of power supplies (a test double of /sys/class/power_supply). */
  powerSupplyDir: z.string().min(1).max(4096).default('/sys/class/power_supply'),
});

/**
 * Why labels do not fit the node's offer (NodeStatus `offer.labels`: keys 1-64 characters without
 * `=`, `!` or spaces, so `--constraint` can name them; values up to 256), or null.
 */
function labelBoundsError(labels: Record<string, string>): string | null {
  for (const [k, v] of Object.entries(labels)) {
    if (!/^[^=!\s]{1,64}$/.test(k)) return `label key "${k}" must be 1-64 characters without =, ! or spaces`;
    if (v.length > 256) return `label ${k}: values are at most 256 characters`;
  }
  return null;
}

/** Parses `k=v,k2=v2`; returns an error message instead of throwing, for zod to report with the key. */
function parseLabels(v: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) return `label "${part}" must be key=value`;
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return labelBoundsError(out) ?? out;
}

export type AgentConfig = z.infer<typeof AgentConfigSchema>;
