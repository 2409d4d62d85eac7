/**
 * `cutter server`: parse the flags, load the config (shared/config/server.ts checks it, across
 * keys too), start the server (controller/server.ts) and stop it on SIGINT/SIGTERM.
 */
import { type Command, Option } from 'commander';
import { CutterError } from '../../shared/errors.js';
import {
  DEFAULT_TLS_PORT,
  loadConfig,
  removeDataDirHint,
  writeDataDirHint,
  type ServerConfig,
  ServerConfigSchema,
  withDefault,
} from '../../shared/config.js';
import { durationFlag } from '../../shared/duration.js';
import { createLogger, type Logger, logFormat } from '../../shared/logger.js';
import { clientTlsFlags, fatal, onShutdown, withDaemonOptions } from './daemon-common.js';

/** `withDefault` for the server's keys. */
const d = (key: keyof ServerConfig, text: string, opts?: Parameters<typeof withDefault>[3]) =>
  withDefault(ServerConfigSchema, key, text, opts);

export function registerServer(program: Command): void {
  withDaemonOptions(program.command('server'))
    .description('run the embedded MQTT broker and the controller')
    .option('--port <port>', d('port', 'broker TCP port'))
    .option('--host <host>', d('host', 'broker listen address'))
    .option('--broker <url>', 'use this external broker instead of the embedded one')
    .option('--lease <duration>', d('leaseMs', 'how long an agent has to accept an assignment, e.g. 10s', { format: 'duration' }))
    .option('--data-dir <dir>', d('dataDir', 'where the controller keeps tasks and logs'))
    .option('--policy <policy>', d('policy', 'spread (most headroom) or binpack'))
    .option(
      '--prefer-local',
      "place a task on the submitting machine's own node while it keeps --local-headroom (cutter run --prefer-local per task)",
    )
    .option(
      '--local-headroom <pct|size>',
      'with --prefer-local: what the local node must keep free, a share of its memory or a size; 20% when not set',
    )
    .option('--insecure', 'let anonymous clients in with full rights (a warning at every start)')
    .option('--submits-per-minute <n>', d('submitsPerMinute', 'submissions per identity per minute'))
    .option(
      '--broker-requests-per-minute <n>',
      d('brokerRequestsPerMinute', 'requests one client may publish a minute before the broker cuts it'),
    )
    .option('--tls-cert <file>', 'PEM certificate: also listen for mqtts:// (and wss:// with --ws-tls)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-port <port>', `mqtts:// port (default ${DEFAULT_TLS_PORT} with --tls-cert)`)
    .option('--tls-ca <file>', 'PEM CA that client certificates must be signed by (with --tls-client-cert)')
    .option('--tls-client-cert', 'require a client certificate signed by --tls-ca on TLS listeners (tokens still apply)')
    .option('--ws-port <port>', 'also listen for MQTT over WebSocket on this port, path /mqtt (off by default)')
    .option('--ws-tls', 'serve the WebSocket listener as wss:// with --tls-cert')
    .option('--no-ollama-api', 'do not serve the Ollama-compatible HTTP API')
    .option(
      '--ollama-host <addr>',
      d('ollamaHost', 'address of the Ollama-compatible API', {
        note: 'beyond loopback it needs a token (Authorization: Bearer) unless --insecure',
      }),
    )
    .option('--ollama-port <port>', d('ollamaPort', 'port of the Ollama-compatible API'))
    .option('--ollama-placement <file>', 'YAML or JSON rules pinning models to nodes')
    .option(
      '--ollama-origins <list>',
      'browser origins allowed to call the Ollama API besides loopback ones, comma-separated like OLLAMA_ORIGINS (* = any)',
    )
    .option('--no-ha', 'do not publish Home Assistant MQTT discovery')
    .option('--ha-prefix <prefix>', d('haPrefix', 'Home Assistant discovery prefix'))
    .option(
      '--ha-broker <url>',
      'publish discovery and node state to the broker Home Assistant uses (MQTT 5), e.g. mqtt://homeassistant:1883',
    )
    .option('--ha-username <user>', 'username on --ha-broker')
    .addOption(new Option('--ha-password <password>').hideHelp())
    .option('--ha-token-file <path>', 'JSON {"username", "password"} for --ha-broker (or env CUTTER_HA_PASSWORD)')
    .option('--ha-ca-file <path>', 'PEM CA of an mqtts:// --ha-broker with a private CA')
    .option(
      '--ha-remove-after <duration>',
      d('haRemoveAfterMs', 'remove a node offline this long from Home Assistant, e.g. 24h', { format: 'duration', note: '0 = never' }),
    )
    .option(
      '--forget-after <duration>',
      d('forgetAfterMs', 'forget nodes offline this long with no unfinished task (Home Assistant devices too), e.g. 30d', {
        format: 'duration',
        note: '0 = never',
      }),
    )
    .option('--http-port <port>', d('httpPort', 'HTTP port of the dashboard and /metrics', { note: '0 = off' }))
    .option('--http-host <host>', d('httpHost', 'HTTP listen address', { note: 'beyond loopback it needs a token unless --insecure' }))
    .option('--forward-host <host>', d('forwardHost', 'interface forwarded ports (cutter run -p) listen on'))
    .option(
      '--forward-trust-announced',
      'behind an external broker: forward to the address a node announces (the server cannot see where agents connect from)',
    )
    .option('--wake-on-lan', 'wake a sleeping node (offline, MAC known) with a magic packet when queued work fits only it (off by default)')
    .option('--wake-address <ipv4>', "send magic packets to this address instead of the node's broadcast address")
    .option('--wake-port <port>', d('wakePort', 'UDP port of magic packets'))
    .option(
      '--wake-via <who>',
      d('wakeVia', "who sends magic packets: auto (the server on its own networks, else an awake agent on the node's LAN) or agent"),
    )
    .option(
      '--wake-cooldown <duration>',
      d('wakeCooldownMs', 'at most one automatic magic packet per node per this long', { format: 'duration' }),
    )
    .option('--plain-listener', 'with --tls-cert: also open the plain TCP (and ws://) listener (tokens travel in the clear there)')
    .option('--redis <url>', 'cluster the embedded broker through this Redis (redis://host:6379): servers sharing it carry one mesh')
    .option('--broker-only', 'with --redis: run only the broker, no controller (one server of the cluster runs the controller)')
    .option(
      '--state <url>',
      d('state', 'where the controller keeps its state: sqlite (under --data-dir) or postgres://user@host/db (several servers, one leads)'),
    )
    .option('--leader-lease <duration>', d('leaderLeaseMs', 'with postgres state: lease of the leading server', { format: 'duration' }))
    .action(async (flags) => {
      let cfg: ServerConfig;
      try {
        refusePasswordsOnArgv(flags);
        refuseStatePassword(flags.state);
        cfg = loadConfig(
          ServerConfigSchema,
          'server',
          {
            port: flags.port,
            host: flags.host,
            externalBroker: flags.broker,
            leaseMs: flags.lease === undefined ? undefined : durationFlag('--lease', flags.lease),
            policy: flags.policy,
            preferLocal: flags.preferLocal,
            localHeadroom: flags.localHeadroom,
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
            // commander sets `ollamaApi`/`ha` to true unless --no-…: only the "no" is a flag.
            ollamaApi: flags.ollamaApi === false ? false : flags.ollamaPort !== undefined ? true : undefined,
            ollamaHost: flags.ollamaHost,
            ollamaPort: flags.ollamaPort,
            ollamaPlacement: flags.ollamaPlacement,
            ollamaOrigins: flags.ollamaOrigins,
            ha: flags.ha === false ? false : undefined,
            haPrefix: flags.haPrefix,
            haBroker: flags.haBroker,
            haUsername: flags.haUsername,
            haPassword: flags.haPassword,
            haTokenFile: flags.haTokenFile,
            haCaFile: flags.haCaFile,
            haRemoveAfterMs: flags.haRemoveAfter,
            forgetAfterMs: flags.forgetAfter,
            httpPort: flags.httpPort,
            httpHost: flags.httpHost,
            forwardHost: flags.forwardHost,
            forwardTrustAnnounced: flags.forwardTrustAnnounced,
            wakeOnLan: flags.wakeOnLan,
            wakeAddress: flags.wakeAddress,
            wakePort: flags.wakePort,
            wakeCooldownMs: flags.wakeCooldown,
            wakeVia: flags.wakeVia,
            plainListener: flags.plainListener,
            redis: flags.redis,
            brokerOnly: flags.brokerOnly,
            state: flags.state,
            leaderLeaseMs: flags.leaderLease,
            ...clientTlsFlags(flags),
          },
          process.env,
          flags.config,
          { externalBroker: '--broker' },
        );
      } catch (err) {
        fatal(err);
      }
      let log: Logger;
      try {
        log = createLogger(cfg.logLevel, 1, logFormat(1, flags.logFormat));
      } catch (err) {
        fatal(err);
      }
      // Loaded here, not at the top: `cutter server --help` should not pay for Aedes and SQLite.
      const { startServer } = await import('../../controller/server.js');
      try {
        const server = await startServer(cfg, {
          log,
          // The leadership is lost for good: exit so the supervisor starts a standby (controller/leadership.ts).
          onLeadershipLost: (why) => {
            log.error({ why }, 'stopped: this server no longer leads; start it again to stand by');
            process.exit(1);
          },
        });
        // The CLI on this machine finds this server's admin token through the hint (shared/config/admin-token.ts).
        const hinted = !cfg.externalBroker && !cfg.brokerOnly;
        if (hinted) {
          try {
            const hint = writeDataDirHint(
              cfg.dataDir,
              Object.values(server.ports).filter((p): p is number => typeof p === 'number'),
            );
            if (hint)
              log.info(
                { path: hint, dataDir: cfg.dataDir },
                'wrote the data dir hint; the cutter CLI on this machine finds the admin token through it',
              );
          } catch (err) {
            log.warn({ err }, 'could not write the data dir hint; the CLI needs CUTTER_DATA_DIR or --token-file');
          }
        }
        onShutdown(log, async () => {
          await server.stop();
          if (hinted) removeDataDirHint(cfg.dataDir);
        });
      } catch (err) {
        log.fatal({ err }, 'server failed to start');
        fatal(err);
      }
    });
}

