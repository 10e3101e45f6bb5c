import { resolve as resolvePath } from 'node:path';
import { AmpProxyConfigError } from '../errors.js';
import { isKeyToken } from '../auth/key-recognition.js';
import { isPlainObject } from '../plain-object.js';
import type { AmpClientResolver } from '../types.js';
import type { ClientCacheSettings } from './client-cache.js';
import { ClientDirectory } from './client-directory.js';
import { GATEWAY_KEY_SHAPE, type KeyShape } from './key-shape.js';
import { KeyStore, KeyStoreError, sqliteResolver } from './sqlite-directory.js';

/** The defaults of `clients.cache` and `clients.timeoutMs`, as the README documents them. */
export const DIRECTORY_DEFAULTS: ClientCacheSettings = {
  maxEntries: 10_000,
  positiveTtlMs: 30_000,
  negativeTtlMs: 5_000,
  timeoutMs: 2_000,
};
const CLIENTS_FORMS =
  'an array of { key, name?, upstreamKey? }, a resolver (key) => client, { resolve, keyShape? } or { sqlite: file }';
const DIRECTORY_FIELDS = new Set(['resolve', 'sqlite', 'keyShape', 'cache', 'timeoutMs']);
const CACHE_FIELDS = ['maxEntries', 'positiveTtlMs', 'negativeTtlMs'] as const;
// setTimeout silently turns larger values into 1 ms.
const MAX_TIMER_MS = 2_147_483_647;

function fail(option: string, problem: string): never {
  throw new AmpProxyConfigError(option, problem);
}

function wholeNumber(value: unknown, option: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    fail(option, `expected a whole number from ${min} to ${MAX_TIMER_MS}`);
  }
  return value;
}

function validateCache(value: unknown, timeout: unknown): ClientCacheSettings {
  if (value !== undefined && !isPlainObject(value))
    fail('clients.cache', `expected { ${CACHE_FIELDS.join(', ')} }`);
  const cache = value ?? {};
  for (const field of Object.keys(cache)) {
    if (!(CACHE_FIELDS as readonly string[]).includes(field))
      fail(`clients.cache.${field}`, `unknown field; the fields are ${CACHE_FIELDS.join(', ')}`);
  }
  return {
    maxEntries: wholeNumber(cache.maxEntries, 'clients.cache.maxEntries', DIRECTORY_DEFAULTS.maxEntries, 1),
    positiveTtlMs: wholeNumber(
      cache.positiveTtlMs,
      'clients.cache.positiveTtlMs',
      DIRECTORY_DEFAULTS.positiveTtlMs,
      0,
    ),
    negativeTtlMs: wholeNumber(
      cache.negativeTtlMs,
      'clients.cache.negativeTtlMs',
      DIRECTORY_DEFAULTS.negativeTtlMs,
      0,
    ),
    timeoutMs: wholeNumber(timeout, 'clients.timeoutMs', DIRECTORY_DEFAULTS.timeoutMs, 1),
  };
}

function validateKeyShape(value: unknown): KeyShape | undefined {
  if (value === undefined) return undefined;
  if (value === 'gateway') return GATEWAY_KEY_SHAPE;
  const expected = "expected 'gateway' or { length, prefix?, test? }";
  if (!isPlainObject(value)) fail('clients.keyShape', expected);
  const { length, prefix, test } = value;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 16) {
    // Shorter tokens turn up in ordinary requests: they would be taken for misplaced keys.
    fail('clients.keyShape.length', 'expected a whole number of at least 16');
  }
  if (
    prefix !== undefined &&
    (typeof prefix !== 'string' || !isKeyToken(prefix) || prefix.length >= length)
  ) {
    fail('clients.keyShape.prefix', 'expected a string of key characters shorter than length');
  }
  if (test !== undefined && typeof test !== 'function')
    fail('clients.keyShape.test', 'expected a function (token) => boolean');
  if (prefix === undefined && test === undefined)
    fail('clients.keyShape', 'needs a prefix, a test or both besides length');
  return { length, prefix, test: test as KeyShape['test'] };
}

/** The file must be a key file already: a typo in the path fails the factory, not every request. */
function validateSqliteFile(value: unknown): string {
  if (typeof value !== 'string' || value === '') fail('clients.sqlite', 'expected the path of a key file');
  const file = resolvePath(value);
  try {
    KeyStore.open(file, 'read').close();
  } catch (error) {
    if (error instanceof KeyStoreError) fail('clients.sqlite', error.message);
    throw error;
  }
  return file;
}

/**
 * `clients` given as a resolver (a function, or `{ resolve, keyShape?, cache?, timeoutMs? }`) or
 * as `{ sqlite: file, cache?, timeoutMs? }`: the directory, with every setting checked.
 */
export function validateClientDirectory(value: unknown): ClientDirectory {
  if (typeof value === 'function')
    return new ClientDirectory({
      resolve: value as AmpClientResolver,
      shape: undefined,
      cache: DIRECTORY_DEFAULTS,
      description: 'resolver (no key shape)',
    });
  if (!isPlainObject(value)) fail('clients', `expected ${CLIENTS_FORMS}`);
  for (const field of Object.keys(value)) {
    if (!DIRECTORY_FIELDS.has(field))
      fail(`clients.${field}`, `unknown field; a directory has ${[...DIRECTORY_FIELDS].join(', ')}`);
  }
  const cache = validateCache(value.cache, value.timeoutMs);
  if (value.resolve === undefined && value.sqlite === undefined)
    fail('clients', `expected ${CLIENTS_FORMS}, got an object with neither resolve nor sqlite`);
  if (value.resolve !== undefined && value.sqlite !== undefined)
    fail('clients', 'expected either resolve or sqlite, not both');
  if (value.sqlite !== undefined) {
    if (value.keyShape !== undefined)
      fail('clients.keyShape', 'a key file holds keys of the gateway shape only; remove keyShape');
    const file = validateSqliteFile(value.sqlite);
    return new ClientDirectory({
      resolve: sqliteResolver(file),
      shape: GATEWAY_KEY_SHAPE,
      cache,
      description: `sqlite ${file}`,
    });
  }
  if (typeof value.resolve !== 'function')
    fail('clients.resolve', 'expected a function (key) => Promise<client>');
  const shape = validateKeyShape(value.keyShape);
  return new ClientDirectory({
    resolve: value.resolve as AmpClientResolver,
    shape,
    cache,
    description: shape ? 'resolver' : 'resolver (no key shape)',
  });
}
