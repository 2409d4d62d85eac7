/** `cutter server` and `cutter agent`: the two long-running processes. */
import type { Command } from 'commander';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import type { RunningBroker } from '../../broker/broker.js';
import { AuditLog } from '../../shared/audit.js';
import { type AgentConfig, AgentConfigSchema, ServerConfigSchema, loadConfig, type ServerConfig } from '../../shared/config.js';
import { CutterError, errorMessage } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { setDefaultTls } from '../../shared/mqtt.js';
import { loadPlacementFile } from '../../shared/ollama.js';

/** Stops cleanly on SIGINT/SIGTERM; a second signal exits at once. */
function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop()
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err: errorMessage(err) }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function fatal(err: unknown): never {
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
}

/** Options both daemons take. */
function withDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--prefix <prefix>', 'topic prefix (default cutter)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace')
    .option('--config <path>', 'config file (env CUTTER_CONFIG)')
    .option('--ca-file <path>', "PEM CA that signed the broker's certificate, for mqtts:// and wss:// (env CUTTER_CA_FILE)")
    .option('--cert-file <path>', 'PEM client certificate, for a broker that requires one (env CUTTER_CERT_FILE)')
    .option('--key-file <path>', 'PEM private key of --cert-file (env CUTTER_KEY_FILE)');
}

/** The client TLS flags, as config keys. */
const clientTlsFlags = (flags: Record<string, unknown>) => ({ caFile: flags.caFile, certFile: flags.certFile, keyFile: flags.keyFile });

/**
 * The embedded broker's TLS and WebSocket settings, checked as a whole.
 * @throws CutterError INVALID_CONFIG for a half-given pair (cert without key, …).
 */
function listenerSettings(cfg: ServerConfig) {
  const bad = (message: string) => new CutterError('INVALID_CONFIG', `invalid config: ${message}`);
  if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey))
    throw bad(cfg.tlsCert ? 'tlsCert is set without tlsKey (--tls-key)' : 'tlsKey is set without tlsCert (--tls-cert)');
  if (!cfg.tlsCert && (cfg.tlsPort !== undefined || cfg.tlsCa || cfg.tlsClientCert))
    throw bad('tlsPort, tlsCa and tlsClientCert need tlsCert and tlsKey (--tls-cert, --tls-key)');
  if (cfg.tlsClientCert && !cfg.tlsCa) throw bad('tlsClientCert needs tlsCa (--tls-ca): the CA client certificates must be signed by');
  if (cfg.wsTls && !cfg.tlsCert) throw bad('wsTls needs tlsCert and tlsKey (--tls-cert, --tls-key)');
  if (cfg.wsTls && cfg.wsPort === undefined) throw bad('wsTls needs wsPort (--ws-port)');
  const tls =
    cfg.tlsCert && cfg.tlsKey
      ? { port: cfg.tlsPort ?? 8883, certFile: cfg.tlsCert, keyFile: cfg.tlsKey, caFile: cfg.tlsCa, requireClientCert: cfg.tlsClientCert }
      : undefined;
  const ws = cfg.wsPort !== undefined ? { port: cfg.wsPort, tls: cfg.wsTls } : undefined;
  return { tls, ws };
}

/**
 * Starts the Ollama-compatible API with the controller's own broker credentials. A taken port is
 * logged, not fatal: the mesh runs without the API (a local Ollama often holds 11434).
 */
async function startOllamaApi(
  cfg: ServerConfig,
  conn: { broker: string; username?: string; password?: string; streamBuilder?: () => Duplex },
  log: Logger,
) {
  const { OllamaApi } = await import('../../controller/ollama-api/server.js');
  const api = new OllamaApi({
    host: cfg.ollamaHost,
    port: cfg.ollamaPort,
    log,
    streamBuilder: conn.streamBuilder,
    mqtt: {
      broker: conn.broker,
      prefix: cfg.prefix,
      logLevel: cfg.logLevel,
      username: conn.username,
      password: conn.password,
      timeoutMs: 10_000,
    },
  });
  try {
    await api.start();
    return api;
  } catch (err) {
    const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    log.error(
      { err: errorMessage(err), host: cfg.ollamaHost, port: cfg.ollamaPort },
      inUse
        ? `Ollama-compatible API not started: ${cfg.ollamaHost}:${cfg.ollamaPort} is taken (an Ollama on this machine? use --ollama-port)`
        : 'Ollama-compatible API not started',
    );
    await api.stop().catch(() => undefined);
    return undefined;
  }
}

