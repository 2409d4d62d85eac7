/**
 * The server, assembled in one place: the embedded MQTT broker (or an external one), the
 * controller, and the extensions the config asks for (controller/extensions/index.ts). `cutter
 * server` (cli/commands/server.ts) parses flags, loads the config and calls `startServer`; tests
 * and the bench call it directly.
 *
 * Start order: broker (loopback link only) → controller → extensions → the broker's public
 * listeners → extensions that need them (the Ollama-compatible API). Stop is the reverse.
 * With `brokerOnly` (a Redis-clustered broker), only the broker runs.
 */
import { join } from 'node:path';
import type { RunningBroker } from '../broker/broker.js';
import { AuditLog } from '../shared/audit.js';
import { DEFAULT_TLS_PORT, type ServerConfig } from '../shared/config.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { setDefaultTls } from '../shared/mqtt.js';
import { loadPlacementFile } from './ollama-placement-file.js';
import { isPostgresUrl } from './pg-schema.js';
import type { Controller } from './controller.js';
import type { Extension, ExtensionContext } from './extensions/extension.js';
import type { ExtensionRunner } from './extensions/index.js';

/** The identity the controller (and the extensions' own clients) use on the embedded broker. */
const INTERNAL_USER = 'controller:internal';

export interface StartServerOptions {
  /** Logger for everything the server runs; default: a new pino logger at `cfg.logLevel` on stdout. */
  log?: Logger;
  /**
   * Replaces the extensions built from the config (tests: none, or a failing one). Called with the
   * context every extension gets.
   */
  extensions?: (ctx: ExtensionContext) => Extension[];
  /**
   * With PostgreSQL state: called once this server's leadership is lost (after the server stopped);
   * the CLI exits so its supervisor starts a standby. Default: nothing more.
   */
  onLeadershipLost?: (why: string) => void;
}

/** A running server. */
export interface RunningServer {
  /** The embedded broker; absent with an external broker. */
  broker?: RunningBroker;
  /** The controller; absent with `brokerOnly`. */
  controller?: Controller;
  /** URL the controller and the extensions reach the broker at (the embedded broker's loopback listener, or the external broker). */
  brokerUrl: string;
  /** Ports bound by the embedded broker, by scheme (`mqtt`, `mqtts`, `ws`, `wss`); empty with an external broker. */
  ports: Partial<Record<'mqtt' | 'mqtts' | 'ws' | 'wss', number>>;
  /** The extensions (which ones run: `extensions.names`); absent with `brokerOnly`. */
  extensions?: ExtensionRunner;
  log: Logger;
  /** With PostgreSQL state: the leadership this server won (controller/leadership.ts). */
  leadership?: import('./leadership.js').Leadership;
  /** Stops the extensions (reverse order), the controller and the broker. Never throws; a failing part is logged. */
  stop(): Promise<void>;
}

/**
 * The embedded broker's TLS and WebSocket listeners from the config (its cross-field rules are
 * checked by the schema, shared/config/server.ts).
 */
function listenerSettings(cfg: ServerConfig) {
  const tls =
    cfg.tlsCert && cfg.tlsKey
      ? {
          port: cfg.tlsPort ?? DEFAULT_TLS_PORT,
          certFile: cfg.tlsCert,
          keyFile: cfg.tlsKey,
          caFile: cfg.tlsCa,
          requireClientCert: cfg.tlsClientCert,
        }
      : undefined;
  const ws = cfg.wsPort !== undefined ? { port: cfg.wsPort, tls: cfg.wsTls } : undefined;
  return { tls, ws };
}

/**
 * Starts the server the config describes.
 * @param cfg a parsed server config (`loadConfig(ServerConfigSchema, 'server', …)` or `ServerConfigSchema.parse`).
 * @returns once the broker listens and every extension was started (or logged as failed).
 * @throws CutterError INVALID_CONFIG for a bad placement file or `haTokenFile`; the broker's or
 *   controller's start error (a taken port, an unreachable external broker). What had started is stopped first.
 */
