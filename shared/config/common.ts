/** Config pieces every command shares: value types (sizes, durations, booleans from env text) and the common keys. */
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { parseBytes } from '../units.js';
import { BrokerUrlsSchema } from '../broker-urls.js';

/** A size in bytes given as a number or text like `12g` (Docker's units). */
export const SizeSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseBytes(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** A boolean given as `true`/`false` or env text (`1`, `0`, `yes`, `no`). */
export const Bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
/** An integer in [min, max], given as a number or text. */
export const Int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A list of strings, as an array or comma separated (env and flags: `a, b,c` → `['a', 'b', 'c']`); default empty. */
export const ListSchema = () =>
  z
    .union([z.array(z.string()), z.string()])
    .transform((v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : v,
    )
    .default([]);

/** Keys every command shares. */
export const CommonConfigSchema = z.object({
  /** Broker URL the agent and CLI dial, and the controller uses with `--broker`; several, comma-separated, are tried in turn. */
  broker: BrokerUrlsSchema.default('mqtt://127.0.0.1:1883'),
  /** Topic prefix (`{prefix}/v1/…`). */
  prefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^+#]+$/)
    .default('cutter'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** A JSON file with `{"username", "password"}` (what `cutter token create --json` prints). */
  tokenFile: z.string().optional(),
  /**
   * PEM file of the CA that signed the broker's certificate, for `mqtts://` and `wss://` URLs with a
   * private CA (a self-signed server). Without it the system's CAs are trusted.
   */
  caFile: z.string().min(1).optional(),
  /** PEM client certificate, for a broker that requires one (`cutter server --tls-client-cert`). */
  certFile: z.string().min(1).optional(),
  /** PEM private key of `certFile`. */
  keyFile: z.string().min(1).optional(),
});

/** A duration in ms given as a number (ms) or text like `500ms`, `30s`, `10m`, `2h`, `1h30m` (shared/duration.ts). */
export const DurationSchema = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** The default data directory: `$XDG_DATA_HOME/cutter` or `~/.local/share/cutter`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'cutter');
}

/** The hostname reduced to id characters (`My Laptop.local` → `My-Laptop.local`). */
export function defaultNodeId(): string {
  const id = hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 64);
  return id || 'node';
}

/** Short-lived CLI commands. */
export const CliConfigSchema = CommonConfigSchema.extend({
  /** How long to wait for the broker and the controller's reply, ms. */
  timeoutMs: Int(100, 600_000).default(5_000),
  /** This machine's id, sent with `cutter run` for `--prefer-local` (env CUTTER_MACHINE_ID); default: shared/machine-id.ts. */
  machineId: z.string().min(1).max(128).optional(),
});

export type CommonConfig = z.infer<typeof CommonConfigSchema>;
export type CliConfig = z.infer<typeof CliConfigSchema>;
