import type { UsageCounts, UsageStore } from '../observability/usage.js';
import type { Charge, LimitStore, RateVerdict, WindowCharge } from './limit-store.js';

/**
 * The part of an ioredis (or compatible) client the store uses. The host creates the client, as
 * it passes prom-client in for metrics: give it `enableOfflineQueue: false` so that a command
 * fails at once while Redis is down instead of waiting in a queue.
 */
export interface RedisLike {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/**
 * Each check is one Lua script, which Redis runs atomically: every counter is read, and all of
 * them move only if all allow it, so replicas sharing the Redis never let more through together
 * than a limit. Time comes from Redis (`TIME`), so replicas with skewed clocks share windows.
 */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;
/**
 * KEYS: counters; ARGV: a limit and a window (ms) per key. Returns -1, or ms until the window of
 * the first full counter turns.
 */
const TAKE = `${NOW}local counters = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i])
  local start = now - (now % window)
  counters[i] = key .. ':' .. start
  local count = tonumber(redis.call('GET', counters[i]) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then return start + window - now end
end
for i, counter in ipairs(counters) do
  redis.call('INCR', counter)
  redis.call('PEXPIRE', counter, tonumber(ARGV[2 * i]) * 2)
end
return -1`;
/**
 * KEYS: sorted sets of holders, scored by the end of their lease; ARGV: lease ms, holder, then one
 * limit per key. A replica that dies without releasing loses its slots when their leases end.
 */
const ACQUIRE = `${NOW}local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[2])
  redis.call('PEXPIRE', key, lease)
end
return 1`;
/** KEYS: sorted sets; ARGV: lease ms, holder. Extends the lease of a slot still held. */
const RENEW = `${NOW}local lease = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[2])
  redis.call('PEXPIRE', key, lease)
end
return 1`;
const RELEASE = `for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 1`;

/**
 * KEYS: the set of client names, the earliest start, then one hash per client; ARGV: that start,
 * then the JSON counts of each client in KEYS order. One script, so a batch lands whole.
 */
const ADD_USAGE = `local since = redis.call('GET', KEYS[2])
if not since or tonumber(since) > tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1]) end
for i = 3, #KEYS do
  local name = string.sub(KEYS[i], string.len(KEYS[1]) + 2)
  redis.call('SADD', KEYS[1], name)
  for field, value in pairs(cjson.decode(ARGV[i - 1])) do
    if field == 'lastSeen' then
      local seen = redis.call('HGET', KEYS[i], field)
      if not seen or tonumber(seen) < value then redis.call('HSET', KEYS[i], field, value) end
    else
      redis.call('HINCRBY', KEYS[i], field, value)
    end
  end
end
return 1`;
/** KEYS: the set of client names, the earliest start. Returns JSON: { since, clients: { name: [field, value, …] } }. */
const READ_USAGE = `local clients = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  clients[name] = redis.call('HGETALL', KEYS[1] .. ':' .. name)
end
return cjson.encode({ since = redis.call('GET', KEYS[2]), clients = clients })`;

export interface RedisStoreSettings {
  readonly prefix: string;
  /** How long Redis may take to answer before the check counts as failed. */
  readonly timeoutMs: number;
  /** How long a slot is held without renewal; slots still open are renewed every third of it. */
  readonly leaseMs: number;
}

/** One client per URL for the life of the process: a reload makes a new store, not a new connection. */
const clientsByUrl = new Map<string, Promise<RedisLike>>();

/**
 * A client for a `redis://` URL (the standalone gateway's config file cannot hold a client):
 * ioredis, an optional dependency, loaded on first use, failing fast while Redis is down.
 */
export function redisClientFor(url: string): Promise<RedisLike> {
  let client = clientsByUrl.get(url);
  if (client === undefined) {
    client = import('ioredis').then(async ({ Redis }) => {
      // Without an offline queue, a command sent before the connection is ready fails at once:
      // the client is handed out only once connected, and reconnects by itself after that.
      const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
      // Failures show as failed checks and the limiter's warning; ioredis would also print each one.
      redis.on('error', () => undefined);
      try {
        await redis.connect();
      } catch (error) {
        redis.disconnect();
        throw error;
      }
      return redis;
    });
    // A first connection that fails is tried again by the next check.
    client.catch(() => clientsByUrl.delete(url));
    clientsByUrl.set(url, client);
  }
  return client;
}

export class RedisLimitStore implements LimitStore, UsageStore {
  readonly #held = new Map<string, readonly Charge[]>();
  #renewal: NodeJS.Timeout | undefined;

