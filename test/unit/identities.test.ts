import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IdentityStore, ensureAdmin } from '../../broker/identities.js';

const store = () => {
  const dir = mkdtempSync(join(tmpdir(), 'cutter-ids-'));
  return { dir, ids: new IdentityStore(dir) };
};

describe('IdentityStore', () => {
  it('verifies a created token, refuses a wrong or revoked one, and keeps only hashes (mode 0600)', () => {
    const { dir, ids } = store();
    const { username, password } = ids.create('agent', 'nb');
    expect(username).toBe('agent:nb');
    expect(ids.verify(username, password)).toEqual({ username, role: 'agent', name: 'nb' });
    expect(ids.verify(username, `${password}x`)).toBeNull();
    expect(statSync(join(dir, 'tokens.json')).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(ids.list())).not.toContain(password);
    ids.revoke(username);
    expect(ids.verify(username, password)).toBeNull();
    expect(new IdentityStore(dir).verify(username, password)).toBeNull();
  });

  it('does not throw on a password of the right length in characters but not in bytes', () => {
    const { ids } = store();
    const secret = ids.addEphemeral({ username: 'controller:internal', role: 'controller', name: 'internal' });
    expect(ids.verify('controller:internal', '\uFFFD'.repeat(secret.length))).toBeNull();
    expect(ids.verify('controller:internal', secret)).toMatchObject({ role: 'controller' });
  });

  it('creates the first admin token once, written 0600 for the local CLI', () => {
    const { dir, ids } = store();
    const path = ensureAdmin(ids, dir)!;
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(ensureAdmin(ids, dir)).toBeNull();
  });
});
