/**
 * `docker run --log-driver DRIVER` and `--log-opt KEY=VALUE` for `cutter run … docker run`: the
 * engine-side log of the task's container on its node (DockerSpec.logging). Only drivers that write
 * on the node (shared/schemas/task.ts LOG_DRIVERS) and the rotation options of json-file and local
 * are taken; every other is refused with the reason. A `--log-opt` without `--log-driver` means
 * json-file, Docker's own default driver (without either flag the node keeps no engine-side copy:
 * agent/executors/docker-logging.ts).
 */
import { CutterError } from '../shared/errors.js';
import { type DockerSpec, LOG_DRIVERS, LOG_OPTIONS } from '../shared/schemas/index.js';

type Logging = NonNullable<DockerSpec['logging']>;

/**
 * Takes one `--log-driver` (`name` 'logDriver') or `--log-opt` (`name` 'logOpt') into `current`.
 * @param flag the flag as typed, for messages.
 * @returns the logging so far.
 * @throws CutterError INVALID_ARGUMENT for a driver or option cutter does not pass on.
 */
export function parseLogFlag(current: Logging | undefined, name: 'logDriver' | 'logOpt', value: string, flag: string): Logging {
  if (name === 'logDriver') {
    if (!(LOG_DRIVERS as readonly string[]).includes(value))
      throw new CutterError(
        'INVALID_ARGUMENT',
        `docker run ${flag} ${value}: not allowed (allowed: ${LOG_DRIVERS.join(', ')}); a network log driver would make the node's engine send to an address the task names`,
      );
    return { ...current, driver: value as Logging['driver'] };
  }
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  const val = eq < 0 ? '' : value.slice(eq + 1);
  if (!(LOG_OPTIONS as readonly string[]).includes(key))
    throw new CutterError(
      'INVALID_ARGUMENT',
      `docker run ${flag} ${value}: not allowed (allowed: ${LOG_OPTIONS.map((k) => `${k}=…`).join(', ')})`,
    );
  if (!val || val.length > 64)
    throw new CutterError('INVALID_ARGUMENT', `docker run ${flag} ${value}: expected ${key}=VALUE (1 to 64 characters)`);
  return { driver: current?.driver ?? 'json-file', options: { ...current?.options, [key]: val } };
}

/**
 * Checks the finished choice: options only with a driver that takes them.
 * @throws CutterError INVALID_ARGUMENT for `--log-opt` with journald or none.
 */
export function checkLogging(logging: Logging): void {
  if (logging.options && logging.driver !== 'json-file' && logging.driver !== 'local')
    throw new CutterError(
      'INVALID_ARGUMENT',
      `docker run --log-opt: the ${logging.driver} log driver takes no ${Object.keys(logging.options).join(', ')} (only json-file and local do)`,
    );
}
