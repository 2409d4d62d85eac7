/**
 * pino logger factory for the daemons (server, agent), one `component` field per subsystem.
 * The format: pretty lines (pino-pretty: time, level, message, fields) when the destination is a
 * terminal, JSON lines otherwise (a pipe, a file, journald, a test harness reading them);
 * `CUTTER_LOG_FORMAT=json|pretty` (or `--log-format`) forces either. Pretty output has colour
 * only where cli/tty.ts allows it (`NO_COLOR`, a terminal), and errors without their stack below
 * debug level (users never see a stack; the JSON log keeps it for whoever debugs). The CLI does not log through pino;
 * it prints for people (cli/output.ts).
 */
import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** How log lines are written. */
export type LogFormat = 'json' | 'pretty';

/**
 * The format in effect: `explicit` (a flag) wins, then env `CUTTER_LOG_FORMAT`, then pretty on a terminal.
 * @throws Error naming the value and where it came from when it is neither `json` nor `pretty`.
 */
export function logFormat(fd: number, explicit?: string, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const given = explicit ?? (env.CUTTER_LOG_FORMAT || undefined);
  if (given === 'json' || given === 'pretty') return given;
  if (given !== undefined)
    throw new Error(`${explicit !== undefined ? '--log-format' : 'CUTTER_LOG_FORMAT'} "${given}": use json or pretty`);
  return isatty(fd) ? 'pretty' : 'json';
}

/**
 * Creates the root logger.
 * @param level pino level; `CUTTER_LOG_LEVEL` is applied by config, not here.
 * @param destination file descriptor to write to (1 = stdout, 2 = stderr).
 * @param format `json` or `pretty`; default {@link logFormat}'s choice.
 */
export function createLogger(level: LevelWithSilent = 'info', destination = 1, format?: LogFormat): Logger {
  const opts = { level, base: { pid: process.pid } };
  if ((format ?? logFormat(destination)) === 'pretty') {
    // Loaded only when used: a daemon writing JSON (the usual service) does not pay for it.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (o: Record<string, unknown>) => NodeJS.WritableStream;
    const noColor = (process.env.NO_COLOR ?? '') !== '' || process.env.TERM === 'dumb' || !isatty(destination);
    // A terminal is read by people: an error's type, message and code, its stack only at debug level.
    const verbose = level === 'debug' || level === 'trace';
    const err = (e: unknown) =>
      verbose || !(e instanceof Error)
        ? pino.stdSerializers.err(e as Error)
        : {
            type: e.name,
            message: e.message,
            ...((e as { code?: unknown }).code !== undefined ? { code: (e as { code?: unknown }).code } : {}),
          };
    return pino(
      { ...opts, serializers: { err } },
      pretty({ destination, colorize: !noColor, sync: false, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
    );
  }
  return pino(opts, pino.destination({ fd: destination, sync: false }));
}
