/**
 * Identities and their tokens: who may connect to the embedded broker, in which role.
 *
 * A token grants an MQTT username `ROLE:NAME` (`agent:notebook`, `admin:local`, `observer:ha`)
 * and a random password, shown once. Only an scrypt hash is kept (node:crypto's scrypt — OpenSSL's,
 * N=16384, r=8, p=1, 32-byte key, 16-byte salt), in `<dataDir>/tokens.json` (mode 0600).
 */
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CutterError } from '../shared/errors.js';
import { ID_RE } from '../shared/topics.js';
import { makeDirSync } from '../shared/make-dir.js';

/** `mcp`: a scoped identity for `cutter mcp` (see broker/acl.ts: a few request ops, task and node reads). */
export const RoleSchema = z.enum(['admin', 'agent', 'observer', 'mcp']);
export type Role = z.infer<typeof RoleSchema> | 'controller';

/** Who a connection is. For an agent, `name` is its node id. */
export interface Identity {
  username: string;
  role: Role;
  name: string;
}

const TokenSchema = z.object({
  username: z.string(),
  role: RoleSchema,
  name: z.string().regex(ID_RE),
  salt: z.string(),
  hash: z.string(),
  createdAt: z.number(),
  revokedAt: z.number().nullable(),
});
type Token = z.infer<typeof TokenSchema>;

/** A token as `cutter token list` shows it (never the secret). */
export type TokenInfo = Omit<Token, 'salt' | 'hash'>;

const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const hash = (password: string, salt: Buffer) => scryptSync(password, salt, 32, SCRYPT);
/** scrypt on libuv's thread pool: ~40 ms of CPU (this machine) that the event loop does not wait on. */
const hashAsync = (password: string, salt: Buffer) =>
  new Promise<Buffer>((resolve, reject) => scrypt(password, salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))));
const sha256 = (password: string) => createHash('sha256').update(password).digest();
const identityOf = (t: Token): Identity => ({ username: t.username, role: t.role, name: t.name });

export class IdentityStore {
  private tokens: Token[] = [];
  private readonly file: string;
  /** Identities that live only in this process (the controller's own connection). */
  private readonly ephemeral = new Map<string, { identity: Identity; password: string }>();

  /** @throws CutterError INVALID_CONFIG when tokens.json exists but cannot be read. */
  constructor(dataDir: string) {
    makeDirSync(dataDir, 0o700);
    this.file = join(dataDir, 'tokens.json');
    if (existsSync(this.file)) this.load();
  }

  /** mtime (ms) of tokens.json when it was last read or written here. */
  private loadedMtimeMs = 0;

  private load(): void {
    const parsed = z.array(TokenSchema).safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
    if (!parsed.success) throw new CutterError('INVALID_CONFIG', `${this.file} is not a valid token file`);
    this.tokens = parsed.data;
    this.loadedMtimeMs = statSync(this.file).mtimeMs;
  }

  /**
   * Re-reads tokens.json when another process changed it: broker instances of a Redis cluster
   * (`--broker-only`) share the controller's data dir (or a copy kept in sync), so a token created
   * or revoked there counts here from the next connection on. A file that cannot be read now keeps
   * the tokens already loaded.
   */
  private refresh(): void {
    try {
      if (statSync(this.file).mtimeMs !== this.loadedMtimeMs) this.load();
    } catch {
      // missing or half-written: keep what we have
    }
  }

  /**
   * Creates a token. For `agent`, `name` is the node id.
   * @returns the username and the password (shown once; only its hash is kept).
   * @throws CutterError INVALID_ARGUMENT for a bad name or a username that exists.
   */
  create(role: z.infer<typeof RoleSchema>, name: string): { username: string; password: string } {
    if (!ID_RE.test(name))
      throw new CutterError(
        'INVALID_ARGUMENT',
        `"${name}" is not a valid ${role === 'agent' ? 'node id' : 'name'} (1-64 of A-Z a-z 0-9 _ . -)`,
      );
    const username = `${role}:${name}`;
    if (this.tokens.some((t) => t.username === username && t.revokedAt === null))
      throw new CutterError('INVALID_ARGUMENT', `a token for ${username} exists: revoke it first`);
    const password = randomBytes(24).toString('base64url');
    const salt = randomBytes(16);
    this.tokens = this.tokens.filter((t) => t.username !== username);
    this.tokens.push({
      username,
      role,
      name,
      salt: salt.toString('base64'),
      hash: hash(password, salt).toString('base64'),
      createdAt: Date.now(),
      revokedAt: null,
    });
    this.save();
    return { username, password };
  }

