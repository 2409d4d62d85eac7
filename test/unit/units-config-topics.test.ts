import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentConfigSchema,
  CliConfigSchema,
  configFilePath,
  loadConfig,
  ServerConfigSchema,
  SizeSchema,
  DurationSchema,
} from '../../shared/config.js';
import { CutterError } from '../../shared/errors.js';
import { topicMatches } from '../../shared/topics.js';
import { ID_RE, IdSchema, topics } from '../../shared/topics.js';
import { formatBytes, formatDuration, parseBytes } from '../../shared/units.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

/** The CutterError `fn` throws (fails the test when it throws nothing or something else). */
function thrown(fn: () => unknown): CutterError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CutterError);
    return err as CutterError;
  }
  throw new Error('expected a CutterError, nothing was thrown');
}

describe('parseBytes', () => {
  it.each([
    ['24g', 24 * GiB],
    ['24G', 24 * GiB],
    ['512m', 512 * MiB],
    ['512M', 512 * MiB],
    ['1.5g', 1.5 * GiB],
    ['1024', 1024],
    ['0', 0],
    ['100b', 100],
    ['4k', 4 * KiB],
    ['2t', 2 * TiB],
    ['10GiB', 10 * GiB],
    ['10gib', 10 * GiB],
    ['10GB', 10 * GiB],
    ['64KiB', 64 * KiB],
    ['256MB', 256 * MiB],
    [' 8g ', 8 * GiB],
    ['8 g', 8 * GiB],
    ['0.5k', 512],
    ['1.9', 1],
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseBytes(text)).toBe(bytes);
  });

  it('always returns an integer', () => {
    expect(Number.isInteger(parseBytes('1.3k'))).toBe(true);
    expect(parseBytes('1.3k')).toBe(Math.floor(1.3 * 1024));
  });

  it.each(['', 'lots', '-1', '-1g', '1x', '1gg', 'g', '1,5g', '1e9', '.5g', '12 gigabytes', '0x10', 'Infinity', 'NaN'])(
    'rejects %j with INVALID_SIZE',
    (text) => {
      const err = thrown(() => parseBytes(text));
      expect(err.code).toBe('INVALID_SIZE');
      expect(err.message).toContain(`"${text}"`);
    },
  );

  it('rejects sizes beyond Number.MAX_SAFE_INTEGER', () => {
    const err = thrown(() => parseBytes('99999999t'));
    expect(err.code).toBe('INVALID_SIZE');
    expect(err.message).toContain('too large');
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [900, '900 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [512 * MiB, '512.0 MiB'],
    [24 * GiB, '24.0 GiB'],
    [Math.round(23.4 * GiB), '23.4 GiB'],
    [3 * TiB, '3.0 TiB'],
    [2048 * TiB, '2048.0 TiB'],
    [-2048, '-2.0 KiB'],
  ])('%d → %j', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('round-trips with parseBytes for whole units', () => {
    for (const s of ['512m', '24g', '3t', '4k']) expect(parseBytes(formatBytes(parseBytes(s)))).toBe(parseBytes(s));
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [850, '850 ms'],
    [999.6, '1000 ms'],
    [1000, '1.0 s'],
    [3200, '3.2 s'],
    [59_949, '59.9 s'],
    [60_000, '1m 00s'],
    [245_000, '4m 05s'],
    [3_599_000, '59m 59s'],
    [3_600_000, '1h 00m'],
    [7_380_000, '2h 03m'],
  ])('%d ms → %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('topics', () => {
  const t = topics();

  it('builds every topic under cutter/v1 by default', () => {
    expect(t.prefix).toBe('cutter');
    expect(t.nodeStatus('n1')).toBe('cutter/v1/nodes/n1/status');
    expect(t.allNodeStatus()).toBe('cutter/v1/nodes/+/status');
    expect(t.nodeAssign('n1')).toBe('cutter/v1/nodes/n1/assign');
    expect(t.nodeCancel('n1')).toBe('cutter/v1/nodes/n1/cancel');
    expect(t.taskEvents('t1')).toBe('cutter/v1/tasks/t1/events');
    expect(t.allTaskEvents()).toBe('cutter/v1/tasks/+/events');
    expect(t.taskState('t1')).toBe('cutter/v1/tasks/t1/state');
    expect(t.allTaskState()).toBe('cutter/v1/tasks/+/state');
    expect(t.requests('c1')).toBe('cutter/v1/requests/c1');
    expect(t.allRequests()).toBe('cutter/v1/requests/+');
    expect(t.replies('c1')).toBe('cutter/v1/replies/c1');
    expect(t.controllerStatus()).toBe('cutter/v1/controller/status');
  });

  it('uses a custom prefix, which may have several levels', () => {
    const h = topics('home/lab');
    expect(h.prefix).toBe('home/lab');
    expect(h.nodeStatus('n1')).toBe('home/lab/v1/nodes/n1/status');
    expect(h.idFrom('home/lab/v1/nodes/n1/status', 'nodes')).toBe('n1');
    expect(h.idFrom('cutter/v1/nodes/n1/status', 'nodes')).toBeNull();
  });

  it('every wildcard filter matches the topics its builder makes', () => {
    expect(topicMatches(t.allNodeStatus(), t.nodeStatus('gpu-box'))).toBe(true);
    expect(topicMatches(t.allTaskEvents(), t.taskEvents('t-1'))).toBe(true);
    expect(topicMatches(t.allTaskState(), t.taskState('t-1'))).toBe(true);
    expect(topicMatches(t.allRequests(), t.requests('cli-1'))).toBe(true);
    expect(topicMatches(t.allNodeStatus(), t.nodeAssign('gpu-box'))).toBe(false);
    expect(topicMatches(t.allTaskEvents(), t.taskState('t-1'))).toBe(false);
  });

  it.each(['a+b', 'a#', '#', '+', '', '/cutter', 'cutter/'])('refuses prefix %j', (prefix) => {
    expect(() => topics(prefix)).toThrow(/prefix/);
  });

  describe('idFrom', () => {
    it('parses the id of each kind', () => {
      expect(t.idFrom('cutter/v1/nodes/gpu-box_1.lan/status', 'nodes')).toBe('gpu-box_1.lan');
      expect(t.idFrom('cutter/v1/nodes/n1/assign', 'nodes')).toBe('n1');
      expect(t.idFrom('cutter/v1/tasks/t-9/events', 'tasks')).toBe('t-9');
      expect(t.idFrom('cutter/v1/requests/cli-1', 'requests')).toBe('cli-1');
      expect(t.idFrom('cutter/v1/replies/cli-1', 'replies')).toBe('cli-1');
    });

    it('returns null for another kind, another prefix or another version', () => {
      expect(t.idFrom('cutter/v1/tasks/t1/events', 'nodes')).toBeNull();
      expect(t.idFrom('other/v1/nodes/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('cutter/v2/nodes/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('cutter/v1/nodesX/n1/status', 'nodes')).toBeNull();
      expect(t.idFrom('xcutter/v1/nodes/n1/status', 'nodes')).toBeNull();
    });

    it.each(['', '.hidden', '-dash', 'a b', 'x'.repeat(65), '+', '#', 'ü'])('rejects the id %j', (id) => {
      expect(t.idFrom(`cutter/v1/nodes/${id}/status`, 'nodes')).toBeNull();
    });

    it('accepts a 64-character id', () => {
      expect(t.idFrom(`cutter/v1/tasks/${'a'.repeat(64)}/state`, 'tasks')).toBe('a'.repeat(64));
    });
  });

  it('ID_RE and IdSchema agree', () => {
    for (const id of ['a', 'A_1', '_x', 'n.lan', 'a-b', 'x'.repeat(64)]) {
      expect(ID_RE.test(id)).toBe(true);
      expect(IdSchema.safeParse(id).success).toBe(true);
    }
    for (const id of ['', '.a', '-a', 'a/b', 'a+b', 'a#b', 'x'.repeat(65)]) {
      expect(ID_RE.test(id)).toBe(false);
      expect(IdSchema.safeParse(id).success).toBe(false);
    }
  });
});

describe('topicMatches', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/x/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/', true], // + matches an empty level
    ['+/+', '/finance', true],
    ['a/#', 'a/b/c/d', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a', true], // # also matches the parent level (MQTT 3.1.1 §4.7.1.2)
    ['a/#', 'b/c', false],
    ['#', 'anything/at/all', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a/b', 'a', false],
    ['cutter/v1/nodes/+/status', 'cutter/v1/nodes/n1/status', true],
    ['cutter/v1/nodes/+/status', 'cutter/v1/nodes/n1/assign', false],
    ['A/b', 'a/b', false],
  ])('%j vs %j → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe('SizeSchema', () => {
  it('accepts numbers and size strings, rejects other text with the parseBytes message', () => {
    expect(SizeSchema.parse(42)).toBe(42);
    expect(SizeSchema.parse('2g')).toBe(2 * GiB);
    const r = SizeSchema.safeParse('lots');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].message).toContain('"lots" is not a size');
    expect(SizeSchema.safeParse(-1).success).toBe(false);
  });
});

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
      expect(err.message).toContain('flag --heartbeat-ms');
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

describe('DurationSchema', () => {
  it.each([
    ['250', 250],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['10m', 600_000],
    ['2h', 7_200_000],
    [0, 0],
  ] as const)('reads %j as %d ms', (text, ms) => {
    expect(DurationSchema.parse(text)).toBe(ms);
  });
  it.each(['soon', '10 minutes', '-5s', '5d'])('rejects %j naming the value', (text) => {
    const r = DurationSchema.safeParse(text);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toContain(`"${text}" is not a duration`);
  });
});