export function registerDaemons(program: Command): void {
  withDaemonOptions(program.command('server'))
    .description('run the embedded MQTT broker and the controller')
    .option('--port <port>', 'broker TCP port (default 1883)')
    .option('--host <host>', 'broker listen address (default 0.0.0.0)')
    .option('--broker <url>', 'use this external broker instead of the embedded one')
    .option('--lease <ms>', 'ms an agent has to accept an assignment (default 10000)')
    .option('--data-dir <dir>', 'where the controller keeps tasks and logs (default ~/.local/share/cutter)')
    .option('--policy <policy>', 'spread (most headroom, default) or binpack')
    .option('--insecure', 'let anonymous clients in with full rights (a warning at every start)')
    .option('--submits-per-minute <n>', 'submissions per identity per minute (default 120)')
    .option('--broker-requests-per-minute <n>', 'requests one client may publish a minute before the broker cuts it (default 6000)')
    .option('--tls-cert <file>', 'PEM certificate: also listen for mqtts:// (and wss:// with --ws-tls)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-port <port>', 'mqtts:// port (default 8883 with --tls-cert)')
    .option('--tls-ca <file>', 'PEM CA that client certificates must be signed by (with --tls-client-cert)')
    .option('--tls-client-cert', 'require a client certificate signed by --tls-ca on TLS listeners (tokens still apply)')
    .option('--ws-port <port>', 'also listen for MQTT over WebSocket on this port, path /mqtt (off by default)')
    .option('--ws-tls', 'serve the WebSocket listener as wss:// with --tls-cert')
    .option('--no-ollama-api', 'do not serve the Ollama-compatible HTTP API')
    .option('--ollama-host <addr>', 'address of the Ollama-compatible API (default 127.0.0.1: it has no authentication)')
    .option('--ollama-port <port>', 'port of the Ollama-compatible API (default 11434)')
    .option('--ollama-placement <file>', 'YAML or JSON rules pinning models to nodes')
    .option('--no-ha', 'do not publish Home Assistant MQTT discovery')
    .option('--ha-prefix <prefix>', 'Home Assistant discovery prefix (default homeassistant)')
    .option(
      '--ha-broker <url>',
      'publish discovery and node state to the broker Home Assistant uses (MQTT 5), e.g. mqtt://homeassistant:1883',
    )
    .option('--ha-username <user>', 'username on --ha-broker')
    .option('--ha-password <password>', 'password on --ha-broker (or --ha-token-file)')
    .option('--ha-token-file <path>', 'JSON {"username", "password"} for --ha-broker')
    .option('--ha-ca-file <path>', 'PEM CA of an mqtts:// --ha-broker with a private CA')
    .option('--ha-remove-after <duration>', 'remove a node offline this long from Home Assistant, e.g. 24h (default 168h; 0 = never)')
    .option('--http-port <port>', 'HTTP port of the dashboard and /metrics (default 8088; 0 = off)')
    .option('--http-host <host>', 'HTTP listen address (default 127.0.0.1: the dashboard has no login)')
    .option('--redis <url>', 'cluster the embedded broker through this Redis (redis://host:6379): servers sharing it carry one mesh')
    .option('--broker-only', 'with --redis: run only the broker, no controller (one server of the cluster runs the controller)')
    .action(async (flags) => {
      let cfg: ServerConfig;
      let listeners: ReturnType<typeof listenerSettings>;
      let modelRules: ReturnType<typeof loadPlacementFile>['rules'] | undefined;
      try {
        cfg = loadConfig(
          ServerConfigSchema,
          'server',
          {
            port: flags.port,
            host: flags.host,
            externalBroker: flags.broker,
            leaseMs: flags.lease,
            policy: flags.policy,
            prefix: flags.prefix,
            logLevel: flags.logLevel,
            dataDir: flags.dataDir,
            insecure: flags.insecure,
            submitsPerMinute: flags.submitsPerMinute,
            brokerRequestsPerMinute: flags.brokerRequestsPerMinute,
            tlsCert: flags.tlsCert,
            tlsKey: flags.tlsKey,
            tlsPort: flags.tlsPort,
            tlsCa: flags.tlsCa,
            tlsClientCert: flags.tlsClientCert,
            wsPort: flags.wsPort,
            wsTls: flags.wsTls,
            ollamaApi: flags.ollamaApi === false ? false : flags.ollamaPort !== undefined ? true : undefined,
            ollamaHost: flags.ollamaHost,
            ollamaPort: flags.ollamaPort,
            ollamaPlacement: flags.ollamaPlacement,
            ha: flags.ha === false ? false : undefined,
            haPrefix: flags.haPrefix,
            haBroker: flags.haBroker,
            haUsername: flags.haUsername,
            haPassword: flags.haPassword,
            haTokenFile: flags.haTokenFile,
            haCaFile: flags.haCaFile,
            haRemoveAfterMs: flags.haRemoveAfter,
            httpPort: flags.httpPort,
            httpHost: flags.httpHost,
            redis: flags.redis,
            brokerOnly: flags.brokerOnly,
            ...clientTlsFlags(flags),
          },
          process.env,
          flags.config,
        );
        listeners = listenerSettings(cfg);
        modelRules = cfg.ollamaPlacement ? loadPlacementFile(cfg.ollamaPlacement).rules : undefined;
        if (cfg.brokerOnly && !cfg.redis)
          throw new CutterError(
            'INVALID_CONFIG',
            'invalid config: brokerOnly needs redis (--redis): a broker alone, without the controller, carries no mesh',
          );
        if (cfg.redis && cfg.externalBroker)
          throw new CutterError(
            'INVALID_CONFIG',
            'invalid config: redis clusters the embedded broker; it cannot be combined with externalBroker (--broker)',
          );
      } catch (err) {
        fatal(err);
      }
      const log = createLogger(cfg.logLevel);
      // The controller dials an external broker like any client (mqtts:// with a private CA, a
      // client certificate); the embedded broker's loopback listener is plain TCP.
      if (cfg.externalBroker) setDefaultTls(cfg);
      else if (cfg.caFile || cfg.certFile || cfg.keyFile)
        log.warn(
          'caFile/certFile/keyFile apply only with --broker (an external broker); the embedded broker uses --tls-cert/--tls-key/--tls-ca',
        );
      // Loaded here, not at the top: short CLI commands should not pay for Aedes and dockerode.
      const [{ startBroker }, { Controller }, { IdentityStore, ensureAdmin }, { topics }] = await Promise.all([
        import('../../broker/broker.js'),
        import('../../controller/controller.js'),
        import('../../broker/identities.js'),
        import('../../shared/topics.js'),
      ]);
      let broker: RunningBroker | undefined;
      try {
        let url = cfg.externalBroker;
        let username = cfg.username;
        let password = cfg.password;
        let identities: InstanceType<typeof IdentityStore> | undefined;
        let audit: AuditLog | undefined;
        let controllerRef: { placedOn(taskId: string, node: string): boolean | undefined } | undefined;
        if (!url) {
          identities = new IdentityStore(cfg.dataDir);
          audit = new AuditLog(join(cfg.dataDir, cfg.brokerOnly ? 'audit-broker.jsonl' : 'audit.jsonl'));
          // Broker-only instances read the tokens the controller's server made (a shared data dir).
          const written = cfg.brokerOnly ? null : ensureAdmin(identities, cfg.dataDir);
          if (written) log.info({ path: written }, 'created the first admin token; the cutter CLI on this machine reads it from there');
          if (cfg.insecure)
            log.warn('--insecure: anonymous clients connect with full rights; anyone who reaches this port can run code on every node');
          username = 'controller:internal';
          password = identities.addEphemeral({ username, role: 'controller', name: 'internal' });
          broker = await startBroker({
            host: cfg.host,
            port: cfg.port,
            log,
            maxPacketBytes: cfg.maxPacketBytes,
            maxConnectBytes: cfg.maxConnectBytes,
            maxConnections: cfg.maxConnections,
            drainTimeoutMs: cfg.brokerDrainTimeoutMs,
            tls: listeners.tls,
            ws: listeners.ws,
            // Without a controller here, placedOn is unknown (undefined): the agent ACL still checks the
            // event's "node", and the controller, on another instance, ignores events of tasks it did not place there.
            auth: {
              store: identities,
              insecure: cfg.insecure,
              audit,
              requestsPerMinute: cfg.brokerRequestsPerMinute,
              acl: {
                t: topics(cfg.prefix),
                haPrefix: cfg.haPrefix,
                placedOn: (t, n) => (cfg.brokerOnly ? undefined : (controllerRef?.placedOn(t, n) ?? false)),
              },
            },
            cluster: cfg.redis ? (await import('../../broker/cluster.js')).redisCluster(cfg.redis) : undefined,
          });
          url = `mqtt://127.0.0.1:${broker.internalPort}`;
          if (cfg.redis)
            log.info({ redis: cfg.redis.replace(/\/\/[^@/]*@/, '//***@'), brokerOnly: cfg.brokerOnly }, 'broker clustered through redis');
          if (cfg.brokerOnly) {
            const running = broker;
            await running.listen();
            onShutdown(log, () => running.close());
            return;
          }
        }
        let apiClientId: string | undefined;
        // The controller and the Ollama API dial the embedded broker in process: no socket on their path.
        const streamBuilder = broker ? () => broker!.connectInProcess() : undefined;
        const controller = new Controller({
          streamBuilder,
          modelRules,
          exemptFromRateLimit: (who) => who === 'controller:internal' || (apiClientId !== undefined && who === apiClientId),
          identities,
          audit,
          submitsPerMinute: cfg.submitsPerMinute,
          whoIs: (clientId) => broker?.identityOf(clientId),
          brokerUrl: url,
          prefix: cfg.prefix,
          leaseMs: cfg.leaseMs,
          policy: cfg.policy,
          keepFinished: cfg.keepFinished,
          dataDir: cfg.dataDir,
          maxLogBytes: cfg.maxLogBytes,
          startupGraceMs: cfg.startupGraceMs,
          username,
          password,
          log,
        });
        controllerRef = controller;
        await controller.start();
        // Direct client ↔ agent traffic (file transfer, image sync) is audited by its own client.
        const stopFileAudit = audit
          ? await (await import('../../controller/file-audit.js')).startFileAudit({
              url,
              username,
              password,
              streamBuilder,
              prefix: cfg.prefix,
              audit,
              whoIs: (c) => broker?.identityOf(c),
              log,
            })
          : undefined;
        // Forwarded ports (cutter run -p): a TCP proxy from this server to the nodes.
        const stopPortProxy = await (await import('../../controller/port-proxy.js')).startPortProxy({
          url,
          username,
          password,
          streamBuilder,
          prefix: cfg.prefix,
          host: cfg.host,
          audit,
          log,
        });
        const { startExtensions } = await import('../../controller/extensions/index.js');
        const extensions = await startExtensions({ controller, broker, brokerUrl: url, username, password, prefix: cfg.prefix, log }, cfg);
        await broker?.listen();
        const ollamaApi = cfg.ollamaApi ? await startOllamaApi(cfg, { broker: url, username, password, streamBuilder }, log) : undefined;
        apiClientId = ollamaApi?.clientId;
        onShutdown(log, async () => {
          await extensions.stop();
          await ollamaApi?.stop();
          await stopPortProxy();
          await stopFileAudit?.();
          await controller.stop();
          await broker?.close();
        });
      } catch (err) {
        log.fatal({ err: errorMessage(err) }, 'server failed to start');
        fatal(err);
      }
    });

  withDaemonOptions(program.command('agent'))
    .description('join the mesh as a node: announce capacity, run tasks')
    .option('--broker <url>', 'broker URL (env CUTTER_BROKER, default mqtt://127.0.0.1:1883)')
    .option('--node-id <id>', 'node id (default: the hostname)')
    .option('--max-memory <size>', 'memory cutter may commit to tasks here, e.g. 12g (default: all)')
    .option('--max-tasks <n>', 'concurrent tasks (default 4)')
    .option(
      '--token-file <path>',
      'JSON file with this node\'s {"username", "password"} (cutter token create --role agent --node ID --json)',
    )
    .option('--allow-exec', 'run exec tasks (shell jobs): off by default')
    .option('--exec-allowlist <cmds>', 'policy: commands exec tasks may run, comma separated (default any)')
    .option('--allowed-images <patterns>', 'policy: image patterns allowed here, comma separated, * wildcards (default any)')
    .option('--max-task-memory <size>', 'policy: largest container memory limit accepted; containers must set one')
    .option('--default-task-memory <size>', 'policy: memory limit for containers that set none')
    .option('--labels <k=v,…>', 'labels for placement')
    .option('--ollama-url <url>', 'this node\'s Ollama server, or "off" (default http://127.0.0.1:11434)')
    .option('--heartbeat <ms>', 'heartbeat interval, ms (default 1000)')
    .option('--keepalive <s>', 'MQTT keepalive, seconds (default 2)')
    .option('--lost-after <duration>', 'how long this node may be disconnected before its tasks are rescheduled, e.g. 10m (default 0)')
    .option('--drain-timeout <duration>', 'on SIGTERM, how long to wait for running tasks (default 5m)')
    .option(
      '--files-allow <dirs>',
      'file transfer: directories cutter cp may read and write, comma separated (default: none, transfer off)',
    )
    .option('--files-deny <dirs>', 'file transfer: directories refused even inside an allowed one (deny wins)')
    .option(
      '--advertise-address <addr>',
      'port forwarding: address the server can reach this node at (unset: forwards to this node are refused)',
    )
    .option('--files-max-size <size>', 'file transfer and image sync: largest file, e.g. 10g (default 4g)')
    .option('--health-file <path>', 'rewrite this file after every heartbeat (for container healthchecks)')
    .action(async (flags) => {
      let cfg: AgentConfig;
      try {
        cfg = loadConfig(
          AgentConfigSchema,
          'agent',
          {
            broker: flags.broker,
            nodeId: flags.nodeId,
            maxMemory: flags.maxMemory,
            maxTasks: flags.maxTasks,
            allowExec: flags.allowExec,
            labels: flags.labels,
            heartbeatMs: flags.heartbeat,
            keepaliveSec: flags.keepalive,
            lostAfterMs: flags.lostAfter,
            drainTimeoutMs: flags.drainTimeout,
            tokenFile: flags.tokenFile,
            allowedImages: flags.allowedImages,
            maxTaskMemory: flags.maxTaskMemory,
            defaultTaskMemory: flags.defaultTaskMemory,
            execAllowlist: flags.execAllowlist,
            ollamaUrl: flags.ollamaUrl,
            filesAllow: flags.filesAllow,
            filesDeny: flags.filesDeny,
            filesMaxSize: flags.filesMaxSize,
            advertiseAddress: flags.advertiseAddress,
            healthFile: flags.healthFile,
            prefix: flags.prefix,
            logLevel: flags.logLevel,
            ...clientTlsFlags(flags),
          },
          process.env,
          flags.config,
        );
      } catch (err) {
        fatal(err);
      }
      setDefaultTls(cfg);
      const log = createLogger(cfg.logLevel);
      const { Agent } = await import('../../agent/agent.js');
      const agent = new Agent(cfg, log);
      onShutdown(log, () => agent.stop('agent stopped'));
      try {
        await agent.start();
      } catch (err) {
        log.fatal({ err: errorMessage(err) }, 'agent failed to start');
        fatal(err);
      }
    });
}