/**
 * Passwords never on argv: every user of the machine sees argv in `ps`.
 * @throws CutterError INVALID_ARGUMENT for `--ha-password` and for a `--broker`/`--ha-broker` URL
 *   with `user:password@`, naming where the password goes instead.
 */
export function refusePasswordsOnArgv(flags: { haPassword?: string; broker?: string; haBroker?: string }): void {
  if (flags.haPassword !== undefined)
    throw new CutterError(
      'INVALID_ARGUMENT',
      '--ha-password is not accepted (a password on the command line is visible to every user in `ps`): put it in a JSON file {"username", "password"} given with --ha-token-file, or in the environment variable CUTTER_HA_PASSWORD',
    );
  for (const [flag, url, where] of [
    [
      '--broker',
      flags.broker,
      'the environment variables CUTTER_USERNAME and CUTTER_PASSWORD, or a JSON file {"username", "password"} named by CUTTER_TOKEN_FILE',
    ],
    ['--ha-broker', flags.haBroker, '--ha-token-file or --ha-username with the environment variable CUTTER_HA_PASSWORD'],
  ] as const) {
    if (url === undefined) continue;
    let password = '';
    for (const one of url.split(',')) {
      try {
        password ||= new URL(one.trim()).password;
      } catch {
        // not a URL: the config check names it
      }
    }
    if (password)
      throw new CutterError(
        'INVALID_ARGUMENT',
        `${flag} must not carry a password (user:password@ in the URL is visible to every user in \`ps\`): give the URL without it and put the credentials in ${where}`,
      );
  }
}

/**
 * A PostgreSQL password never on argv (`ps` shows it to every user).
 * @throws CutterError INVALID_ARGUMENT for a `--state` URL with `user:password@`.
 */
function refuseStatePassword(state: string | undefined): void {
  if (!state || !/^postgres(ql)?:\/\//.test(state)) return;
  let password = '';
  try {
    password = new URL(state).password;
  } catch {
    return; // not a URL: the config check names it
  }
  if (password)
    throw new CutterError(
      'INVALID_ARGUMENT',
      '--state must not carry a password (user:password@ in the URL is visible to every user in `ps`): give the URL without it and put the password in the environment variable PGPASSWORD or in ~/.pgpass, or give the whole URL in CUTTER_STATE',
    );
}
