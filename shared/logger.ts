/**
 * pino logger factory for the daemons (server, agent): JSON lines on stdout, one `component`
 * field per subsystem. The CLI does not log through pino; it prints for people (cli/output.ts).
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Creates the root logger.
 * @param level pino level; `CUTTER_LOG_LEVEL` is applied by config, not here.
 * @param destination file descriptor to write to (1 = stdout, 2 = stderr).
 */
export function createLogger(level: LevelWithSilent = 'info', destination = 1): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: destination, sync: false }));
}
