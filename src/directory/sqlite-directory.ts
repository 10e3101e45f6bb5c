import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { existsSync } from 'node:fs';
import type { AmpDirectoryClient } from '../types.js';
import { generateGatewayKey } from './key-shape.js';

/**
 * The key directory in one SQLite file, through Node's built-in `node:sqlite` (Node 22.13+).
 *
 * How keys are stored: a key is 190 random bits, so a fast hash is as safe as a slow one (there is
 * nothing to guess) and keeps a lookup cheap. A per-row salt alone would make the lookup a scan,
 * so each row has two digests: `lookup`, an HMAC-SHA256 under a random secret of this database,
 * indexed (one B-tree probe per lookup; without the secret nobody can test a key against the
 * index), and `hash`, SHA-256 of a per-row salt and the key, checked in constant time. A client's
 * Amp key is stored encrypted (AES-256-GCM) under a key derived from its gateway key, so the file
 * alone does not give up Amp keys: only a request with the gateway key can unlock its Amp key.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  team TEXT,
  lookup BLOB NOT NULL UNIQUE,
  salt BLOB NOT NULL,
  hash BLOB NOT NULL,
  upstream_key BLOB,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS keys_by_name ON keys (name);
`;
const LOOKUP_SECRET = 'lookup-secret';
const UPSTREAM_KEY_INFO = 'amp-proxy upstream key';
/** How long a reader waits for the CLI's write lock before its lookup fails (closed). */
const BUSY_TIMEOUT_MS = 1000;

/**
 * The part of `node:sqlite` used here, declared for this package's `@types/node` (which targets
 * Node 20, where the module does not exist).
 */
interface SqliteStatement {
  run(...values: unknown[]): { changes: number | bigint };
  get(...values: unknown[]): unknown;
  all(...values: unknown[]): unknown[];
}
interface DatabaseSync {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}
interface SqliteModule {
  DatabaseSync: new (file: string, options: { readOnly: boolean }) => DatabaseSync;
}

let sqlite: SqliteModule | undefined;

/**
 * `node:sqlite`, loaded once. Node 22 announces it with an ExperimentalWarning (24 and later do
 * not); the project promises no runtime warnings, so that one warning, and only it, is dropped
 * while the module loads. `undefined` before Node 22.13.
 */
export function loadSqlite(): SqliteModule | undefined {
  if (sqlite) return sqlite;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === 'ExperimentalWarning' && String(warning).startsWith('SQLite')) return;
    return Reflect.apply(emitWarning, this, [warning, ...rest]);
  } as typeof process.emitWarning;
  try {
    const node = process as { getBuiltinModule?: (id: string) => unknown };
    sqlite = node.getBuiltinModule?.('node:sqlite') as SqliteModule | undefined;
  } catch {
    sqlite = undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
  return sqlite;
}

export interface NewKey {
  readonly team?: string | undefined;
  readonly expiresAt?: number | undefined;
  readonly upstreamKey?: string | undefined;
}

export interface KeyListing {
  readonly id: string;
  readonly name: string;
  readonly team: string | undefined;
  readonly createdAt: number;
  readonly expiresAt: number | undefined;
  readonly revokedAt: number | undefined;
  readonly hasUpstreamKey: boolean;
}

interface KeyRow {
  id: string;
  name: string;
  team: string | null;
  salt: Uint8Array;
  hash: Uint8Array;
  upstream_key: Uint8Array | null;
  expires_at: number | null;
  revoked_at: number | null;
}

function saltedHash(salt: Uint8Array, key: string): Buffer {
  return createHash('sha256').update(salt).update(key).digest();
}

function upstreamKeyCipherKey(key: string, salt: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, UPSTREAM_KEY_INFO, 32));
}

/** iv (12) | tag (16) | ciphertext */
function sealUpstreamKey(upstreamKey: string, key: string, salt: Uint8Array): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', upstreamKeyCipherKey(key, salt), iv);
  const sealed = Buffer.concat([cipher.update(upstreamKey, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]);
}

function openUpstreamKey(sealed: Uint8Array, key: string, salt: Uint8Array): string {
  const bytes = Buffer.from(sealed);
  const decipher = createDecipheriv('aes-256-gcm', upstreamKeyCipherKey(key, salt), bytes.subarray(0, 12));
  decipher.setAuthTag(bytes.subarray(12, 28));
  return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
}

/** Why a key store cannot be used; the message names the file, never a key. */
export class KeyStoreError extends Error {}

/** One open connection to a key file. Close it when done: the gateway opens one per lookup. */
export class KeyStore {
  readonly #db: DatabaseSync;
  readonly #lookupSecret: Uint8Array;

