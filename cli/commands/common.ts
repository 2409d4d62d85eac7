/**
 * Options every CLI command shares, and the wrapper that turns a thrown error into a clear
 * message (or JSON) and an exit code.
 */
import type { Command } from 'commander';
import { CliConfigSchema, findAdminToken, loadConfig, type CliConfig } from '../../shared/config.js';
import { CutterError } from '../../shared/errors.js';
import { durationFlag } from '../../shared/duration.js';
import { setDefaultTls } from '../../shared/mqtt.js';
import { MeshClient as CliClient } from '../../shared/client/index.js';
import { printError } from '../output.js';

export interface GlobalFlags {
  broker?: string;
  prefix?: string;
  config?: string;
  json?: boolean;
  connectTimeout?: string;
  tokenFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Adds --broker, --json, --config, --prefix, --connect-timeout, --token-file and the TLS files (--ca-file, --cert-file, --key-file) to a command. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--broker <url>', 'broker URL (env CUTTER_BROKER, default mqtt://127.0.0.1:1883)')
    .option('--json', 'print JSON for scripts')
    .option('--config <path>', 'config file (env CUTTER_CONFIG)')
    .option('--prefix <prefix>', 'topic prefix (default cutter)')
    .option('--connect-timeout <duration>', 'how long to wait for the broker and the controller, e.g. 10s (default 5s)')
    .option('--token-file <path>', 'credentials {"username", "password"} (default: the admin token a local server wrote)')
    .option('--ca-file <path>', "PEM CA that signed the broker's certificate, for mqtts:// and wss:// (env CUTTER_CA_FILE)")
    .option('--cert-file <path>', 'PEM client certificate, for a broker that requires one (env CUTTER_CERT_FILE)')
    .option('--key-file <path>', 'PEM private key of --cert-file (env CUTTER_KEY_FILE)');
}

/** Loads the CLI config and makes its TLS files (`caFile`, `certFile`, `keyFile`) the process's default for `connectMqtt`. */
export function cliConfig(flags: GlobalFlags): CliConfig {
  const cfg = loadConfig(
    CliConfigSchema,
    'cli',
    {
      broker: flags.broker,
      prefix: flags.prefix,
      timeoutMs:
        flags.connectTimeout === undefined
          ? undefined
          : durationFlag('--connect-timeout', flags.connectTimeout, { min: 100, max: 600_000 }),
      tokenFile: flags.tokenFile,
      caFile: flags.caFile,
      certFile: flags.certFile,
      keyFile: flags.keyFile,
    },
    process.env,
    flags.config,
    { timeoutMs: '--connect-timeout' },
  );
  setDefaultTls(cfg);
  return cfg;
}

/**
 * Runs a command body with a connected client; errors print and exit 1 (or `errorExitCode`).
 * The body returns the process exit code.
 */
export async function withClient(
  flags: GlobalFlags,
  body: (client: CliClient, cfg: CliConfig) => Promise<number>,
  errorExitCode = 1,
): Promise<never> {
  let client: CliClient | undefined;
  let code: number;
  let cfg: CliConfig | undefined;
  try {
    cfg = cliConfig(flags);
    client = await CliClient.connect(cfg);
    code = await body(client, cfg);
  } catch (err) {
    printError(cfg && !cfg.username ? withTokenSearch(err, cfg.broker) : err, Boolean(flags.json));
    code = errorExitCode;
  }
  await client?.close().catch(() => undefined);
  await flushed();
  process.exit(code);
}

/**
 * A broker's "not authorized" to a CLI that had no credentials, with where it looked for the admin
 * token (shared/config/admin-token.ts) and what to do; other errors as they are.
 * @param broker the broker URL(s) the CLI dialled (the hints are looked up by their ports).
 */
export function withTokenSearch(err: unknown, broker?: string): unknown {
  const connack = err instanceof CutterError ? (err.details as { connackCode?: number } | undefined)?.connackCode : undefined;
  if (connack !== 4 && connack !== 5 && connack !== 134 && connack !== 135) return err;
  const { looked } = findAdminToken(process.env, broker);
  return new CutterError(
    (err as CutterError).code,
    `${(err as Error).message}: no admin token found, looked in ${looked.join(', ')}. On the server's machine set CUTTER_DATA_DIR to its --data-dir; elsewhere give --token-file (cutter token create --role admin --name NAME --json > admin.json)`,
    (err as CutterError).details,
  );
}

/** Resolves once everything written to stdout and stderr is handed to the OS (a pipe may be full). */
function flushed(): Promise<void> {
  const drain = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));
  return Promise.all([drain(process.stdout), drain(process.stderr)]).then(() => undefined);
}
