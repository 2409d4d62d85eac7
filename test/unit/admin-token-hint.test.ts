/**
 * shared/config/admin-token.ts: the admin token a `cutter server --data-dir` hints at is used only
 * for a broker URL on this machine with that server's port, never sent to another broker; and for
 * that port the hint decides, over the default data dir's token.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dataDirHintPath, findAdminToken, removeDataDirHint, writeDataDirHint } from '../../shared/config/admin-token.js';

describe('the --data-dir hint', () => {
  const env = { XDG_DATA_HOME: mkdtempSync(join(tmpdir(), 'cutter-hint-home-')) };
  const dataDir = mkdtempSync(join(tmpdir(), 'cutter-hint-data-'));
  writeFileSync(join(dataDir, 'admin.json'), '{"username":"admin:local","password":"x"}');

  it('gives the hinted token for that server only', () => {
    expect(writeDataDirHint(dataDir, [18830, 18831], env)).toBeDefined();
    const file = join(dataDir, 'admin.json');
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18830').file).toBe(file);
    expect(findAdminToken(env, 'mqtt://localhost:18831').file).toBe(file);
    expect(findAdminToken(env, 'mqtt://10.0.0.9:1883,mqtt://127.0.0.1:18830').file).toBe(file);
    const elsewhere = findAdminToken(env, 'mqtt://192.168.1.20:18830');
    expect(elsewhere.file).toBeUndefined();
    expect(elsewhere.looked.join('\n')).toContain('its hints are for servers on this machine; mqtt://192.168.1.20:18830 is not on it');
    const otherPort = findAdminToken(env, 'mqtt://127.0.0.1:1883');
    expect(otherPort.file).toBeUndefined();
    expect(otherPort.looked.join('\n')).toContain('port-1883 (absent: no cutter server --data-dir on port 1883)');
  });

  it('keeps one hint per server, so servers started side by side each find their own token', () => {
    const second = mkdtempSync(join(tmpdir(), 'cutter-hint-data-'));
    writeFileSync(join(second, 'admin.json'), '{"username":"admin:local","password":"y"}');
    writeDataDirHint(second, [18840], env);
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18830').file).toBe(join(dataDir, 'admin.json'));
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18840').file).toBe(join(second, 'admin.json'));
    removeDataDirHint(second, env);
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18840').file).toBeUndefined();
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18830').file).toBe(join(dataDir, 'admin.json'));
  });

  it('is removed when its server stops, and then nothing is found', () => {
    removeDataDirHint(dataDir, env);
    expect(findAdminToken(env, 'mqtt://127.0.0.1:18830').file).toBeUndefined();
  });

  it("decides over the default data dir's token: the hinted server's own, or none for one that keeps none", () => {
    // A server once ran on the default data dir here: its token must not go to the servers beside it.
    const home = { XDG_DATA_HOME: mkdtempSync(join(tmpdir(), 'cutter-hint-home-')) };
    mkdirSync(join(home.XDG_DATA_HOME, 'cutter'));
    const defaultToken = join(home.XDG_DATA_HOME, 'cutter', 'admin.json');
    writeFileSync(defaultToken, '{"username":"admin:local","password":"default"}');
    writeDataDirHint(dataDir, [18850], home);
    const insecure = mkdtempSync(join(tmpdir(), 'cutter-hint-data-'));
    writeDataDirHint(insecure, [18851], home);
    expect(findAdminToken(home, 'mqtt://127.0.0.1:18850').file).toBe(join(dataDir, 'admin.json'));
    const none = findAdminToken(home, 'mqtt://127.0.0.1:18851');
    expect(none.file).toBeUndefined();
    expect(none.looked.at(-1)).toContain('absent: the server on port 18851 keeps no admin token');
    // No hint for the port: the default data dir's server.
    expect(findAdminToken(home, 'mqtt://127.0.0.1:1883').file).toBe(defaultToken);
    expect(findAdminToken(home, 'mqtt://192.168.1.20:18850').file).toBe(defaultToken);
    // A server on the default data dir takes port 18851 over: the stale hint goes.
    writeDataDirHint(join(home.XDG_DATA_HOME, 'cutter'), [18851], home);
    expect(existsSync(dataDirHintPath(18851, home))).toBe(false);
    expect(findAdminToken(home, 'mqtt://127.0.0.1:18851').file).toBe(defaultToken);
    expect(findAdminToken(home, 'mqtt://127.0.0.1:18850').file).toBe(join(dataDir, 'admin.json'));
  });
});
