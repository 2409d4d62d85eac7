/**
 * Configuration: command-line flags > `CUTTER_*` environment variables > config file > defaults,
 * validated with zod. A bad value is reported with its key and where it came from, e.g.
 * `invalid config: maxMemory = "lots" (from env CUTTER_MAX_MEMORY): "lots" is not a size …`.
 *
 * The config file is JSON (`--config PATH`, `CUTTER_CONFIG`, or `~/.config/cutter/config.json`
 * when present): top-level keys apply to every command, and a section named after the command
 * (`server`, `agent`, `cli`) overrides them. Keys are camelCase; env names are `CUTTER_` + the key
 * in UPPER_SNAKE (`maxMemory` → `CUTTER_MAX_MEMORY`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { CutterError } from './errors.js';
import { ID_RE } from './topics.js';
import { parseBytes } from './units.js';

/** A size in bytes given as a number or text like `12g` (Docker's units). */
export const SizeSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseBytes(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const Bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const Int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Keys every command shares. */
export const CommonConfigSchema = z.object({
  /** Broker URL the agent and CLI dial, and the controller uses with `--broker`. */
  broker: z.string().url().default('mqtt://127.0.0.1:1883'),
  /** Topic prefix (`{prefix}/v1/…`). */
  prefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^+#]+$/)
    .default('cutter'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** A JSON file with `{"username", "password"}` (what `cutter token create --json` prints). */
  tokenFile: z.string().optional(),
  /**
   * PEM file of the CA that signed the broker's certificate, for `mqtts://` and `wss://` URLs with a
   * private CA (a self-signed server). Without it the system's CAs are trusted.
   */
  caFile: z.string().min(1).optional(),
  /** PEM client certificate, for a broker that requires one (`cutter server --tls-client-cert`). */
  certFile: z.string().min(1).optional(),
  /** PEM private key of `certFile`. */
  keyFile: z.string().min(1).optional(),
});

/** A duration in ms given as a number or text like `500ms`, `30s`, `10m`, `2h`. */
export const DurationSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration: use a number with ms, s, m or h (e.g. 30s, 10m)` });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms']!);
});

/** The default data directory: `$XDG_DATA_HOME/cutter` or `~/.local/share/cutter`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'cutter');
}

/** `cutter server`: embedded broker + controller. */
export const ServerConfigSchema = CommonConfigSchema.extend({
  /** Interface the embedded broker listens on. */
  host: z.string().default('0.0.0.0'),
  /** TCP port of the embedded broker. */
  port: Int(0, 65535).default(1883),
  /** Largest MQTT packet the embedded broker accepts, bytes (checked before it is buffered). */
  maxPacketBytes: SizeSchema.default(4 * 1024 * 1024),
  /** Largest first packet (CONNECT), bytes. */
  maxConnectBytes: SizeSchema.default(64 * 1024),
  /**
   * How long the broker waits for a subscriber's socket to drain before cutting that subscriber:
   * Aedes delivers each message to its subscribers in turn, so this bounds how long one frozen
   * client can stall everyone else.
   */
  brokerDrainTimeoutMs: DurationSchema.default(2_000),
  /** Most concurrent connections on the embedded broker. */
  maxConnections: Int(1, 1_000_000).default(10_000),
  /** TLS (`mqtts://`) listener port; default 8883 when `tlsCert` is given. */
  tlsPort: Int(0, 65535).optional(),
  /** PEM certificate (chain) of the broker's TLS and `wss://` listeners; enables the TLS listener. */
  tlsCert: z.string().min(1).optional(),
  /** PEM private key of `tlsCert`. */
  tlsKey: z.string().min(1).optional(),
  /** PEM CA bundle that client certificates must be signed by (with `tlsClientCert`). */
  tlsCa: z.string().min(1).optional(),
  /** Require a client certificate signed by `tlsCa` on the TLS listeners (username/password still apply). */
  tlsClientCert: Bool.default(false),
  /** WebSocket listener port (path `/mqtt`), for browsers; off unless given. */
  wsPort: Int(0, 65535).optional(),
  /** Serve the WebSocket listener as `wss://` with the TLS certificate. */
  wsTls: Bool.default(false),
  /** Requests (of any kind) one client may publish a minute before the broker cuts it (bursts of a 30th). */
  brokerRequestsPerMinute: Int(10, 100_000_000).default(6_000),
  /** Submissions per identity per minute (bursts up to as many); more are refused with RATE_LIMITED. */
  submitsPerMinute: Int(1, 1_000_000).default(120),
  /** Let anonymous clients in with full rights (prints a warning at every start). */
  insecure: Bool.default(false),
  /** Use this external broker instead of embedding one (scale-out path). */
  externalBroker: z.string().url().optional(),
  /**
   * Cluster the embedded Aedes through this Redis (`redis://host:6379/0`): every server sharing it
   * carries one mesh (retained state, sessions, wills and messages in Redis; see broker/cluster.ts).
   */
  redis: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  /** Run only the (Redis-clustered) broker, no controller: one controller serves the whole cluster. */
  brokerOnly: Bool.default(false),
  /** How long an agent has to accept an assignment, ms. */
  leaseMs: Int(100, 3_600_000).default(10_000),
  /** Placement policy among feasible nodes. */
  policy: z.enum(['spread', 'binpack']).default('spread'),
  /** How many finished tasks the controller keeps (on disk, in memory and retained). */
  keepFinished: Int(1, 1_000_000).default(1_000),
  /** Where the controller keeps its state (tasks, logs, drained nodes). */
  dataDir: z.string().min(1).default(defaultDataDir()),
  /** Log output kept per task, bytes. */
  maxLogBytes: SizeSchema.default(4 * 1024 * 1024),
  /** Serve the Ollama-compatible HTTP API (Ollama's /api/* and OpenAI's /v1/*). */
  ollamaApi: Bool.default(true),
  /** Address the Ollama-compatible API binds: loopback by default, like Ollama (it has no authentication). */
  ollamaHost: z.string().default('127.0.0.1'),
  /** Port of the Ollama-compatible API (Ollama's own default). */
  ollamaPort: Int(0, 65535).default(11434),
  /** YAML or JSON file of model placement rules (see shared/ollama.ts). */
  ollamaPlacement: z.string().min(1).optional(),
  /** After a restart, how long nodes have to report back before their tasks count as disconnected, ms. */
  startupGraceMs: DurationSchema.default(10_000),
  /** Publish Home Assistant MQTT discovery for every node (`--no-ha` turns it off). */
  ha: Bool.default(true),
  /** Home Assistant's discovery prefix (HA's MQTT integration option; default `homeassistant`). */
  haPrefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_-]+$/, 'one topic level of A-Z a-z 0-9 _ -')
    .default('homeassistant'),
  /** Publish discovery and node state to this broker (the one HA uses, e.g. Mosquitto) as an MQTT 5 client, instead of the server's own. */
  haBroker: z.string().url().optional(),
  /** Credentials on `haBroker`. */
  haUsername: z.string().optional(),
  haPassword: z.string().optional(),
  /** A JSON file with `{"username", "password"}` for `haBroker`. */
  haTokenFile: z.string().optional(),
  /** PEM CA that signed the certificate of an `mqtts://` `haBroker` (a private CA); default: the system's CAs. */
  haCaFile: z.string().min(1).optional(),
  /** A node offline this long is removed from Home Assistant (its discovery config cleared); 0 = never. */
  haRemoveAfterMs: DurationSchema.default(7 * 24 * 3_600_000),
  /** HTTP port of `/metrics` (Prometheus) and the dashboard; 0 = no HTTP server. */
  httpPort: Int(0, 65535).default(8088),
  /** Interface of the HTTP server (the dashboard has no login: loopback unless you open it). */
  httpHost: z.string().default('127.0.0.1'),
});

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
      if (typeof v !== 'string') return v;
      const labels = parseLabels(v);
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
  /** Execution policy: image patterns allowed here (comma separated in env and flags; `*` wildcards); empty = any. */
  allowedImages: z
    .union([z.array(z.string()), z.string()])
    .transform((v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    )
    .default([]),
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
  execAllowlist: z
    .union([z.array(z.string()), z.string()])
    .transform((v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    )
    .default([]),
  /** File transfer (`cutter cp`): directories files may be read from and written to (comma separated); empty = file transfer off. */
  filesAllow: z
    .union([z.array(z.string()), z.string()])
    .transform((v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    )
    .default([]),
  /** File transfer: directories refused even inside an allowed one (deny wins). */
  filesDeny: z
    .union([z.array(z.string()), z.string()])
    .transform((v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    )
    .default([]),
  /**
   * Port forwarding (`cutter run -p`): the address the server dials to reach this node's published
   * ports; unset = this node is not reachable from the server (behind NAT) and forwards are refused.
   */
  advertiseAddress: z.string().min(1).max(255).optional(),
  /** File transfer and image sync: largest file sent or received, bytes (`4g`). */
  filesMaxSize: SizeSchema.default(4 * 1024 * 1024 * 1024),
});

/** Short-lived CLI commands. */
export const CliConfigSchema = CommonConfigSchema.extend({
  /** How long to wait for the broker and the controller's reply, ms. */
  timeoutMs: Int(100, 600_000).default(5_000),
});

export type CommonConfig = z.infer<typeof CommonConfigSchema>;
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
export type CliConfig = z.infer<typeof CliConfigSchema>;

/** The hostname reduced to id characters (`My Laptop.local` → `My-Laptop.local`). */
export function defaultNodeId(): string {
  const id = hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 64);
  return id || 'node';
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
  return out;
}

const toEnvName = (key: string) => `CUTTER_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;

/** Path of the config file in effect, or null. */
export function configFilePath(explicit: string | undefined, env: NodeJS.ProcessEnv): string | null {
  const path = explicit ?? env.CUTTER_CONFIG;
  if (path) return path;
  const fallback = join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'cutter', 'config.json');
  return existsSync(fallback) ? fallback : null;
}

/**
 * Resolves a command's configuration.
 * @param schema one of the `*ConfigSchema` objects above.
 * @param section config-file section for this command (`server`, `agent`, `cli`).
 * @param flags values given on the command line (undefined = not given).
 * @throws CutterError `INVALID_CONFIG` naming the key, the bad value and its source.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  section: string,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  configPath?: string,
): z.infer<S> {
  const merged: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  const keys = Object.keys(schema.shape);

  const path = configFilePath(configPath, env);
  if (path) {
    let file: Record<string, unknown>;
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new CutterError('INVALID_CONFIG', `cannot read config file ${path}: ${(err as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new CutterError('INVALID_CONFIG', `config file ${path} must hold a JSON object of settings`);
    }
    const sectionValues = (file[section] ?? {}) as Record<string, unknown>;
    if (typeof sectionValues !== 'object' || sectionValues === null || Array.isArray(sectionValues)) {
      throw new CutterError('INVALID_CONFIG', `config file ${path}: "${section}" must be an object of settings`);
    }
    for (const key of keys) {
      for (const [value, where] of [
        [file[key], `config file ${path}`],
        [sectionValues[key], `config file ${path} (${section}.${key})`],
      ] as const) {
        if (value !== undefined) {
          merged[key] = value;
          source[key] = where;
        }
      }
    }
  }
  for (const key of keys) {
    const name = toEnvName(key);
    if (env[name] !== undefined && env[name] !== '') {
      merged[key] = env[name];
      source[key] = `env ${name}`;
    }
  }
  for (const key of keys) {
    if (flags[key] !== undefined) {
      merged[key] = flags[key];
      source[key] = `flag --${key.replace(/([A-Z])/g, '-$1').toLowerCase()}`;
    }
  }
  let parsed: ReturnType<S['safeParse']>;
  try {
    parsed = schema.safeParse(merged) as ReturnType<S['safeParse']>;
  } catch (err) {
    throw new CutterError('INVALID_CONFIG', `invalid config: ${(err as Error).message}`);
  }
  if (!parsed.success) {
    const issue = parsed.error!.issues[0];
    const key = String(issue.path[0] ?? '');
    const shown = key in merged ? ` = ${JSON.stringify(merged[key])}` : '';
    throw new CutterError(
      'INVALID_CONFIG',
      `invalid config: ${key}${shown}${source[key] ? ` (from ${source[key]})` : ''}: ${issue.message}`,
    );
  }
  return withCredentials(parsed.data as z.infer<S>, source, section);
}

/**
 * Fills `username`/`password` from `tokenFile` when given, else — for commands on the server's
 * machine — from the admin credentials the server wrote on its first start
 * (`<data dir>/admin.json`), unless they are set already.
 * @throws CutterError INVALID_CONFIG when the token file cannot be read.
 */
function withCredentials<T>(cfg: T, source: Record<string, string>, section: string): T {
  const c = cfg as T & { username?: string; password?: string; tokenFile?: string };
  if (c.username) return cfg;
  const file = c.tokenFile ?? join(defaultDataDir(), 'admin.json');
  if (!c.tokenFile && (section !== 'cli' || !existsSync(file))) return cfg;
  try {
    const creds = JSON.parse(readFileSync(file, 'utf8')) as { username?: unknown; password?: unknown };
    if (typeof creds.username !== 'string' || typeof creds.password !== 'string') throw new Error('expected {"username", "password"}');
    return { ...cfg, username: creds.username, password: creds.password };
  } catch (err) {
    if (!c.tokenFile) return cfg;
    throw new CutterError(
      'INVALID_CONFIG',
      `invalid config: tokenFile = "${c.tokenFile}"${source.tokenFile ? ` (from ${source.tokenFile})` : ''}: ${(err as Error).message}`,
    );
  }
}
