/**
 * loadConfig: the config file, environment variables and flags merged in that order, with the
 * errors a user sees for a bad value.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfigSchema, CliConfigSchema, configFilePath, loadConfig, ServerConfigSchema } from '../../shared/config.js';
import { ID_RE } from '../../shared/topics.js';
import { GiB, thrown } from './units-helpers.js';

describe('loadConfig', () => {
  let dir: string;
  /** An XDG_CONFIG_HOME without cutter/config.json, so no test reads the real home directory. */
  let emptyXdg: string;
  let n = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cutter-config-test-'));
    emptyXdg = join(dir, 'empty-xdg');
    mkdirSync(emptyXdg);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Writes a config file and returns its path. */
  function file(content: unknown): string {
    const path = join(dir, `config-${n++}.json`);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  }

  const env = (vars: Record<string, string> = {}): NodeJS.ProcessEnv => ({ XDG_CONFIG_HOME: emptyXdg, ...vars });

  it('without file, env or flags gives the defaults', () => {
    const c = loadConfig(AgentConfigSchema, 'agent', {}, env());
    expect(c.broker).toBe('mqtt://127.0.0.1:1883');
    expect(c.prefix).toBe('cutter');
    expect(c.logLevel).toBe('info');
    expect(c.heartbeatMs).toBe(1_000);
    expect(c.maxTasks).toBe(4);
    expect(c.maxMemory).toBeUndefined();
    expect(c.allowExec).toBe(false);
    expect(c.labels).toEqual({});
    expect(c.keepaliveSec).toBe(2);
    expect(c.lostAfterMs).toBe(0);
    expect(c.drainTimeoutMs).toBe(300_000);
    expect(c.nodeId).toMatch(ID_RE);
    const s = loadConfig(ServerConfigSchema, 'server', {}, env());
    expect(s.port).toBe(1883);
    expect(s.policy).toBe('spread');
    expect(s.leaseMs).toBe(10_000);
    expect(loadConfig(CliConfigSchema, 'cli', {}, env()).timeoutMs).toBe(5_000);
  });

  it('reads top-level keys from the config file', () => {
    const path = file({ maxTasks: 3, maxMemory: '8g', broker: 'mqtt://hub.lan:1883', labels: { gpu: 'none' } });
    const c = loadConfig(AgentConfigSchema, 'agent', {}, env(), path);
    expect(c.maxTasks).toBe(3);
    expect(c.maxMemory).toBe(8 * GiB);
    expect(c.broker).toBe('mqtt://hub.lan:1883');
    expect(c.labels).toEqual({ gpu: 'none' });
  });

  it("the command's section overrides top-level keys; other sections are ignored", () => {
    const path = file({
      maxTasks: 3,
      prefix: 'top',
      agent: { maxTasks: 6 },
      server: { maxTasks: 9, prefix: 'srv' },
      cli: { prefix: 'clip' },
    });
    const agent = loadConfig(AgentConfigSchema, 'agent', {}, env(), path);
    expect(agent.maxTasks).toBe(6);
    expect(agent.prefix).toBe('top');
    expect(loadConfig(CliConfigSchema, 'cli', {}, env(), path).prefix).toBe('clip');
    expect(loadConfig(ServerConfigSchema, 'server', {}, env(), path).prefix).toBe('srv');
  });

  it('env overrides the config file (section included)', () => {
    const path = file({ maxMemory: '8g', agent: { maxMemory: '12g' } });
    expect(loadConfig(AgentConfigSchema, 'agent', {}, env(), path).maxMemory).toBe(12 * GiB);
    const c = loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_MAX_MEMORY: '16g' }), path);
    expect(c.maxMemory).toBe(16 * GiB);
  });

  it('an empty env variable does not override', () => {
    const path = file({ maxMemory: '8g' });
    expect(loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_MAX_MEMORY: '' }), path).maxMemory).toBe(8 * GiB);
  });

  it('flags override env and file; undefined flags do not', () => {
    const path = file({ maxMemory: '8g', maxTasks: 2 });
    const e = env({ CUTTER_MAX_MEMORY: '16g', CUTTER_MAX_TASKS: '5' });
    const c = loadConfig(AgentConfigSchema, 'agent', { maxMemory: '20g', maxTasks: undefined }, e, path);
    expect(c.maxMemory).toBe(20 * GiB);
    expect(c.maxTasks).toBe(5);
  });

  it('maps camelCase keys to CUTTER_UPPER_SNAKE env names and coerces their text', () => {
    const c = loadConfig(
      AgentConfigSchema,
      'agent',
      {},
      env({
        CUTTER_NODE_ID: 'gpu-box',
        CUTTER_HEARTBEAT_MS: '500',
        CUTTER_KEEPALIVE_SEC: '9',
        CUTTER_ALLOW_EXEC: 'yes',
        CUTTER_LABELS: 'gpu=rtx4090, site=home',
        CUTTER_LOG_LEVEL: 'debug',
        CUTTER_BROKER: 'mqtts://broker.lan:8883',
        CUTTER_PREFIX: 'lab',
      }),
    );
    expect(c).toMatchObject({
      nodeId: 'gpu-box',
      heartbeatMs: 500,
      keepaliveSec: 9,
      allowExec: true,
      labels: { gpu: 'rtx4090', site: 'home' },
      logLevel: 'debug',
      broker: 'mqtts://broker.lan:8883',
      prefix: 'lab',
    });
    const s = loadConfig(
      ServerConfigSchema,
      'server',
      {},
      env({ CUTTER_EXTERNAL_BROKER: 'mqtt://ext:1883', CUTTER_LEASE_MS: '2500', CUTTER_POLICY: 'binpack' }),
    );
    expect(s).toMatchObject({ externalBroker: 'mqtt://ext:1883', leaseMs: 2500, policy: 'binpack' });
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('CUTTER_ALLOW_EXEC=%j → %s', (text, value) => {
    expect(loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_ALLOW_EXEC: text })).allowExec).toBe(value);
  });

  it('uses CUTTER_CONFIG when no path is given', () => {
    const path = file({ maxTasks: 7 });
    expect(loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_CONFIG: path })).maxTasks).toBe(7);
    expect(configFilePath(undefined, env({ CUTTER_CONFIG: path }))).toBe(path);
  });

  it('an explicit path beats CUTTER_CONFIG', () => {
    const a = file({ maxTasks: 7 });
    const b = file({ maxTasks: 8 });
    expect(loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_CONFIG: a }), b).maxTasks).toBe(8);
  });

  it('falls back to $XDG_CONFIG_HOME/cutter/config.json when it exists, else to no file', () => {
    const xdg = join(dir, 'xdg-with-file');
    mkdirSync(join(xdg, 'cutter'), { recursive: true });
    writeFileSync(join(xdg, 'cutter', 'config.json'), JSON.stringify({ agent: { maxTasks: 11 } }));
    expect(configFilePath(undefined, { XDG_CONFIG_HOME: xdg })).toBe(join(xdg, 'cutter', 'config.json'));
    expect(loadConfig(AgentConfigSchema, 'agent', {}, { XDG_CONFIG_HOME: xdg }).maxTasks).toBe(11);
    expect(configFilePath(undefined, env())).toBeNull();
  });

  describe('errors name the key, the value and where it came from', () => {
    it('env', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_MAX_MEMORY: 'lots' })));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('maxMemory');
      expect(err.message).toContain('"lots"');
      expect(err.message).toContain('env CUTTER_MAX_MEMORY');
      expect(err.message).toContain('not a size');
    });

    it('env number that is not a number', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_MAX_TASKS: 'many' })));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toMatch(/maxTasks = "many" \(from env CUTTER_MAX_TASKS\)/);
    });

    it('config file top level', () => {
      const path = file({ maxTasks: 0 });
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env(), path));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('maxTasks = 0');
      expect(err.message).toContain(`config file ${path}`);
    });

    it('config file section', () => {
      const path = file({ server: { policy: 'random' } });
      const err = thrown(() => loadConfig(ServerConfigSchema, 'server', {}, env(), path));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('policy = "random"');
      expect(err.message).toContain(`config file ${path} (server.policy)`);
    });

    it('flag', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', { heartbeatMs: 5 }, env()));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('heartbeatMs = 5');
      // The flag as the user types it (--heartbeat 5), not the config key's spelling (--heartbeat-ms).
      expect(err.message).toContain('(from flag --heartbeat)');
    });

    it('flag with a bad node id', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', { nodeId: 'bad/id' }, env()));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('nodeId = "bad/id"');
      expect(err.message).toContain('flag --node-id');
    });

    it('the source reported is the one that won', () => {
      const path = file({ port: 1 });
      const err = thrown(() => loadConfig(ServerConfigSchema, 'server', {}, env({ CUTTER_PORT: '70000' }), path));
      expect(err.message).toContain('port = "70000"');
      expect(err.message).toContain('env CUTTER_PORT');
      expect(err.message).not.toContain('config file');
    });

    it('a bad prefix or broker URL', () => {
      expect(thrown(() => loadConfig(CliConfigSchema, 'cli', {}, env({ CUTTER_PREFIX: 'a+b' }))).message).toContain('env CUTTER_PREFIX');
      expect(thrown(() => loadConfig(CliConfigSchema, 'cli', { broker: 'not a url' }, env())).message).toContain('flag --broker');
    });

    it('a boolean that is not one', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_ALLOW_EXEC: 'maybe' })));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('env CUTTER_ALLOW_EXEC');
    });

    it('a malformed label is INVALID_CONFIG', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_LABELS: 'novalue' })));
      expect(err.code).toBe('INVALID_CONFIG');
      expect(err.message).toContain('"novalue"');
    });

    // Regression test for a bug found in review (fixed).
    it('a malformed label names the key and its source (env CUTTER_LABELS)', () => {
      const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env({ CUTTER_LABELS: 'novalue' })));
      expect(err.message).toContain('labels');
      expect(err.message).toContain('env CUTTER_LABELS');
    });
  });

  it('a missing config file is INVALID_CONFIG naming the path', () => {
    const path = join(dir, 'does-not-exist.json');
    const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env(), path));
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toContain(`cannot read config file ${path}`);
  });

  it('a config file that is not JSON is INVALID_CONFIG naming the path', () => {
    const path = file('{ maxTasks: 3 ');
    const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env(), path));
    expect(err.code).toBe('INVALID_CONFIG');
    expect(err.message).toContain(path);
  });

  // Regression test for a bug found in review (fixed).
  it('a config file whose JSON is null is INVALID_CONFIG, not a TypeError', () => {
    const path = file('null');
    const err = thrown(() => loadConfig(AgentConfigSchema, 'agent', {}, env(), path));
    expect(err.code).toBe('INVALID_CONFIG');
  });
});
