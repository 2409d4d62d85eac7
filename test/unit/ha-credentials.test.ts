import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { haCredentials } from '../../controller/extensions/index.js';
import { ServerConfigSchema } from '../../shared/config.js';
import { tempDir } from '../harness.js';

describe('--ha-broker credentials', () => {
  const cfg = (extra: Record<string, unknown>) => ServerConfigSchema.parse({ haBroker: 'mqtt://ha.local:1883', ...extra });
  it('come from --ha-username/--ha-password, or from --ha-token-file', () => {
    expect(haCredentials(cfg({ haUsername: 'u', haPassword: 'p' }))).toEqual({ username: 'u', password: 'p' });
    const file = join(tempDir(), 'ha.json');
    writeFileSync(file, JSON.stringify({ username: 'cutter', password: 's3cret' }));
    expect(haCredentials(cfg({ haTokenFile: file, haUsername: 'ignored' }))).toEqual({ username: 'cutter', password: 's3cret' });
  });
  it('name the file and the problem when the token file is bad', () => {
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, '{"user": "x"}');
    expect(() => haCredentials(cfg({ haTokenFile: file }))).toThrow(/haTokenFile = ".*bad\.json": expected \{"username", "password"\}/);
    expect(() => haCredentials(cfg({ haTokenFile: join(tempDir(), 'none.json') }))).toThrow(/ENOENT/);
  });
  it('defaults: discovery on, prefix homeassistant, HTTP on 127.0.0.1:8088, removal after 7 days', () => {
    const c = ServerConfigSchema.parse({});
    expect(c).toMatchObject({
      ha: true,
      haPrefix: 'homeassistant',
      httpPort: 8088,
      httpHost: '127.0.0.1',
      haRemoveAfterMs: 7 * 24 * 3_600_000,
    });
    expect(ServerConfigSchema.safeParse({ haPrefix: 'home/assistant' }).success).toBe(false);
    expect(ServerConfigSchema.parse({ ha: 'false', haRemoveAfterMs: '2h' })).toMatchObject({ ha: false, haRemoveAfterMs: 7_200_000 });
  });
});