export async function startServer(cfg: ServerConfig, opts: StartServerOptions = {}): Promise<RunningServer> {
  const modelRules = cfg.ollamaPlacement ? loadPlacementFile(cfg.ollamaPlacement).rules : undefined;
  const log = opts.log ?? createLogger(cfg.logLevel);
  // The controller dials an external broker like any client (mqtts:// with a private CA, a
  // client certificate); the embedded broker's loopback listener is plain TCP.
  if (cfg.externalBroker) setDefaultTls(cfg);
  else if (cfg.caFile || cfg.certFile || cfg.keyFile)
    log.warn(
      'caFile/certFile/keyFile apply only with --broker (an external broker); the embedded broker uses --tls-cert/--tls-key/--tls-ca',
    );
  // Loaded here, not at the top: short CLI commands that import the config should not pay for Aedes and SQLite.
  const [{ startBroker }, { Controller }, { IdentityStore, ensureAdmin }, { topics }, { buildExtensions, ExtensionRunner }] =
    await Promise.all([
      import('../broker/broker.js'),
      import('./controller.js'),
      import('../broker/identities.js'),
      import('../shared/topics.js'),
      import('./extensions/index.js'),
    ]);

  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    while (stops.length > 0) {
      const part = stops.pop()!;
      await part.stop().catch((err: unknown) => log.error({ err, part: part.name }, 'server part failed to stop'));
    }
  };
  try {
    let url = cfg.externalBroker;
    let username = cfg.username;
    let password = cfg.password;
    let broker: RunningBroker | undefined;
    let audit: AuditLog | undefined;
    let identities: InstanceType<typeof IdentityStore> | undefined;
    let controllerRef: Controller | undefined;
    if (!url) {
      identities = new IdentityStore(cfg.dataDir);
      audit = new AuditLog(join(cfg.dataDir, cfg.brokerOnly ? 'audit-broker.jsonl' : 'audit.jsonl'), (fields, msg) =>
        log.warn(fields, msg),
      );
      // Broker-only instances read the tokens the controller's server made (a shared data dir).
      const written = cfg.brokerOnly ? null : ensureAdmin(identities, cfg.dataDir);
      if (written) log.info({ path: written }, 'created the first admin token; the cutter CLI on this machine reads it from there');
      if (cfg.insecure)
        log.warn('--insecure: anonymous clients connect with full rights; anyone who reaches this port can run code on every node');
      username = INTERNAL_USER;
      password = identities.addEphemeral({ username, role: 'controller', name: 'internal' });
      const listeners = listenerSettings(cfg);
      broker = await startBroker({
        host: cfg.host,
        port: cfg.port,
        log,
        maxPacketBytes: cfg.maxPacketBytes,
        maxConnectBytes: cfg.maxConnectBytes,
        maxConnections: cfg.maxConnections,
        drainTimeoutMs: cfg.brokerDrainTimeoutMs,
        maxQueuedBytes: cfg.brokerMaxQueuedBytes,
        tls: listeners.tls,
        ws: listeners.ws,
        plainListener: cfg.plainListener,
        // Without a controller here (--broker-only) there is no assignmentOf: the agent ACL still checks the
        // event's "node", and the controller, on another instance, ignores events of tasks it did not place there.
        auth: {
          store: identities,
          insecure: cfg.insecure,
          audit,
          requestsPerMinute: cfg.brokerRequestsPerMinute,
          acl: {
            t: topics(cfg.prefix),
            haPrefix: cfg.haPrefix,
            ...(cfg.brokerOnly ? {} : { assignmentOf: (taskId: string) => controllerRef?.assignmentOf(taskId) }),
          },
        },
        cluster: cfg.redis ? (await import('../broker/cluster.js')).redisCluster(cfg.redis) : undefined,
      });
      const running = broker;
      stops.push({ name: 'broker', stop: () => running.close() });
      url = `mqtt://127.0.0.1:${broker.internalPort}`;
      if (cfg.redis)
        log.info({ redis: cfg.redis.replace(/\/\/[^@/]*@/, '//***@'), brokerOnly: cfg.brokerOnly }, 'broker clustered through redis');
      if (cfg.brokerOnly) {
        await broker.listen();
        return { broker, brokerUrl: url, ports: { ...broker.ports }, log, stop: stopAll };
      }
    }

    // With PostgreSQL state, stand by here until this server leads (controller/leadership.ts).
    const leadership = isPostgresUrl(cfg.state)
      ? await (await import('./leadership.js')).lead({ ...cfg, state: cfg.state }, log, { stopped: false })
      : null;
    if (leadership) stops.push({ name: 'leadership', stop: () => leadership.stop() });
    const exempt = new Set<string>([INTERNAL_USER]);
    // The controller and the extensions dial the embedded broker in process: no socket on their path.
    const embedded = broker;
    const streamBuilder = embedded ? () => embedded.connectInProcess() : undefined;
    const controller = new Controller({
      streamBuilder,
      modelRules,
      exemptFromRateLimit: (who) => exempt.has(who),
      identities,
      audit,
      submitsPerMinute: cfg.submitsPerMinute,
      whoIs: (clientId) => embedded?.identityOf(clientId),
      brokerUrl: url,
      prefix: cfg.prefix,
      leaseMs: cfg.leaseMs,
      policy: cfg.policy,
      local: { prefer: cfg.preferLocal, headroom: cfg.localHeadroom },
      keepFinished: cfg.keepFinished,
      dataDir: cfg.dataDir,
      ...(leadership ? { store: leadership.store, ackEndsAfterCommit: true } : {}),
      maxLogBytes: cfg.maxLogBytes,
      minFreeBytes: cfg.minFreeBytes,
      forgetAfterMs: cfg.forgetAfterMs,
      wake: { auto: cfg.wakeOnLan, address: cfg.wakeAddress, port: cfg.wakePort, cooldownMs: cfg.wakeCooldownMs, via: cfg.wakeVia },
      startupGraceMs: cfg.startupGraceMs,
      username,
      password,
      log,
    });
    controller.events.useLogger(log);
    controllerRef = controller;
    await controller.start();
    stops.push({ name: 'controller', stop: () => controller.stop() });

    const ctx: ExtensionContext = {
      controller,
      broker,
      brokerUrl: url,
      username,
      password,
      streamBuilder,
      audit,
      whoIs: (clientId) => embedded?.identityOf(clientId),
      exemptFromRateLimit: (clientId) => exempt.add(clientId),
      prefix: cfg.prefix,
      log,
      verifyToken: identities ? (u, p) => identities.verifyAsync(u, p).catch(() => null) : undefined,
      insecure: cfg.insecure,
    };
    const extensions = new ExtensionRunner(opts.extensions ? opts.extensions(ctx) : buildExtensions(ctx, cfg), log);
    stops.push({ name: 'extensions', stop: () => extensions.stop() });
    await extensions.start({ afterListen: false });
    await broker?.listen();
    await extensions.start({ afterListen: true });
    // Not the leader any more: say nothing more at once, then stop everything (controller/leadership.ts).
    leadership?.onLost((why) => {
      controller.silence();
      void stopAll().finally(() => opts.onLeadershipLost?.(why));
    });
    return {
      broker,
      controller,
      brokerUrl: url,
      ports: { ...broker?.ports },
      extensions,
      log,
      stop: stopAll,
      ...(leadership ? { leadership } : {}),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