  /**
   * `redis` may be a function that makes the client on first use: validating options (as
   * `--print-config` and `loadAmpConfig` do) must not open a connection.
   */
  constructor(
    private readonly redis: RedisLike | (() => Promise<RedisLike>),
    private readonly settings: RedisStoreSettings,
  ) {}

  async #run(script: string, keys: readonly string[], args: (string | number)[]): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error('redis did not answer in time')), this.settings.timeoutMs);
    });
    try {
      const client = typeof this.redis === 'function' ? this.redis() : this.redis;
      const redis = await Promise.race([client, timedOut]);
      return await Promise.race([redis.eval(script, keys.length, ...keys, ...args), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  #keys(charges: readonly Charge[]): string[] {
    return charges.map(({ key }) => this.settings.prefix + key);
  }

  async take(charges: readonly WindowCharge[]): Promise<RateVerdict> {
    const args = charges.flatMap(({ limit, windowMs }) => [limit, windowMs]);
    const answer = Number(await this.#run(TAKE, this.#keys(charges), args));
    return answer < 0 ? { allowed: true } : { allowed: false, retryAfterMs: answer };
  }

  async acquire(charges: readonly Charge[], holder: string): Promise<boolean> {
    const limits = charges.map(({ limit }) => limit);
    const args = [this.settings.leaseMs, holder, ...limits];
    const acquired = Number(await this.#run(ACQUIRE, this.#keys(charges), args)) === 1;
    if (acquired) {
      this.#held.set(holder, charges);
      this.#renewal ??= setInterval(() => this.#renewAll(), this.settings.leaseMs / 3).unref();
    }
    return acquired;
  }

  async release(charges: readonly Charge[], holder: string): Promise<void> {
    this.#held.delete(holder);
    if (this.#held.size === 0) {
      clearInterval(this.#renewal);
      this.#renewal = undefined;
    }
    await this.#run(RELEASE, this.#keys(charges), [holder]);
  }

  #usageKeys(): [clients: string, since: string] {
    return [`${this.settings.prefix}usage`, `${this.settings.prefix}usage-since`];
  }

  async addUsage(since: number, counts: Record<string, UsageCounts>): Promise<void> {
    const [clients, start] = this.#usageKeys();
    const names = Object.keys(counts);
    const keys = [clients, start, ...names.map((name) => `${clients}:${name}`)];
    await this.#run(ADD_USAGE, keys, [since, ...names.map((name) => JSON.stringify(counts[name]))]);
  }

  async readUsage(): Promise<{ since: number; clients: Record<string, UsageCounts> } | undefined> {
    const read = JSON.parse(String(await this.#run(READ_USAGE, this.#usageKeys(), []))) as {
      since?: string;
      clients: Record<string, string[]> | [];
    };
    if (read.since === undefined) return undefined;
    const clients: Record<string, UsageCounts> = {};
    // cjson encodes an empty table as an array.
    for (const [name, pairs] of Object.entries(read.clients)) {
      const counts: UsageCounts = {};
      for (let i = 0; i < pairs.length; i += 2) counts[pairs[i]!] = Number(pairs[i + 1]);
      clients[name] = counts;
    }
    return { since: Number(read.since), clients };
  }

  #renewAll(): void {
    for (const [holder, charges] of this.#held) {
      // A renewal that fails is retried at the next tick; a slot whose lease ends meanwhile is freed.
      this.#run(RENEW, this.#keys(charges), [this.settings.leaseMs, holder]).catch(() => undefined);
    }
  }
}
