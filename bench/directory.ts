/**
 * `npm run build && node --import tsx bench/directory.ts`: what admitting a request costs with a client directory
 * (a SQLite key file, every key cached) against a static list of 10,000 clients.
 *
 * 1. CPU per admission, in process: `readCredentials` over the list versus `ClientDirectory.present`
 *    with a cached key, on 4 KB Amp CLI headers, samples alternating, median of 20 rounds.
 *    And CPU per limit check (`Limiter.admit`, one client and one team limit) in the memory store;
 *    with BENCH_REDIS_URL set, the wall time of a check against that Redis, one at a time.
 * 2. req/s and CPU per request through the router (provider POST, the server key spent): the list,
 *    the key file, and the key file with limits in memory, rotating in rounds, median of BENCH_ROUNDS (default 4) rounds of 3 s. Upstream, gateway and
 *    load generator share this one process: the ratio means something, the absolute numbers less.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Library from '../src/index.js';
import type * as Clients from '../src/auth/clients.js';
import type * as Credentials from '../src/auth/credentials.js';
import type * as DirectoryOptions from '../src/directory/directory-options.js';
import type * as Sqlite from '../src/directory/sqlite-directory.js';
import type * as Stores from '../src/limits/limit-store.js';
import type * as Limiters from '../src/limits/limiter.js';
import type * as LimitOptions from '../src/limits/limit-options.js';
import { median } from './report.js';
import { cliHeaders, load, MESSAGES_PATH } from './traffic.js';

// The built package (npm run build first), as users run it: tsx's transform of src/ adds a
// helper call to every closure created, which would be measured too.
const BUILT = '../dist/esm';
const { ampRouter } = (await import(`${BUILT}/index.js`)) as typeof Library;
const { ClientTable } = (await import(`${BUILT}/auth/clients.js`)) as typeof Clients;
const { readCredentials } = (await import(`${BUILT}/auth/credentials.js`)) as typeof Credentials;
const { validateClientDirectory } = (await import(
  `${BUILT}/directory/directory-options.js`
)) as typeof DirectoryOptions;
const { KeyStore } = (await import(`${BUILT}/directory/sqlite-directory.js`)) as typeof Sqlite;
const { MemoryLimitStore } = (await import(`${BUILT}/limits/limit-store.js`)) as typeof Stores;
const { Limiter } = (await import(`${BUILT}/limits/limiter.js`)) as typeof Limiters;
const { validateLimits } = (await import(`${BUILT}/limits/limit-options.js`)) as typeof LimitOptions;
type ResolvedClient = Clients.ResolvedClient;
type LimitsConfig = Limiters.LimitsConfig;

const CLIENTS = 10_000;
const rounds = Number(process.env.BENCH_ROUNDS ?? 4);
const dir = mkdtempSync(join(tmpdir(), 'amp-bench-directory-'));
const file = join(dir, 'keys.db');

const store = KeyStore.open(file, 'create');
const { key: directoryKey } = store.add('bench-user');
store.close();
const listKeys = Array.from({ length: CLIENTS }, (_, index) => `gwk_bench_client_${index}_${'x'.repeat(24)}`);

async function admissionCost(): Promise<{ list: number; directory: number }> {
  const table = new ClientTable();
  listKeys.forEach((key, index) => table.add(key, { name: `client-${index}`, upstreamKey: undefined }));
  const directory = validateClientDirectory({ sqlite: file });
  const listHeaders = Array.from({ length: 2_000 }, () => cliHeaders(`Bearer ${listKeys[7]}`));
  const directoryHeaders = Array.from({ length: 2_000 }, () => cliHeaders(`Bearer ${directoryKey}`));
  const time = async (run: () => unknown): Promise<number> => {
    const before = process.cpuUsage();
    await run();
    const { user, system } = process.cpuUsage(before);
    return (user + system) / listHeaders.length;
  };
  const viaList = () => {
    for (const headers of listHeaders) {
      const client: ResolvedClient | undefined = readCredentials(
        headers,
        MESSAGES_PATH,
        '',
        'x-amp-token',
        table,
      ).client;
      if (!client) throw new Error('the list did not identify the client');
    }
  };
  const viaDirectory = async () => {
    for (const headers of directoryHeaders) {
      const presented = directory.present(headers, MESSAGES_PATH, '', 'x-amp-token');
      // Only the first lookup waits: the rest come from the cache, synchronously.
      const { client } = presented instanceof Promise ? await presented : presented;
      if (!client) throw new Error('the directory did not identify the client');
    }
  };
  const list: number[] = [];
  const viaDir: number[] = [];
  for (let round = 0; round < 25; round++) {
    list.push(await time(viaList));
    viaDir.push(await time(viaDirectory));
  }
  // The first rounds compile the code paths.
  return { list: median(list.slice(5)), directory: median(viaDir.slice(5)) };
}

const LIMITED_CLIENT: ResolvedClient = { name: 'bench-user', team: 'bench-team', upstreamKey: undefined };
const LIMITS = {
  perClient: { requestsPerMinute: { provider: 1e9 } },
  perTeam: { requestsPerMinute: { provider: 1e9 } },
};

async function limitCost(): Promise<{ memory: number; redisMs: number | undefined }> {
  const memory = new Limiter(validateLimits(LIMITS)!, new MemoryLimitStore(), () => undefined);
  const checks = 20_000;
  const samples: number[] = [];
  for (let round = 0; round < 25; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < checks; i++)
      if (memory.admit('provider', LIMITED_CLIENT, false)) throw new Error('refused');
    const { user, system } = process.cpuUsage(before);
    samples.push((user + system) / checks);
  }
  const url = process.env.BENCH_REDIS_URL;
  if (url === undefined) return { memory: median(samples.slice(5)), redisMs: undefined };
  const config: LimitsConfig = validateLimits({
    ...LIMITS,
    store: { redis: url, prefix: `bench-${process.pid}:` },
  })!;
  const redis = new Limiter(config, config.store!, () => undefined);
  await redis.admit('provider', LIMITED_CLIENT, false); // connects
  const started = performance.now();
  for (let i = 0; i < 2_000; i++)
    if (await redis.admit('provider', LIMITED_CLIENT, false)) throw new Error('refused');
  return { memory: median(samples.slice(5)), redisMs: (performance.now() - started) / 2_000 };
}

type Variant = 'list' | 'directory' | 'limited';
const VARIANTS: readonly Variant[] = ['list', 'directory', 'limited'];

/** req/s and the whole process's CPU per response (upstream and load generator included). */
async function throughput(): Promise<Record<Variant, { rate: number; cpu: number }>> {
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const base = { upstream: upstreamUrl, upstreamKey: 'server-key' };
  const routers = {
    list: ampRouter({ ...base, clients: listKeys.map((key, index) => ({ key, name: `client-${index}` })) }),
    directory: ampRouter({ ...base, clients: { sqlite: file } }),
    limited: ampRouter({ ...base, clients: { sqlite: file }, limits: LIMITS }),
  };
  const serve = (router: (typeof routers)['list']) =>
    new Promise<{ url: string; close(): void }>((resolve) => {
      const server = createServer(router);
      server.listen(0, '127.0.0.1', () =>
        resolve({
          url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          close: () => server.close(),
        }),
      );
    });
  const proxies = {
    list: await serve(routers.list),
    directory: await serve(routers.directory),
    limited: await serve(routers.limited),
  };
  const headers = {
    list: cliHeaders(`Bearer ${listKeys[7]}`),
    directory: cliHeaders(`Bearer ${directoryKey}`),
    limited: cliHeaders(`Bearer ${directoryKey}`),
  };
  const samples = Object.fromEntries(VARIANTS.map((v) => [v, { rate: [] as number[], cpu: [] as number[] }]));
  for (let round = 0; round < rounds + 1; round++) {
    // Rotated each round, so no variant always runs first.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
    for (const which of order) {
      const before = process.cpuUsage();
      const result = await load(proxies[which].url, {
        method: 'POST',
        path: MESSAGES_PATH,
        connections: 16,
        seconds: 3,
        headers: headers[which],
      });
      const { user, system } = process.cpuUsage(before);
      if (result.failures > 0) throw new Error(`${which}: ${JSON.stringify(result)}`);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`${which} ${result.requestsPerSecond}\n`);
      if (round === 0) continue; // warms up
      samples[which]!.rate.push(result.requestsPerSecond);
      samples[which]!.cpu.push((user + system) / result.responses);
    }
  }
  for (const which of VARIANTS) proxies[which].close();
  await Promise.all(VARIANTS.map((which) => routers[which].close()));
  upstream.close();
  return Object.fromEntries(
    VARIANTS.map((v) => [v, { rate: median(samples[v]!.rate), cpu: median(samples[v]!.cpu) }]),
  ) as Record<Variant, { rate: number; cpu: number }>;
}

try {
  const cost = await admissionCost();
  process.stdout.write(
    `admission CPU per request: list of ${CLIENTS} ${cost.list.toFixed(2)} µs, key file (cached) ${cost.directory.toFixed(2)} µs\n`,
  );
  const limits = await limitCost();
  process.stdout.write(
    `limit check (client + team): memory ${limits.memory.toFixed(2)} µs CPU${limits.redisMs === undefined ? '' : `, Redis ${(limits.redisMs * 1000).toFixed(0)} µs wall per check, one at a time`}\n`,
  );
  if (process.env.BENCH_SKIP_RATE === '1') process.exit(0);
  const rate = await throughput();
  const versus = (value: number, base: number) => `${(((value - base) / base) * 100).toFixed(1)}%`;
  for (const which of VARIANTS) {
    const { rate: perSecond, cpu } = rate[which];
    process.stdout.write(
      `${which.padEnd(9)} ${perSecond.toFixed(0)} req/s (${versus(perSecond, rate.list.rate)}), ${cpu.toFixed(0)} µs CPU per request (${versus(cpu, rate.list.cpu)})\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// The Redis client of BENCH_REDIS_URL would keep the process alive.
process.exit(0);
