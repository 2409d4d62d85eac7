/** What `cutter server` and `cutter agent` share: their common flags, shutdown on signals, and fatal errors. */
import type { Command } from 'commander';
import { CommonConfigSchema, withDefault } from '../../shared/config.js';
import { errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** Stops cleanly on SIGINT/SIGTERM (exit 0, or 1 when `stop` throws); a second signal exits at once with 1. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Prints `error: <message>` (no stack: users never see one) and exits 1. */
export function fatal(err: unknown): never {
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
}

/** Adds the options both daemons take; defaults in the help come from the config schema. */
export function withDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--prefix <prefix>', withDefault(CommonConfigSchema, 'prefix', 'topic prefix'))
    .option('--log-level <level>', withDefault(CommonConfigSchema, 'logLevel', 'fatal|error|warn|info|debug|trace'))
    .option('--log-format <format>', 'json | pretty (env CUTTER_LOG_FORMAT; default: pretty on a terminal, JSON otherwise)')
    .option('--config <path>', 'config file (env CUTTER_CONFIG)')
    .option('--ca-file <path>', "PEM CA that signed the broker's certificate, for mqtts:// and wss:// (env CUTTER_CA_FILE)")
    .option('--cert-file <path>', 'PEM client certificate, for a broker that requires one (env CUTTER_CERT_FILE)')
    .option('--key-file <path>', 'PEM private key of --cert-file (env CUTTER_KEY_FILE)');
}

/** The client TLS flags, as config keys. */
export const clientTlsFlags = (flags: Record<string, unknown>) => ({
  caFile: flags.caFile,
  certFile: flags.certFile,
  keyFile: flags.keyFile,
});
