/** `cutter server`'s config: its keys and the checks that span several of them. */
import { z } from 'zod';
import { parseHeadroom } from '../headroom.js';
import { IPV4_PATTERN } from '../schemas/node.js';
import { BrokerUrlsSchema } from '../broker-urls.js';
import { Bool, CommonConfigSchema, DurationSchema, Int, SizeSchema, defaultDataDir } from './common.js';

/** Port of the TLS (`mqtts://`) listener when `tlsCert` is given without `tlsPort`. */
export const DEFAULT_TLS_PORT = 8883;

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
   * How long the broker waits for the controller's own link to drain before cutting it: Aedes
   * delivers each message to its subscribers in turn, so this bounds how long a frozen reader
   * there can stall everyone else. Network clients never make it wait (`brokerMaxQueuedBytes`).
   */
  brokerDrainTimeoutMs: DurationSchema.default(2_000),
  /**
   * Bytes a network client may have waiting unsent before the broker cuts it as a reader that does
   * not keep up (like Mosquitto's max_queued_bytes); delivery to everyone else never waits for it.
   * A client with a persistent session gets its unacknowledged QoS 1 messages again when it reconnects.
   */
  brokerMaxQueuedBytes: SizeSchema.default(32 * 1024 * 1024),
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
  externalBroker: BrokerUrlsSchema.optional(),
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
  /**
   * Where the controller's state lives: `sqlite` (the default: a database under `dataDir`) or a
   * PostgreSQL URL (`postgres://user@host/db`, password from PGPASSWORD or ~/.pgpass): several
   * servers may then share it, one leading under a lease and the others standing by (controller/leadership.ts).
   */
  state: z
    .string()
    .max(2_000)
    .regex(/^(sqlite$|postgres(ql)?:\/\/)/, 'must be sqlite or a postgres:// URL')
    .default('sqlite'),
  /** With PostgreSQL state: the leader's lease, ms (renewed every third of it); a leader that cannot renew stops assigning within it. */
  leaderLeaseMs: DurationSchema.default(3_000),
  /** How long an agent has to accept an assignment, ms. */
  leaseMs: Int(100, 3_600_000).default(10_000),
  /** Placement policy among feasible nodes. */
  policy: z.enum(['spread', 'binpack']).default('spread'),
  /** Place a task on the submitting machine's own node while it keeps `localHeadroom` (`cutter run --prefer-local` per task). */
  preferLocal: Bool.default(false),
  /** What the local node must keep free for `preferLocal`: a share of its memory (`20%`) or a size (`4g`). */
  localHeadroom: z
    .string()
    .default('20%')
    .transform((v, ctx) => {
      try {
        return parseHeadroom(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  /** How many finished tasks the controller keeps (on disk, in memory and retained). */
  keepFinished: Int(1, 1_000_000).default(1_000),
  /** Where the controller keeps its state (tasks, logs, drained nodes). */
  dataDir: z.string().min(1).default(defaultDataDir()),
  /** Log output kept per task, bytes. */
  maxLogBytes: SizeSchema.default(4 * 1024 * 1024),
  /** Free space in the data dir below which new work is refused (STORAGE_UNAVAILABLE) until there is room again, bytes; 0 = no check. */
  minFreeBytes: SizeSchema.default(64 * 1024 * 1024),
  /** Nodes offline this long, with no unfinished task, are forgotten (their Home Assistant devices too); 0 = never. */
  forgetAfterMs: DurationSchema.default(7 * 24 * 3_600_000),
  /** Serve the Ollama-compatible HTTP API (Ollama's /api/* and OpenAI's /v1/*). */
  ollamaApi: Bool.default(true),
  /** Address the Ollama-compatible API binds: loopback by default, like Ollama (it has no authentication). */
  ollamaHost: z.string().default('127.0.0.1'),
  /** Port of the Ollama-compatible API (Ollama's own default). */
  ollamaPort: Int(0, 65535).default(11434),
  /**
   * Browser origins allowed to call the Ollama-compatible API beside Ollama's loopback defaults,
   * comma-separated like Ollama's OLLAMA_ORIGINS (`*` = any origin; one `*` in an origin is a
   * wildcard); see controller/ollama-api/cors.ts.
   */
  ollamaOrigins: z.string().max(10_000).optional(),
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
  /** Interface forwarded ports (`cutter run -p`) listen on: loopback unless you open them (never the broker's `host`). */
  forwardHost: z.string().default('127.0.0.1'),
  /**
   * Behind an external broker the server cannot see which address an agent connects from; with this
   * on, a port forward dials the address the node announces (--advertise-address) instead of being
   * refused. Still only ports the node's current attempt declared. Trusts agent tokens to name their own address.
   */
  forwardTrustAnnounced: Bool.default(false),
  /**
   * Wake-on-LAN: send a magic packet to a sleeping node (offline, its MAC known) when queued work
   * fits it and nothing awake (controller/wake.ts). Off by default: the server sends broadcasts only when asked.
   */
  wakeOnLan: Bool.default(false),
  /** Send every magic packet (automatic and `cutter nodes wake`) to this IPv4 address instead of the node's broadcast address. */
  wakeAddress: z.string().regex(IPV4_PATTERN, 'an IPv4 address').optional(),
  /** UDP port of magic packets (Wake-on-LAN's usual port is 9). */
  wakePort: Int(1, 65535).default(9),
  /** At most one automatic magic packet per node per this long. */
  wakeCooldownMs: DurationSchema.default(60_000),
  /**
   * Who sends a magic packet: `auto` the server when the node's LAN is one of its own networks,
   * else an online agent on that LAN; `agent` always such an agent (a server in a container, whose
   * bridge network reaches no LAN). `wakeAddress` makes the server send it itself either way.
   */
  wakeVia: z.enum(['auto', 'agent']).default('auto'),
  /** With `tlsCert`, also open the plain TCP (and plain `ws://`) listener: off, so tokens never travel in the clear. */
  plainListener: Bool.default(false),
}).superRefine((cfg, ctx) => {
  for (const message of serverConfigConflicts(cfg)) ctx.addIssue({ code: 'custom', path: [], message });
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;

/** A key and its flag, as messages name them: `tlsCert (--tls-cert)`. */
const flag = (key: string) => `${key} (--${key.replace(/([A-Z])/g, '-$1').toLowerCase()})`;

/** Whether two listen addresses can clash: equal, or one of them is every interface. */
const overlap = (a: string, b: string) => a === b || [a, b].some((h) => h === '0.0.0.0' || h === '::' || h === '');

/**
 * The combinations of server settings that cannot work together, each as a message naming the keys
 * and their flags (a TLS certificate without its key, `--broker-only` without `--redis`, an external
 * broker with options only the embedded broker has, two listeners on one port …).
 * @param cfg the parsed settings (defaults applied; `tlsPort` not yet defaulted).
 * @returns one message per conflict, empty when the settings fit together.
 */
export function serverConfigConflicts(cfg: ServerConfig): string[] {
  const out: string[] = [];
  if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey))
    out.push(cfg.tlsCert ? `${flag('tlsCert')} is set without ${flag('tlsKey')}` : `${flag('tlsKey')} is set without ${flag('tlsCert')}`);
  if (!cfg.tlsCert && (cfg.tlsPort !== undefined || cfg.tlsCa || cfg.tlsClientCert))
    out.push(`${flag('tlsPort')}, ${flag('tlsCa')} and ${flag('tlsClientCert')} need ${flag('tlsCert')} and ${flag('tlsKey')}`);
  if (cfg.tlsClientCert && !cfg.tlsCa)
    out.push(`${flag('tlsClientCert')} needs ${flag('tlsCa')}: the CA client certificates must be signed by`);
  if (cfg.wsTls && !cfg.tlsCert) out.push(`${flag('wsTls')} needs ${flag('tlsCert')} and ${flag('tlsKey')}`);
  if (cfg.wsTls && cfg.wsPort === undefined) out.push(`${flag('wsTls')} needs ${flag('wsPort')}`);
  if (cfg.brokerOnly && !cfg.redis)
    out.push('brokerOnly needs redis (--redis): a broker alone (--broker-only), without the controller, carries no mesh');
  if (cfg.redis && cfg.externalBroker)
    out.push(`${flag('redis')} clusters the embedded broker; it cannot be combined with externalBroker (--broker)`);
  if (cfg.externalBroker) {
    const embeddedOnly = (['tlsCert', 'tlsKey', 'tlsPort', 'tlsCa', 'wsPort', 'tlsClientCert', 'wsTls', 'brokerOnly'] as const).filter(
      (k) => cfg[k] !== undefined && cfg[k] !== false,
    );
    if (embeddedOnly.length > 0)
      out.push(
        `${embeddedOnly.map(flag).join(', ')} configure the embedded broker; they cannot be combined with externalBroker (--broker)`,
      );
  }
  // Listeners on one port: the broker's (TCP, TLS, WebSocket, on `host`), HTTP and the Ollama API.
  const listeners: { key: string; port: number | undefined; host: string }[] = [
    ...(cfg.externalBroker
      ? []
      : [
          { key: 'port', port: cfg.port, host: cfg.host },
          { key: 'tlsPort', port: cfg.tlsCert ? (cfg.tlsPort ?? DEFAULT_TLS_PORT) : undefined, host: cfg.host },
          { key: 'wsPort', port: cfg.wsPort, host: cfg.host },
        ]),
    { key: 'httpPort', port: cfg.brokerOnly ? undefined : cfg.httpPort, host: cfg.httpHost },
    { key: 'ollamaPort', port: cfg.ollamaApi && !cfg.brokerOnly ? cfg.ollamaPort : undefined, host: cfg.ollamaHost },
  ];
  for (const [i, a] of listeners.entries()) {
    for (const b of listeners.slice(i + 1)) {
      if (a.port && a.port === b.port && overlap(a.host, b.host))
        out.push(`${flag(a.key)} and ${flag(b.key)} are both ${a.port}: two listeners cannot share a port`);
    }
  }
  return out;
}
