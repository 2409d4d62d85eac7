/** Resolving a command's config from flags, env, the config file and the schema's defaults. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { CutterError } from '../errors.js';
import { findAdminToken } from './admin-token.js';

/**
 * The flag a config key is set with: the key in kebab case without its unit suffix
 * (`heartbeatMs` → `--heartbeat`, `keepaliveSec` → `--keepalive`), unless `names` says otherwise.
 */
export const toFlagName = (key: string, names: Record<string, string> = {}) =>
  names[key] ??
  `--${key
    .replace(/(?<=[a-z])(Ms|Sec)$/, '')
    .replace(/([A-Z])/g, '-$1')
    .toLowerCase()}`;

const toEnvName = (key: string) => `CUTTER_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;

/** Path of the config file in effect, or null. */
export function configFilePath(explicit: string | undefined, env: NodeJS.ProcessEnv): string | null {
  const path = explicit ?? env.CUTTER_CONFIG;
  if (path) return path;
  const fallback = join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'cutter', 'config.json');
  return existsSync(fallback) ? fallback : null;
}

/**
 * Resolves a command's configuration.
 * @param schema one of the `*ConfigSchema` objects above.
 * @param section config-file section for this command (`server`, `agent`, `cli`).
 * @param flags values given on the command line (undefined = not given).
 * @param flagNames the flag of a key whose flag is not {@link toFlagName}'s (`{ externalBroker: '--broker' }`), for messages.
 * @throws CutterError `INVALID_CONFIG` naming the key, the bad value and its source.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  section: string,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  configPath?: string,
  flagNames: Record<string, string> = {},
): z.infer<S> {
  const merged: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  const keys = Object.keys(schema.shape);

  const path = configFilePath(configPath, env);
  if (path) {
    let file: Record<string, unknown>;
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new CutterError('INVALID_CONFIG', `cannot read config file ${path}: ${(err as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new CutterError('INVALID_CONFIG', `config file ${path} must hold a JSON object of settings`);
    }
    const sectionValues = (file[section] ?? {}) as Record<string, unknown>;
    if (typeof sectionValues !== 'object' || sectionValues === null || Array.isArray(sectionValues)) {
      throw new CutterError('INVALID_CONFIG', `config file ${path}: "${section}" must be an object of settings`);
    }
    for (const key of keys) {
      for (const [value, where] of [
        [file[key], `config file ${path}`],
        [sectionValues[key], `config file ${path} (${section}.${key})`],
      ] as const) {
        if (value !== undefined) {
          merged[key] = value;
          source[key] = where;
        }
      }
    }
  }
  for (const key of keys) {
    const name = toEnvName(key);
    if (env[name] !== undefined && env[name] !== '') {
      merged[key] = env[name];
      source[key] = `env ${name}`;
    }
  }
  for (const key of keys) {
    if (flags[key] !== undefined) {
      merged[key] = flags[key];
      source[key] = `flag ${toFlagName(key, flagNames)}`;
    }
  }
  let parsed: ReturnType<S['safeParse']>;
  try {
    parsed = schema.safeParse(merged) as ReturnType<S['safeParse']>;
  } catch (err) {
    throw new CutterError('INVALID_CONFIG', `invalid config: ${(err as Error).message}`);
  }
  if (!parsed.success) {
    const issue = parsed.error!.issues[0];
    // A check across several keys (the schema's superRefine) names them in its message.
    if (issue.path.length === 0) throw new CutterError('INVALID_CONFIG', `invalid config: ${issue.message}`);
    const key = String(issue.path[0] ?? '');
    const shown = key in merged ? ` = ${JSON.stringify(merged[key])}` : '';
    throw new CutterError(
      'INVALID_CONFIG',
      `invalid config: ${key}${shown}${source[key] ? ` (from ${source[key]})` : ''}: ${issue.message}`,
    );
  }
  return withCredentials(parsed.data as z.infer<S>, source, section, env);
}

/**
 * Fills `username`/`password` from `tokenFile` when given, else — for commands on the server's
 * machine — from the admin credentials the server wrote on its first start
 * (`<data dir>/admin.json`, found as ./admin-token.ts says), unless they are set already.
 * @throws CutterError INVALID_CONFIG when the token file cannot be read.
 */
function withCredentials<T>(cfg: T, source: Record<string, string>, section: string, env: NodeJS.ProcessEnv): T {
  const c = cfg as T & { username?: string; password?: string; tokenFile?: string; broker?: string };
  if (c.username) return cfg;
  const file = c.tokenFile ?? (section === 'cli' ? findAdminToken(env, c.broker).file : undefined);
  if (!file) return cfg;
  try {
    const creds = JSON.parse(readFileSync(file, 'utf8')) as { username?: unknown; password?: unknown };
    if (typeof creds.username !== 'string' || typeof creds.password !== 'string') throw new Error('expected {"username", "password"}');
    return { ...cfg, username: creds.username, password: creds.password };
  } catch (err) {
    if (!c.tokenFile) return cfg;
    throw new CutterError(
      'INVALID_CONFIG',
      `invalid config: tokenFile = "${c.tokenFile}"${source.tokenFile ? ` (from ${source.tokenFile})` : ''}: ${(err as Error).message}`,
    );
  }
}
