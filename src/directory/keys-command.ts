import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { KeyStore, KeyStoreError, type KeyListing } from './sqlite-directory.js';

export const KEYS_USAGE = `Usage: amp-proxy keys add <name> [--team T] [--expires D] [--amp-key-from-env VAR] [--db FILE]
       amp-proxy keys list [--db FILE]
       amp-proxy keys revoke <name|id> [--db FILE]

Manages the gateway keys of a key file (point the gateway at it with clients: { sqlite: FILE }).
A key is printed once, by add, and stored only as digests.

  --db FILE               the key file (default $AMP_PROXY_KEYS_DB, else ./amp-proxy-keys.db)
  --team T                the client's team
  --expires D             when the key stops working: 30d, 12h, 45m, or a date (2027-01-31)
  --amp-key-from-env VAR  map the client to its own Amp key, read from env variable VAR
                          (never from the command line, where other users could read it)`;

const DEFAULT_DB = 'amp-proxy-keys.db';
const DURATION = /^(\d+)([dhm])$/;
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000 } as const;

export interface CommandIo {
  readonly env: NodeJS.ProcessEnv;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

class UsageError extends Error {}

function parseExpiry(value: string, now: number): number {
  const duration = DURATION.exec(value);
  if (duration) return now + Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS];
  const date = Date.parse(value);
  if (Number.isNaN(date)) throw new UsageError(`--expires: expected 30d, 12h, 45m or a date, got ${value}`);
  if (date <= now) throw new UsageError('--expires: the date has passed');
  return date;
}

function isoOrDash(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function statusOf(key: KeyListing, now: number): string {
  if (key.revokedAt !== undefined) return 'revoked';
  return key.expiresAt !== undefined && key.expiresAt <= now ? 'expired' : 'active';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_cell, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function add(
  store: KeyStore,
  positionals: string[],
  values: Record<string, string | undefined>,
  io: CommandIo,
) {
  const [name, extra] = positionals;
  if (name === undefined || name.trim() === '' || extra !== undefined)
    throw new UsageError('keys add takes one name');
  let upstreamKey: string | undefined;
  const variable = values['amp-key-from-env'];
  if (variable !== undefined) {
    upstreamKey = io.env[variable]?.trim();
    if (!upstreamKey) throw new UsageError(`--amp-key-from-env: ${variable} is not set or empty`);
  }
  const expiresAt = values.expires === undefined ? undefined : parseExpiry(values.expires, Date.now());
  const { id, key } = store.add(name, { team: values.team, expiresAt, upstreamKey });
  io.out(`${key}\n`);
  io.err(`Key ${id} issued to ${name}. It is shown this once: hand it over now.\n`);
}

function list(store: KeyStore, io: CommandIo): void {
  const now = Date.now();
  const rows = store
    .list()
    .map((key) => [
      key.id,
      key.name,
      key.team ?? '-',
      statusOf(key, now),
      isoOrDash(key.createdAt),
      isoOrDash(key.expiresAt),
      key.hasUpstreamKey ? 'mapped' : '-',
    ]);
  io.out(`${table([['ID', 'NAME', 'TEAM', 'STATUS', 'CREATED', 'EXPIRES', 'AMP KEY'], ...rows])}\n`);
}

function revoke(store: KeyStore, positionals: string[], io: CommandIo): number {
  const [nameOrId, extra] = positionals;
  if (nameOrId === undefined || extra !== undefined) throw new UsageError('keys revoke takes one name or id');
  const count = store.revoke(nameOrId);
  if (count === 0) {
    io.err(`No active key has the name or id ${nameOrId}.\n`);
    return 1;
  }
  io.out(`Revoked ${count} key${count === 1 ? '' : 's'} of ${nameOrId}.\n`);
  return 0;
}

/** `amp-proxy keys …`: the exit code (2 for a usage error, 1 for a failure). */
export function runKeysCommand(args: readonly string[], io: CommandIo): number {
  try {
    const [action, ...rest] = args;
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        db: { type: 'string' },
        team: { type: 'string' },
        expires: { type: 'string' },
        'amp-key-from-env': { type: 'string' },
      },
    });
    if (action !== 'add' && (values.team ?? values.expires ?? values['amp-key-from-env']) !== undefined)
      throw new UsageError('--team, --expires and --amp-key-from-env belong to keys add');
    const file = resolvePath(values.db ?? io.env.AMP_PROXY_KEYS_DB ?? DEFAULT_DB);
    if (action !== 'add' && action !== 'list' && action !== 'revoke')
      throw new UsageError(action === undefined ? 'keys needs an action' : `unknown action ${action}`);
    const store = KeyStore.open(file, action === 'add' ? 'create' : action === 'list' ? 'read' : 'write');
    try {
      if (action === 'add') add(store, positionals, values, io);
      else if (action === 'list') list(store, io);
      else return revoke(store, positionals, io);
      return 0;
    } finally {
      store.close();
    }
  } catch (error) {
    if (error instanceof KeyStoreError) {
      io.err(`amp-proxy keys: ${error.message}\n`);
      return 1;
    }
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`amp-proxy keys: ${(error as Error).message}\n\n${KEYS_USAGE}\n`);
      return 2;
    }
    throw error;
  }
}
