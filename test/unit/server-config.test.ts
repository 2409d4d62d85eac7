/**
 * The server config's checks across keys (shared/config/server.ts) and the defaults `--help`
 * shows (shared/config/help.ts), read from the built CLI as a user sees them.
 */
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  AgentConfigSchema,
  CommonConfigSchema,
  DEFAULT_TLS_PORT,
  DurationSchema,
  loadConfig,
  ServerConfigSchema,
  SizeSchema,
  serverConfigConflicts,
} from '../../shared/config.js';
import { CUTTER, tempDir } from '../harness.js';

/** A config home without a config file. */
const noConfig = tempDir();

/** The message `cutter server` with these flags (config keys) fails with, or undefined when it is accepted. */
function refusal(flags: Record<string, unknown>): string | undefined {
  try {
    loadConfig(ServerConfigSchema, 'server', { dataDir: '/tmp/cutter-config-test', ...flags }, { XDG_CONFIG_HOME: noConfig });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('server config: settings that do not fit together', () => {
  it.each([
    [{ tlsCert: 'c.pem' }, ['--tls-cert', '--tls-key']],
    [{ tlsKey: 'k.pem' }, ['--tls-key', '--tls-cert']],
    [{ tlsPort: 8884 }, ['--tls-port', '--tls-cert', '--tls-key']],
    [{ tlsCert: 'c.pem', tlsKey: 'k.pem', tlsClientCert: true }, ['--tls-client-cert', '--tls-ca']],
    [{ wsPort: 9001, wsTls: true }, ['--ws-tls', '--tls-cert']],
    [{ tlsCert: 'c.pem', tlsKey: 'k.pem', wsTls: true }, ['--ws-tls', '--ws-port']],
    [{ brokerOnly: true }, ['brokerOnly needs redis (--redis)', '--broker-only']],
    [{ redis: 'redis://r:6379', externalBroker: 'mqtt://b:1883' }, ['--redis', '--broker']],
    [{ externalBroker: 'mqtt://b:1883', tlsCert: 'c.pem', tlsKey: 'k.pem' }, ['--tls-cert', '--tls-key', 'externalBroker (--broker)']],
    [{ externalBroker: 'mqtt://b:1883', wsPort: 9001 }, ['--ws-port', '--broker']],
    [{ port: 8088 }, ['port (--port)', 'httpPort (--http-port)', '8088']],
    [{ wsPort: 1883 }, ['--port', '--ws-port', '1883']],
    [{ tlsCert: 'c.pem', tlsKey: 'k.pem', httpPort: DEFAULT_TLS_PORT }, ['--tls-port', '--http-port']],
    [{ ollamaPort: 8088 }, ['--http-port', '--ollama-port']],
  ])('%j is refused, naming the flags', (flags, names) => {
    const message = refusal(flags);
    expect(message).toMatch(/^invalid config: /);
    for (const name of names) expect(message).toContain(name);
  });

  it('accepts what fits: defaults, full TLS with WebSocket, one port on two distinct addresses, a port whose listener is off', () => {
    expect(refusal({})).toBeUndefined();
    expect(
      refusal({ tlsCert: 'c.pem', tlsKey: 'k.pem', tlsCa: 'ca.pem', tlsClientCert: true, tlsPort: 8884, wsPort: 9001, wsTls: true }),
    ).toBeUndefined();
    expect(refusal({ host: '10.0.0.2', httpHost: '127.0.0.1', port: 8088 })).toBeUndefined();
    expect(refusal({ ollamaApi: false, ollamaPort: 8088 })).toBeUndefined();
    expect(refusal({ httpPort: 0, port: 0, wsPort: 0 })).toBeUndefined();
    expect(refusal({ redis: 'redis://r:6379', brokerOnly: true })).toBeUndefined();
    // The external broker's port is not this server's to bind.
    expect(refusal({ externalBroker: 'mqtt://b:8088' })).toBeUndefined();
  });

  it('reports every conflict, and a field error before them', () => {
    const parsed = ServerConfigSchema.safeParse({ tlsKey: 'k.pem', brokerOnly: true, wsTls: true });
    expect(parsed.error?.issues.map((i) => i.message)).toEqual([
      'tlsKey (--tls-key) is set without tlsCert (--tls-cert)',
      'wsTls (--ws-tls) needs tlsCert (--tls-cert) and tlsKey (--tls-key)',
      'wsTls (--ws-tls) needs wsPort (--ws-port)',
      'brokerOnly needs redis (--redis): a broker alone (--broker-only), without the controller, carries no mesh',
    ]);
    expect(serverConfigConflicts(ServerConfigSchema.parse({}))).toEqual([]);
    expect(refusal({ port: 'x', brokerOnly: true })).toMatch(/^invalid config: port = "x"/);
  });
});

/** `node dist/cli/main.js <command> --help`, as `--flag` → the text in its `(default …)`. */
function helpDefaults(command: string): Map<string, string> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CUTTER_')) delete env[k];
  const r = spawnSync(process.execPath, [CUTTER, command, '--help'], { env, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const options: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (/^ {2}-/.test(line)) options.push(line.trim());
    else if (/^ {4,}\S/.test(line) && options.length > 0) options[options.length - 1] += ` ${line.trim()}`;
  }
  const out = new Map<string, string>();
  for (const o of options) {
    const flag = /--[a-z-]+/.exec(o)![0];
    const d = /\(default ([^;)]+)/.exec(o);
    if (d) out.set(flag, d[1]);
  }
  return out;
}

/** The value a default shown in the help gives when typed back as the flag. */
const asTyped = {
  plain: (text: string) => (text.startsWith('~/') ? homedir() + text.slice(1) : text),
  size: (text: string) => SizeSchema.parse(text),
  duration: (text: string) => DurationSchema.parse(text),
  seconds: (text: string) => (DurationSchema.parse(text) as number) / 1000,
};

/** Schema default, as a flag value would compare with it (numbers from text). */
const schemaDefault = (schema: { shape: Record<string, { parse(v: unknown): unknown }> }, key: string) =>
  schema.shape[key].parse(undefined);

describe('--help shows the schema defaults', () => {
  it('cutter server --help: every default shown is the schema default, typed back as a flag', () => {
    const shown = helpDefaults('server');
    const keys: [string, string, keyof typeof asTyped][] = [
      ['--prefix', 'prefix', 'plain'],
      ['--log-level', 'logLevel', 'plain'],
      ['--port', 'port', 'plain'],
      ['--host', 'host', 'plain'],
      ['--lease', 'leaseMs', 'duration'],
      ['--data-dir', 'dataDir', 'plain'],
      ['--policy', 'policy', 'plain'],
      ['--submits-per-minute', 'submitsPerMinute', 'plain'],
      ['--broker-requests-per-minute', 'brokerRequestsPerMinute', 'plain'],
      ['--ollama-host', 'ollamaHost', 'plain'],
      ['--ollama-port', 'ollamaPort', 'plain'],
      ['--ha-prefix', 'haPrefix', 'plain'],
      ['--ha-remove-after', 'haRemoveAfterMs', 'duration'],
      ['--forget-after', 'forgetAfterMs', 'duration'],
      ['--http-port', 'httpPort', 'plain'],
      ['--http-host', 'httpHost', 'plain'],
      ['--forward-host', 'forwardHost', 'plain'],
      ['--wake-port', 'wakePort', 'plain'],
      ['--wake-cooldown', 'wakeCooldownMs', 'duration'],
      ['--wake-via', 'wakeVia', 'plain'],
      ['--state', 'state', 'plain'],
      ['--leader-lease', 'leaderLeaseMs', 'duration'],
    ];
    for (const [flag, key, format] of keys) {
      expect(shown.has(flag), `${flag} shows no default`).toBe(true);
      expect(String(asTyped[format](shown.get(flag)!)), flag).toBe(String(schemaDefault(ServerConfigSchema, key)));
    }
    // --tls-port's default applies only with --tls-cert: the one default not in the schema.
    expect(shown.get('--tls-port')).toBe(`${DEFAULT_TLS_PORT} with --tls-cert`);
    expect([...shown.keys()].sort()).toEqual([...keys.map(([f]) => f), '--tls-port'].sort());
    expect(shown.get('--http-port')).toBe('8088');
    expect(shown.get('--ha-remove-after')).toBe('168h');
  });

  it('cutter agent --help: every default shown is the schema default, typed back as a flag', () => {
    const shown = helpDefaults('agent');
    const keys: [string, string, keyof typeof asTyped][] = [
      ['--broker', 'broker', 'plain'],
      ['--max-tasks', 'maxTasks', 'plain'],
      ['--ollama-url', 'ollamaUrl', 'plain'],
      ['--heartbeat', 'heartbeatMs', 'duration'],
      ['--keepalive', 'keepaliveSec', 'seconds'],
      ['--lost-after', 'lostAfterMs', 'duration'],
      ['--drain-timeout', 'drainTimeoutMs', 'duration'],
      ['--files-max-size', 'filesMaxSize', 'size'],
    ];
    for (const [flag, key, format] of keys) {
      expect(shown.has(flag), `${flag} shows no default`).toBe(true);
      expect(String(asTyped[format](shown.get(flag)!)), flag).toBe(String(schemaDefault(AgentConfigSchema, key)));
    }
    for (const [flag, key] of [
      ['--prefix', 'prefix'],
      ['--log-level', 'logLevel'],
    ])
      expect(shown.get(flag)).toBe(String(schemaDefault(CommonConfigSchema, key)));
    // Policies whose empty default means "any" say so in words.
    expect(shown.get('--exec-allowlist')).toBe('any');
    expect(shown.get('--files-max-size')).toBe('4g');
    expect(shown.get('--drain-timeout')).toBe('5m');
  });
});
