/**
 * The engine-side log of a task's container: `docker run --log-driver`/`--log-opt` as the CLI parses
 * them (cli/log-args.ts), the schema's bounds, and the LogConfig the agent puts in the create body
 * (agent/executors/docker-logging.ts): none when the engine's default is json-file, the node
 * admin's own default otherwise, the task's choice first.
 */
import { describe, expect, it } from 'vitest';
import { createOptions } from '../../agent/executors/docker-container.js';
import type { ExecutorContext } from '../../agent/executors/executor.js';
import { parseDockerRun } from '../../cli/docker-args.js';
import { DockerSpecSchema } from '../../shared/schemas/index.js';
import { thrown } from './units-helpers.js';

const ctx: ExecutorContext = {
  taskId: 't1',
  attempt: 1,
  node: 'n1',
  memory: 0,
  output: () => true,
  progress: () => undefined,
  started: () => undefined,
};

const parse = (...flags: string[]) => parseDockerRun(['run', ...flags, 'img', 'true']).spec;

/** The message of the INVALID_ARGUMENT CutterError `fn` throws. */
function refusal(fn: () => unknown): string {
  const err = thrown(fn);
  expect(err.code).toBe('INVALID_ARGUMENT');
  return err.message;
}

describe('docker run --log-driver / --log-opt', () => {
  it('takes the drivers that write on the node, in both spellings', () => {
    expect(parse('--log-driver', 'json-file').logging).toEqual({ driver: 'json-file' });
    expect(parse('--log-driver=local').logging).toEqual({ driver: 'local' });
    expect(parse('--log-driver', 'journald').logging).toEqual({ driver: 'journald' });
    expect(parse('--log-driver', 'none').logging).toEqual({ driver: 'none' });
    expect(parse().logging).toBeUndefined();
  });

  it('takes rotation options; a --log-opt alone means json-file, as docker’s own default', () => {
    expect(parse('--log-opt', 'max-size=10m', '--log-opt', 'max-file=3').logging).toEqual({
      driver: 'json-file',
      options: { 'max-size': '10m', 'max-file': '3' },
    });
    expect(parse('--log-opt', 'compress=true', '--log-driver', 'local').logging).toEqual({
      driver: 'local',
      options: { compress: 'true' },
    });
  });

  it('refuses network drivers, other options, and options the driver does not take, saying why', () => {
    expect(refusal(() => parse('--log-driver', 'syslog'))).toMatch(
      /syslog: not allowed \(allowed: json-file, local, journald, none\).*address/,
    );
    expect(refusal(() => parse('--log-driver', 'gelf'))).toMatch(/gelf: not allowed/);
    expect(refusal(() => parse('--log-opt', 'syslog-address=tcp://10.0.0.1:514'))).toMatch(
      /not allowed \(allowed: max-size=…, max-file=…, compress=…\)/,
    );
    expect(refusal(() => parse('--log-opt', 'max-size'))).toMatch(/expected max-size=VALUE/);
    expect(refusal(() => parse('--log-opt', `max-size=${'9'.repeat(65)}`))).toMatch(/1 to 64 characters/);
    expect(refusal(() => parse('--log-driver', 'none', '--log-opt', 'max-size=1m'))).toMatch(/the none log driver takes no max-size/);
  });

  it('the schema holds the same bounds for a spec that did not come through the CLI', () => {
    const spec = { kind: 'docker', image: 'img' };
    expect(DockerSpecSchema.safeParse({ ...spec, logging: { driver: 'json-file', options: { 'max-size': '1m' } } }).success).toBe(true);
    expect(DockerSpecSchema.safeParse({ ...spec, logging: { driver: 'syslog' } }).success).toBe(false);
    expect(DockerSpecSchema.safeParse({ ...spec, logging: { driver: 'json-file', options: { 'syslog-address': 'x' } } }).success).toBe(
      false,
    );
    expect(DockerSpecSchema.safeParse({ ...spec, logging: { driver: 'json-file', options: { 'max-size': 'x'.repeat(65) } } }).success).toBe(
      false,
    );
  });
});

describe('the container create body', () => {
  const spec = (logging?: object) => DockerSpecSchema.parse({ kind: 'docker', image: 'img', ...(logging ? { logging } : {}) });

  it('keeps no engine-side copy when the engine’s default is json-file', () => {
    expect(createOptions(spec(), ctx, 'json-file').HostConfig?.LogConfig).toEqual({ Type: 'none', Config: {} });
  });

  it('leaves a node admin’s other default alone, and the engine’s default when not known', () => {
    expect(createOptions(spec(), ctx, 'journald').HostConfig).not.toHaveProperty('LogConfig');
    expect(createOptions(spec(), ctx, null).HostConfig).not.toHaveProperty('LogConfig');
    expect(createOptions(spec(), ctx).HostConfig).not.toHaveProperty('LogConfig');
  });

  it('gives the task’s own choice first, with its options', () => {
    expect(createOptions(spec({ driver: 'json-file', options: { 'max-size': '10m' } }), ctx, 'json-file').HostConfig?.LogConfig).toEqual({
      Type: 'json-file',
      Config: { 'max-size': '10m' },
    });
    expect(createOptions(spec({ driver: 'local' }), ctx, 'journald').HostConfig?.LogConfig).toEqual({ Type: 'local', Config: {} });
  });
});
