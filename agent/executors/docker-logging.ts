/**
 * The log driver of a task's container (HostConfig.LogConfig, Docker Engine API
 * `POST /containers/create`).
 *
 * cutter reads a container's output from its attach stream and keeps it itself (bounded, `cutter
 * logs`), and removes the container when the task ends, so the engine's own copy is read by no one.
 * With Docker's default driver, json-file, that copy costs the engine more than the attach does:
 * 100 MB of stdout took `docker run` 3.3 s here, against 1.2 s with `--log-driver none`, and
 * json-file keeps it on the node's disk without a size limit unless the node's admin set one
 * (Docker's "JSON File logging driver" page). So:
 * - the task chose a driver (`docker run --log-driver`, `--log-opt`): that one;
 * - the engine's default is json-file (Docker's own default; `GET /info` `LoggingDriver`): none;
 * - the node's admin chose another default (journald, local, syslog…) or it is not known yet:
 *   left to the engine, so the admin's choice holds.
 */
import type Docker from 'dockerode';
import type { DockerSpec } from '../../shared/schemas/index.js';

/**
 * @param spec the task's container spec (`logging`: the task's own choice).
 * @param engineDefault the engine's `LoggingDriver` from `GET /info`, or null when not read yet.
 * @returns the LogConfig for the create body, or undefined to leave the engine's default.
 */
export function logConfig(spec: DockerSpec, engineDefault: string | null): Docker.HostConfig['LogConfig'] | undefined {
  if (spec.logging) return { Type: spec.logging.driver, Config: { ...spec.logging.options } };
  if (engineDefault === 'json-file') return { Type: 'none', Config: {} };
  return undefined;
}
