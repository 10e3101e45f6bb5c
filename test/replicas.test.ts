import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KeyStore, loadSqlite } from '../src/directory/sqlite-directory.js';
import type { AmpUsageReport } from '../src/index.js';
import { send } from './support/client.js';
import { eventually } from './support/events.js';
import { runCli, startCli } from './support/gateway-harness.js';
import { hasRedisServer, startRedis, type RedisServer } from './support/redis.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const BODY = JSON.stringify({ model: 'claude', messages: [] });
const LIMIT = 4;
const USAGE_TOKEN = 'usage-token-for-the-replicas-test';

// Two standalone gateway processes, one key file, one Redis, a round-robin in the test: what
// running N replicas means.
describe('two gateway replicas sharing a key file and Redis', async () => {
  const skip = !loadSqlite()
    ? 'node:sqlite needs Node 22.13 or later'
    : (await hasRedisServer())
      ? false
      : 'needs redis-server (apt-get install redis-server)';
  let dir: string;
  let redis: RedisServer;
  let upstream: FakeUpstream;
  let gateways: ReturnType<typeof startCli>[] = [];
  let urls: string[] = [];
  let alice: string;
  let bob: string;
  let carol: string;

  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), 'amp-replicas-'));
    const db = join(dir, 'keys.db');
    const store = KeyStore.open(db, 'create');
    alice = store.add('alice').key;
    bob = store.add('bob').key;
    carol = store.add('carol').key;
    store.close();
    redis = await startRedis();
    upstream = await startUpstream();
    const config = join(dir, 'gateway.json');
    writeFileSync(
      config,
      JSON.stringify({
        upstream: upstream.url,
        upstreamKey: 'server-key',
        // Asked on every request: a revocation reaches both replicas at once.
        clients: { sqlite: db, cache: { positiveTtlMs: 0 } },
        limits: { perClient: { requestsPerMinute: { provider: LIMIT } }, store: { redis: redis.url } },
        usagePath: '/usage',
      }),
    );
    const env = { ...process.env, AMP_PROXY_USAGE_TOKEN: USAGE_TOKEN };
    gateways = [startCli(dir, env, ['--config', config]), startCli(dir, env, ['--config', config])];
    urls = await Promise.all(gateways.map((gateway) => gateway.listening));
  });
  after(async () => {
    if (skip) return;
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await upstream.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const provider = (url: string, key: string) =>
    send(`${url}${PROVIDER_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: BODY,
    });

  it('a limit holds across both: round-robin requests get exactly the limit through', { skip }, async () => {
    const received = upstream.record();
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => provider(urls[i % 2]!, alice)));
    assert.equal(answers.filter((res) => res.status === 200).length, LIMIT);
    assert.equal(answers.filter((res) => res.status === 429).length, 12 - LIMIT);
    assert.equal(received.requests.length, LIMIT);
  });

  it('a key revoked with amp-proxy keys stops working on both', { skip }, async () => {
    for (const url of urls) assert.equal((await provider(url, bob)).status, 200);
    const revoked = await runCli(dir, process.env, ['keys', 'revoke', 'bob', '--db', join(dir, 'keys.db')]);
    assert.equal(revoked.code, 0, revoked.output);
    for (const url of urls) assert.equal((await provider(url, bob)).status, 401);
  });

  const usage = async (url: string) =>
    (
      await send(`${url}/usage`, { headers: { authorization: `Bearer ${USAGE_TOKEN}` } })
    ).json() as AmpUsageReport;

  it('usage adds up: either replica reports what both let through', { skip }, async () => {
    const answers = await Promise.all(Array.from({ length: LIMIT }, (_, i) => provider(urls[i % 2]!, carol)));
    assert.ok(answers.every((res) => res.status === 200));
    // Each replica adds its counts to Redis every second: wait for the other one's.
    for (const url of urls) {
      const report = await eventually(
        () => usage(url),
        (read) => read.clients.carol?.requests.provider?.['200'] === LIMIT,
      );
      assert.equal(report.scope, 'replicas');
      // The round-robin before: exactly the limit went through, the rest refused, on both together.
      assert.deepEqual(report.clients.alice?.requests, { provider: { '200': LIMIT, '429': 12 - LIMIT } });
    }
  });
});