  private constructor(db: DatabaseSync, lookupSecret: Uint8Array) {
    this.#db = db;
    this.#lookupSecret = lookupSecret;
  }

  /** Opens `file`; `create` makes it (and its lookup secret) when it does not exist yet. */
  static open(file: string, mode: 'read' | 'write' | 'create'): KeyStore {
    const create = mode === 'create';
    const module = loadSqlite();
    if (!module) throw new KeyStoreError('needs node:sqlite, which Node 22.13 and later have built in');
    if (!create && !existsSync(file))
      throw new KeyStoreError(`${file} does not exist; create it with amp-proxy keys add`);
    let db: DatabaseSync;
    try {
      db = new module.DatabaseSync(file, { readOnly: mode === 'read' });
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    } catch (error) {
      throw new KeyStoreError(`${file} cannot be opened: ${(error as Error).message}`);
    }
    try {
      if (create) {
        db.exec(SCHEMA);
        db.prepare('INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)').run(
          LOOKUP_SECRET,
          randomBytes(32),
        );
      }
      const row = db.prepare('SELECT value FROM meta WHERE name = ?').get(LOOKUP_SECRET) as
        { value: Uint8Array } | undefined;
      if (!row) throw new KeyStoreError(`${file} is not an amp-proxy key file`);
      return new KeyStore(db, row.value);
    } catch (error) {
      db.close();
      if (error instanceof KeyStoreError) throw error;
      throw new KeyStoreError(`${file} is not an amp-proxy key file: ${(error as Error).message}`);
    }
  }

  close(): void {
    this.#db.close();
  }

  #lookupDigest(key: string): Buffer {
    return createHmac('sha256', this.#lookupSecret).update(key).digest();
  }

  /** Issues a new key for `name`: the key is returned here and stored nowhere in the clear. */
  add(name: string, { team, expiresAt, upstreamKey }: NewKey = {}): { id: string; key: string } {
    const key = generateGatewayKey();
    const id = randomBytes(6).toString('hex');
    const salt = randomBytes(16);
    this.#db
      .prepare(
        'INSERT INTO keys (id, name, team, lookup, salt, hash, upstream_key, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        id,
        name,
        team ?? null,
        this.#lookupDigest(key),
        salt,
        saltedHash(salt, key),
        upstreamKey === undefined ? null : sealUpstreamKey(upstreamKey, key, salt),
        Date.now(),
        expiresAt ?? null,
      );
    return { id, key };
  }

  list(): KeyListing[] {
    const rows = this.#db
      .prepare(
        'SELECT id, name, team, created_at, expires_at, revoked_at, upstream_key IS NOT NULL AS mapped FROM keys ORDER BY created_at, id',
      )
      .all() as {
      id: string;
      name: string;
      team: string | null;
      created_at: number;
      expires_at: number | null;
      revoked_at: number | null;
      mapped: number;
    }[];
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      team: row.team ?? undefined,
      createdAt: row.created_at,
      expiresAt: row.expires_at ?? undefined,
      revokedAt: row.revoked_at ?? undefined,
      hasUpstreamKey: row.mapped === 1,
    }));
  }

  /** Revokes the key with this id, or every key of this name; returns how many were revoked. */
  revoke(nameOrId: string): number {
    const { changes } = this.#db
      .prepare('UPDATE keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL')
      .run(Date.now(), nameOrId, nameOrId);
    return Number(changes);
  }

  /** The client of a live key (not revoked, not expired), or `undefined`. */
  find(key: string): AmpDirectoryClient | undefined {
    const row = this.#db
      .prepare(
        'SELECT id, name, team, salt, hash, upstream_key, expires_at, revoked_at FROM keys WHERE lookup = ?',
      )
      .get(this.#lookupDigest(key)) as KeyRow | undefined;
    if (!row || row.revoked_at !== null) return undefined;
    if (!timingSafeEqual(saltedHash(row.salt, key), row.hash)) return undefined;
    if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
    return {
      name: row.name,
      ...(row.team === null ? {} : { team: row.team }),
      ...(row.upstream_key === null ? {} : { upstreamKey: openUpstreamKey(row.upstream_key, key, row.salt) }),
      ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
    };
  }
}

/**
 * A resolver over a key file, opened for each lookup (lookups are rare: the cache answers the
 * rest), so a file replaced or changed by `amp-proxy keys` is read as it is now, and a reload
 * leaves no connection behind.
 */
export function sqliteResolver(file: string): (key: string) => Promise<AmpDirectoryClient | undefined> {
  return async (key) => {
    const store = KeyStore.open(file, 'read');
    try {
      return store.find(key);
    } finally {
      store.close();
    }
  };
}
