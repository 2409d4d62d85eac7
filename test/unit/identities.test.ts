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
  it('verifies a created token, refuses a wrong or revoked one, and keeps only hashes (mode 0600)', async () => {
    const { dir, ids } = store();
    const { username, password } = ids.create('agent', 'nb');
    expect(username).toBe('agent:nb');
    expect(await ids.verifyAsync(username, password)).toEqual({ username, role: 'agent', name: 'nb' });
    expect(await ids.verifyAsync(username, `${password}x`)).toBeNull();
    expect(statSync(join(dir, 'tokens.json')).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(ids.list())).not.toContain(password);
    ids.revoke(username);
    expect(await ids.verifyAsync(username, password)).toBeNull();
    expect(await new IdentityStore(dir).verifyAsync(username, password)).toBeNull();
  });

  it('does not throw on a password of the right length in characters but not in bytes', async () => {
    const { ids } = store();
    const secret = ids.addEphemeral({ username: 'controller:internal', role: 'controller', name: 'internal' });
    expect(await ids.verifyAsync('controller:internal', '\uFFFD'.repeat(secret.length))).toBeNull();
    expect(await ids.verifyAsync('controller:internal', secret)).toMatchObject({ role: 'controller' });
  });

  /** Which settles first: the check, or a setImmediate queued right after it (scrypt on the thread pool takes ms). */
  const race = async (check: Promise<unknown>) => {
    const order: string[] = [];
    await Promise.all([
      check.then((r) => order.push(r === null ? 'refused' : 'accepted')),
      new Promise<void>((resolve) => setImmediate(() => resolve(void order.push('immediate')))),
    ]);
    return order;
  };

  it('verifyAsync runs scrypt off the event loop once, then answers a known password at once', async () => {
    const { ids } = store();
    const { username, password } = ids.create('admin', 'local');
    expect(await race(ids.verifyAsync(username, password))).toEqual(['immediate', 'accepted']);
    expect(await race(ids.verifyAsync(username, password))).toEqual(['accepted', 'immediate']);
    // A wrong password is refused without scrypt once the right one is known, and never remembered.
    expect(await race(ids.verifyAsync(username, `${password}x`))).toEqual(['refused', 'immediate']);
    expect(await ids.verifyAsync(username, password)).toEqual({ username, role: 'admin', name: 'local' });
  });

  it('forgets a checked password when its token is revoked or re-created, here or by another process', async () => {
    const { dir, ids } = store();
    const first = ids.create('agent', 'nb');
    expect(await ids.verifyAsync(first.username, first.password)).not.toBeNull();
    const other = new IdentityStore(dir);
    other.revoke(first.username);
    expect(await ids.verifyAsync(first.username, first.password)).toBeNull();
    const second = other.create('agent', 'nb');
    expect(await ids.verifyAsync(first.username, first.password)).toBeNull();
    expect(await race(ids.verifyAsync(second.username, second.password))).toEqual(['immediate', 'accepted']);
    ids.revoke(second.username);
    expect(await ids.verifyAsync(second.username, second.password)).toBeNull();
  });

  it('refuses a token revoked while its scrypt ran', async () => {
    const { ids } = store();
    const { username, password } = ids.create('agent', 'nb');
    const check = ids.verifyAsync(username, password);
    ids.revoke(username);
    expect(await check).toBeNull();
  });

  it('creates the first admin token once, written 0600 for the local CLI', () => {
    const { dir, ids } = store();
    const path = ensureAdmin(ids, dir)!;
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(ensureAdmin(ids, dir)).toBeNull();
  });
});
