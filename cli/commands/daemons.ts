/** `cutter server` and `cutter agent`: the two long-running processes. */
import type { Command } from 'commander';
import type { RunningBroker } from '../../broker/broker.js';
import { AgentConfigSchema, ServerConfigSchema, loadConfig } from '../../shared/config.js';
import { errorMessage } from '../../shared/errors.js';
import { createLogger, type Logger } from '../../shared/logger.js';

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
    .option('--config <path>', 'config file (env CUTTER_CONFIG)');
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
    .action(async (flags) => {
      let cfg;
      try {
        cfg = loadConfig(
          ServerConfigSchema,
          'server',
          { port: flags.port, host: flags.host, externalBroker: flags.broker, leaseMs: flags.lease, policy: flags.policy, prefix: flags.prefix, logLevel: flags.logLevel, dataDir: flags.dataDir, insecure: flags.insecure },
          process.env,
          flags.config,
        );
      } catch (err) {
        fatal(err);
      }
      const log = createLogger(cfg.logLevel);
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
        let controllerRef: { placedOn(taskId: string, node: string): boolean } | undefined;
        if (!url) {
          identities = new IdentityStore(cfg.dataDir);
          const written = ensureAdmin(identities, cfg.dataDir);
          if (written) log.info({ path: written }, 'created the first admin token; the cutter CLI on this machine reads it from there');
          if (cfg.insecure) log.warn('--insecure: anonymous clients connect with full rights; anyone who reaches this port can run code on every node');
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
            auth: { store: identities, insecure: cfg.insecure, acl: { t: topics(cfg.prefix), haPrefix: 'homeassistant', placedOn: (t, n) => controllerRef?.placedOn(t, n) ?? false } },
          });
          url = `mqtt://127.0.0.1:${broker.internalPort}`;
        }
        const controller = new Controller({
          identities,
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
        await broker?.listen();
        onShutdown(log, async () => {
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
    .option('--token-file <path>', 'JSON file with this node\'s {"username", "password"} (cutter token create --role agent --node ID --json)')
    .option('--allow-exec', 'run exec tasks (shell jobs): off by default')
    .option('--labels <k=v,…>', 'labels for placement')
    .option('--heartbeat <ms>', 'heartbeat interval, ms (default 1000)')
    .option('--keepalive <s>', 'MQTT keepalive, seconds (default 2)')
    .option('--lost-after <duration>', 'how long this node may be disconnected before its tasks are rescheduled, e.g. 10m (default 0)')
    .option('--drain-timeout <duration>', 'on SIGTERM, how long to wait for running tasks (default 5m)')
    .action(async (flags) => {
      let cfg;
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
            prefix: flags.prefix,
            logLevel: flags.logLevel,
          },
          process.env,
          flags.config,
        );
      } catch (err) {
        fatal(err);
      }
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