  /** @throws CutterError NOT_FOUND when there is no live token for the username. */
  revoke(username: string): TokenInfo {
    const t = this.tokens.find((x) => x.username === username && x.revokedAt === null);
    if (!t) throw new CutterError('NOT_FOUND', `no live token for ${username}`);
    t.revokedAt = Date.now();
    this.save();
    return info(t);
  }

  list(): TokenInfo[] {
    return this.tokens.map(info);
  }

  hasAdmin(): boolean {
    return this.tokens.some((t) => t.role === 'admin' && t.revokedAt === null);
  }

  /** Adds an identity that exists only in this process, with a fresh password. */
  addEphemeral(identity: Identity): string {
    const password = randomBytes(24).toString('base64url');
    this.ephemeral.set(identity.username, { identity, password });
    return password;
  }

  /**
   * Passwords scrypt has accepted, by username: the token's `hash` they matched and the SHA-256 of
   * the password. A token's password is 24 random bytes, so its SHA-256 is as hard to reverse as
   * its scrypt hash; scrypt guards tokens.json on disk, and this map only spares a second scrypt
   * (~40 ms of CPU) for each later connection of the same client (every `cutter` command connects
   * anew). An entry counts only while its token is live and unchanged: a revoked or re-created
   * token falls back to scrypt. Wrong passwords are never kept; at most one entry per username.
   */
  private readonly verified = new Map<string, { hash: string; digest: Buffer }>();

  /**
   * Checks credentials (the broker at CONNECT, the HTTP surfaces at each request). scrypt runs on
   * the thread pool, so a broker that admits a burst of connections keeps routing meanwhile, and
   * only for a password not accepted before (`verified`). A token revoked or replaced while scrypt
   * ran is refused.
   * @returns the identity, or null (unknown, revoked, wrong password).
   */
  async verifyAsync(username: string, password: string): Promise<Identity | null> {
    const e = this.ephemeral.get(username);
    if (e) {
      // Compare bytes, not characters: timingSafeEqual throws on buffers of different lengths.
      const expected = Buffer.from(e.password);
      const given = Buffer.from(password);
      return expected.length === given.length && timingSafeEqual(expected, given) ? e.identity : null;
    }
    this.refresh();
    const t = this.tokens.find((x) => x.username === username && x.revokedAt === null);
    if (!t) {
      this.verified.delete(username);
      return null;
    }
    const known = this.verified.get(username);
    if (known?.hash === t.hash) return timingSafeEqual(known.digest, sha256(password)) ? identityOf(t) : null;
    const key = await hashAsync(password, Buffer.from(t.salt, 'base64'));
    this.refresh();
    if (!this.tokens.some((x) => x.username === t.username && x.hash === t.hash && x.revokedAt === null)) return null;
    if (!timingSafeEqual(Buffer.from(t.hash, 'base64'), key)) return null;
    this.verified.set(t.username, { hash: t.hash, digest: sha256(password) });
    return identityOf(t);
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.tokens, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
    chmodSync(this.file, 0o600);
    this.loadedMtimeMs = statSync(this.file).mtimeMs;
  }
}

function info(t: Token): TokenInfo {
  return { username: t.username, role: t.role, name: t.name, createdAt: t.createdAt, revokedAt: t.revokedAt };
}

/** Where the server writes the first admin token for the local CLI (mode 0600). */
export function adminCredentialsPath(dataDir: string): string {
  return join(dataDir, 'admin.json');
}

/**
 * On a first start (no admin token yet), creates `admin:local` and writes its credentials to
 * `<dataDir>/admin.json` (mode 0600), where the CLI on this machine finds them.
 * @returns the path written, or null when an admin token already existed.
 */
export function ensureAdmin(store: IdentityStore, dataDir: string): string | null {
  if (store.hasAdmin()) return null;
  const creds = store.create('admin', 'local');
  const path = adminCredentialsPath(dataDir);
  writeFileSync(path, JSON.stringify(creds, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
