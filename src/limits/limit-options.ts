import { AmpProxyConfigError } from '../errors.js';
import { isPlainObject } from '../plain-object.js';
import { AMP_GROUPS } from '../routing/route-groups.js';
import type { AmpGroup, AmpRedisClient } from '../types.js';
import type { LimitSet, LimitsConfig } from './limiter.js';
import { redisClientFor, RedisLimitStore } from './redis-store.js';

const LIMITS_FIELDS = ['perClient', 'perTeam', 'store', 'onStoreError'];
const SET_FIELDS = ['requestsPerMinute', 'concurrentWebSockets', 'threadsPerHour'];
const REDIS_FIELDS = ['redis', 'prefix', 'timeoutMs'];
const DEFAULT_PREFIX = 'amp-proxy:';
const DEFAULT_REDIS_TIMEOUT_MS = 500;
/** How long a WebSocket's slot outlives a replica that died holding it. */
const LEASE_MS = 60_000;

function fail(option: string, problem: string): never {
  throw new AmpProxyConfigError(option, problem);
}

function onlyFields(value: Record<string, unknown>, fields: readonly string[], path: string): void {
  for (const field of Object.keys(value)) {
    if (!fields.includes(field))
      fail(`${path}.${field}`, `unknown field; the fields are ${fields.join(', ')}`);
  }
}

function positiveWhole(value: unknown, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    fail(path, 'expected a positive whole number');
  return value;
}

export function validateSet(value: unknown, path: string): LimitSet | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value))
    fail(path, 'expected { requestsPerMinute?, concurrentWebSockets?, threadsPerHour? }');
  onlyFields(value, SET_FIELDS, path);
  const requestsPerMinute: Partial<Record<AmpGroup, number>> = {};
  const perGroup = value.requestsPerMinute;
  if (perGroup !== undefined) {
    if (!isPlainObject(perGroup)) fail(`${path}.requestsPerMinute`, 'expected an object keyed by group');
    onlyFields(perGroup, AMP_GROUPS, `${path}.requestsPerMinute`);
    for (const group of AMP_GROUPS) {
      const limit = positiveWhole(perGroup[group], `${path}.requestsPerMinute.${group}`);
      if (limit !== undefined) requestsPerMinute[group] = limit;
    }
  }
  return {
    requestsPerMinute,
    concurrentWebSockets: positiveWhole(value.concurrentWebSockets, `${path}.concurrentWebSockets`),
    threadsPerHour: positiveWhole(value.threadsPerHour, `${path}.threadsPerHour`),
  };
}

function validateStore(value: unknown): LimitsConfig['store'] {
  if (value === undefined || value === 'memory') return undefined;
  if (!isPlainObject(value)) fail('limits.store', "expected 'memory' or { redis }");
  onlyFields(value, REDIS_FIELDS, 'limits.store');
  const { redis, prefix, timeoutMs } = value;
  const isUrl = typeof redis === 'string' && /^rediss?:\/\//.test(redis);
  if (!isUrl && typeof (redis as { eval?: unknown } | null | undefined)?.eval !== 'function')
    fail('limits.store.redis', 'expected an ioredis client or a redis:// or rediss:// URL');
  if (prefix !== undefined && typeof prefix !== 'string') fail('limits.store.prefix', 'expected a string');
  const client = isUrl ? () => redisClientFor(redis as string) : (redis as AmpRedisClient);
  return new RedisLimitStore(client, {
    prefix: prefix ?? DEFAULT_PREFIX,
    timeoutMs: positiveWhole(timeoutMs, 'limits.store.timeoutMs') ?? DEFAULT_REDIS_TIMEOUT_MS,
    leaseMs: LEASE_MS,
  });
}

/** The `limits` option checked; `undefined` when there is none, so nothing is counted. */
export function validateLimits(value: unknown): LimitsConfig | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) fail('limits', 'expected { perClient?, perTeam?, store?, onStoreError? }');
  onlyFields(value, LIMITS_FIELDS, 'limits');
  const { onStoreError } = value;
  if (onStoreError !== undefined && onStoreError !== 'closed' && onStoreError !== 'open')
    fail('limits.onStoreError', "expected 'closed' or 'open'");
  return {
    perClient: validateSet(value.perClient, 'limits.perClient'),
    perTeam: validateSet(value.perTeam, 'limits.perTeam'),
    store: validateStore(value.store),
    onStoreError: onStoreError ?? 'closed',
  };
}
