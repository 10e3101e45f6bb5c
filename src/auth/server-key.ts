import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { UpstreamKeyFunction, UpstreamKeySource } from '../types.js';

export interface ResolvedServerKey {
  readonly key: string | undefined;
  readonly source: UpstreamKeySource;
  /** With `source: 'env'`: the variable the key came from. */
  readonly variable?: ServerKeyVariable;
}

/**
 * The variables that can hold the server key, in order. The gateway's own comes first: in a shell
 * set up for the Amp CLI, `AMP_API_KEY` is the user's key, which would otherwise silently become
 * the gateway's server key.
 */
const SERVER_KEY_VARIABLES = ['AMP_PROXY_UPSTREAM_KEY', 'AMP_API_KEY'] as const;
export type ServerKeyVariable = (typeof SERVER_KEY_VARIABLES)[number];

/** The first of `SERVER_KEY_VARIABLES` set to a non-empty value in `env`. */
export function serverKeyFromVariables(
  env: Readonly<Record<string, string | undefined>>,
): { key: string; variable: ServerKeyVariable } | undefined {
  for (const variable of SERVER_KEY_VARIABLES) {
    const key = env[variable]?.trim();
    if (key) return { key, variable };
  }
  return undefined;
}

/** Resolves the server key; synchronous whenever the answer is known without I/O. */
export type ServerKeyResolver = (req: IncomingMessage) => ResolvedServerKey | Promise<ResolvedServerKey>;

export const DEFAULT_UPSTREAM = 'https://ampcode.com';
const SERVER_KEY_FROM_ENV_TTL_MS = 30_000;
const NO_KEY: ResolvedServerKey = { key: undefined, source: 'none' };

/** The Amp CLI's own secrets file, which holds keys as `apiKey@<server url>`. */
export function defaultSecretsFile(): string {
  return join(homedir(), '.local', 'share', 'amp', 'secrets.json');
}

/**
 * The names under which the Amp CLI may have stored the key for `upstream`: the URL exactly as
 * configured, with and without a trailing slash, and the CLI's spelling of the default server.
 */
export function secretsFileEntries(upstream: string): string[] {
  const bare = upstream.replace(/\/+$/, '');
  const entries = [`apiKey@${upstream}`, `apiKey@${bare}/`, `apiKey@${bare}`];
  if (bare === DEFAULT_UPSTREAM) entries.push(`apiKey@${DEFAULT_UPSTREAM}/`);
  return [...new Set(entries)];
}

async function readSecretsFile(file: string, entries: readonly string[]): Promise<string | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    // No file, or not JSON: the CLI was never logged in here, which is not an error for a gateway.
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  for (const entry of entries) {
    const value = (parsed as Record<string, unknown>)[entry];
    if (typeof value === 'string' && value.trim() !== '') return value.trim();
  }
  return undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** Env `AMP_PROXY_UPSTREAM_KEY` or `AMP_API_KEY`, else the secrets file entry for `upstream`, read now. */
export async function readServerKeyFromEnv(
  upstream: string,
  secretsFile: string,
): Promise<ResolvedServerKey> {
  const fromEnv = serverKeyFromVariables(process.env);
  if (fromEnv) return { key: fromEnv.key, source: 'env', variable: fromEnv.variable };
  const fromFile = await readSecretsFile(secretsFile, secretsFileEntries(upstream));
  return fromFile ? { key: fromFile, source: 'secrets-file' } : NO_KEY;
}

/**
 * The server key under `upstreamKey: 'env'`: env (`AMP_PROXY_UPSTREAM_KEY`, then `AMP_API_KEY`),
 * then the secrets file. Both are re-read at most every 30 s so that a rotated key is picked up without a
 * restart, and concurrent requests share one read.
 */
function serverKeyFromEnvResolver(upstream: string, secretsFile: string): ServerKeyResolver {
  let cached: ResolvedServerKey | undefined;
  let expiresAt = 0;
  let refreshing: Promise<ResolvedServerKey> | undefined;

  const refresh = async (): Promise<ResolvedServerKey> => {
    const resolved = await readServerKeyFromEnv(upstream, secretsFile);
    cached = resolved;
    expiresAt = Date.now() + SERVER_KEY_FROM_ENV_TTL_MS;
    return resolved;
  };

  return () => {
    if (cached && Date.now() < expiresAt) return cached;
    refreshing ??= refresh().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };
}

/**
 * `upstreamKey` once validated: a key, a function, `'env'` (the opt-in to the keys the process
 * environment and the Amp CLI hold), or `null` for no server key.
 */
export type ServerKeySetting = string | UpstreamKeyFunction | null;
/** The `upstreamKey` value that opts in to the server key from the environment (variables, then the Amp CLI secrets file); no key is ever that word. */
export const SERVER_KEY_FROM_ENV = 'env';

/** The one place that decides which server key a request may spend. */
export function createServerKeyResolver(
  upstreamKey: ServerKeySetting,
  upstream: string,
  secretsFile: string,
): ServerKeyResolver {
  if (upstreamKey === null) return () => NO_KEY;
  if (upstreamKey === SERVER_KEY_FROM_ENV) return serverKeyFromEnvResolver(upstream, secretsFile);
  if (typeof upstreamKey === 'string') {
    const fixed: ResolvedServerKey = { key: upstreamKey, source: 'config' };
    return () => fixed;
  }
  return async (req) => {
    const key = nonEmpty(await upstreamKey(req));
    return key ? { key, source: 'function' } : NO_KEY;
  };
}
