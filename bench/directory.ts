/**
 * `node --import tsx bench/directory.ts`: what admitting a request costs with a client directory
 * (a SQLite key file, every key cached) against a static list of 10,000 clients.
 *
 * 1. CPU per admission, in process: `readCredentials` over the list versus `ClientDirectory.present`
 *    with a cached key, on 4 KB Amp CLI headers, samples alternating, median of 20 rounds.
 * 2. req/s through the router (provider POST, the server key spent), the list and the key file
 *    alternating in rounds, median of BENCH_ROUNDS (default 4) rounds of 3 s. Upstream, gateway and
 *    load generator share this one process: the ratio means something, the absolute numbers less.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ampRouter } from '../src/index.js';
import { ClientTable, type ResolvedClient } from '../src/auth/clients.js';
import { readCredentials } from '../src/auth/credentials.js';
import { validateClientDirectory } from '../src/directory/directory-options.js';
import { KeyStore } from '../src/directory/sqlite-directory.js';
import { median } from './report.js';
import { cliHeaders, load, MESSAGES_PATH } from './traffic.js';

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

async function throughput(): Promise<{ list: number; directory: number }> {
  const upstream = createServer((_req, res) => {
    _req.resume();
    _req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const list = ampRouter({
    upstream: upstreamUrl,
    upstreamKey: 'server-key',
    clients: listKeys.map((key, index) => ({ key, name: `client-${index}` })),
  });
  const directory = ampRouter({
    upstream: upstreamUrl,
    upstreamKey: 'server-key',
    clients: { sqlite: file },
  });
  const serve = (router: typeof list) =>
    new Promise<{ url: string; close(): void }>((resolve) => {
      const server = createServer(router);
      server.listen(0, '127.0.0.1', () =>
        resolve({
          url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          close: () => server.close(),
        }),
      );
    });
  const proxies = { list: await serve(list), directory: await serve(directory) };
  const headers = {
    list: cliHeaders(`Bearer ${listKeys[7]}`),
    directory: cliHeaders(`Bearer ${directoryKey}`),
  };
  const samples = { list: [] as number[], directory: [] as number[] };
  for (let round = 0; round < rounds + 1; round++) {
    const order = round % 2 === 0 ? (['list', 'directory'] as const) : (['directory', 'list'] as const);
    for (const which of order) {
      const result = await load(proxies[which].url, {
        method: 'POST',
        path: MESSAGES_PATH,
        connections: 16,
        seconds: 3,
        headers: headers[which],
      });
      if (result.failures > 0) throw new Error(`${which}: ${JSON.stringify(result)}`);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`${which} ${result.requestsPerSecond}\n`);
      if (round > 0) samples[which].push(result.requestsPerSecond); // round 0 warms up
    }
  }
  proxies.list.close();
  proxies.directory.close();
  await Promise.all([list.close(), directory.close()]);
  upstream.close();
  return { list: median(samples.list), directory: median(samples.directory) };
}

try {
  const cost = await admissionCost();
  process.stdout.write(
    `admission CPU per request: list of ${CLIENTS} ${cost.list.toFixed(2)} µs, key file (cached) ${cost.directory.toFixed(2)} µs\n`,
  );
  const rate = await throughput();
  process.stdout.write(
    `req/s (median of ${rounds}): list ${rate.list.toFixed(0)}, key file (cached) ${rate.directory.toFixed(0)} (${(((rate.directory - rate.list) / rate.list) * 100).toFixed(1)}%)\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
