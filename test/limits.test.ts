import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import {
  ampRouter,
  attachUpgrade,
  AmpProxyConfigError,
  type AmpLimits,
  type AmpMiddleware,
  type AmpProxyOptions,
} from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send, type ClientResponse } from './support/client.js';
import { eventually, WaitableList } from './support/events.js';
import { hasRedisServer, startRedis, type RedisServer } from './support/redis.js';
import { startUpstream, startWebSocketUpstream, type FakeUpstream } from './support/upstream.js';

const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const WS_PATH = '/actors/gateway/threadActor/websocket/';
const BODY = JSON.stringify({ model: 'claude', messages: [] });
const CLIENTS = [
  { key: 'gw-alice-key-000000000001', name: 'alice' },
  { key: 'gw-bob-key-00000000000002', name: 'bob', upstreamKey: 'bobs-own-amp-key' },
];
const [ALICE, BOB] = CLIENTS.map((client) => client.key) as [string, string];

function provider(url: string, key: string): Promise<ClientResponse> {
  return send(`${url}${PROVIDER_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: BODY,
  });
}

function newThread(url: string, key: string, path = '/api/thread-actors'): Promise<ClientResponse> {
  return send(`${url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: '{}',
  });
}

function errorCode(res: ClientResponse): string {
  return (res.json() as { error: string }).error;
}

/** A gateway with WebSockets wired, as a host or the standalone gateway runs it. */
async function serve(
  options: AmpProxyOptions,
): Promise<{ url: string; router: AmpMiddleware; close(): Promise<void> }> {
  const router = ampRouter(options);
  const server: Server = createServer(router);
  attachUpgrade(server, router);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    router,
    async close() {
      await router.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Opens an agent WebSocket: `open`, or the close code and reason the gateway ended it with. */
function agentSocket(url: string, key: string): Promise<{ socket: WebSocket; closed?: [number, string] }> {
  const socket = new WebSocket(`${url.replace('http', 'ws')}${WS_PATH}`, ['rivet'], {
    headers: { authorization: `Bearer ${key}` },
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => {
      // An accepted socket that the gateway closes at once: wait for that close.
      const early = (code: number, reason: Buffer) => resolve({ socket, closed: [code, reason.toString()] });
      socket.once('close', early);
      socket.once('message', () => {
        socket.off('close', early);
        resolve({ socket });
      });
      socket.send('ping');
    });
    socket.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`limits in memory (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    let router: AmpMiddleware;
    const options = (limits: AmpLimits): AmpProxyOptions => ({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: CLIENTS,
      limits,
    });

    before(async () => {
      upstream = await startUpstream();
      router = ampRouter(options({ perClient: { requestsPerMinute: { provider: 2, management: 1 } } }));
      const host = express();
      host.use(router);
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it('refuses the request over a client limit with 429 and Retry-After; other clients keep theirs', async () => {
      const received = upstream.record();
      const answers = [
        await provider(app.url, ALICE),
        await provider(app.url, ALICE),
        await provider(app.url, ALICE),
      ];
      assert.deepEqual(
        answers.map((res) => res.status),
        [200, 200, 429],
      );
      const refused = answers[2]!;
      assert.equal(errorCode(refused), 'amp_rate_limited');
      const retryAfter = Number(refused.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assert.equal((await provider(app.url, BOB)).status, 200);
      assert.equal(received.requests.length, 3);
    });

    it('on /api/internal the refusal is {"ok":false,"error":{…}}, which the Amp CLI shows', async () => {
      const received = upstream.record();
      const headers = { authorization: `Bearer ${BOB}` };
      assert.equal((await send(`${app.url}/api/internal?getUserInfo`, { headers })).status, 200);
      const refused = await send(`${app.url}/api/internal?getUserInfo`, { headers });
      assert.equal(refused.status, 429);
      assert.ok(refused.headers['retry-after']);
      const body = refused.json() as { ok: boolean; error: { code: string; message: string } };
      assert.equal(body.ok, false);
      assert.equal(body.error.code, 'amp_rate_limited');
      assert.match(body.error.message, /Too many requests/);
      assert.equal(received.requests.length, 1);
    });

    it('a reload keeps the counts: it hands out no fresh allowance', async () => {
      router.reload(options({ perClient: { requestsPerMinute: { provider: 2, management: 1 } } }));
      assert.equal((await provider(app.url, ALICE)).status, 429);
    });

    it('a reload that raises a limit applies it at once', async () => {
      router.reload(options({ perClient: { requestsPerMinute: { provider: 3 } } }));
      assert.equal((await provider(app.url, ALICE)).status, 200);
      assert.equal((await provider(app.url, ALICE)).status, 429);
    });
  });
}

describe('new threads per hour (memory)', () => {
  let upstream: FakeUpstream;
  let gateway: Awaited<ReturnType<typeof serve>>;

  before(async () => {
    upstream = await startUpstream();
    gateway = await serve({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: CLIENTS,
      policies: { management: 'inject' },
      limits: { perClient: { threadsPerHour: 1, requestsPerMinute: { management: 4 } } },
    });
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('charges POST /api/thread-actors up front; over the limit: 429 with an hourly Retry-After', async () => {
    const received = upstream.record();
    assert.equal((await newThread(gateway.url, ALICE)).status, 200);
    const refused = await newThread(gateway.url, ALICE, '/API/Thread-Actors/');
    assert.equal(refused.status, 429);
    assert.equal(errorCode(refused), 'amp_rate_limited');
    const retryAfter = Number(refused.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    assert.deepEqual(
      received.requests.map(({ method, url }) => `${method} ${url}`),
      ['POST /api/thread-actors'],
    );
    assert.equal((await newThread(gateway.url, BOB)).status, 200, "another client's own allowance");
  });

  it("a thread's own id, or another method, creates none; a refused creation costs no request", async () => {
    const received = upstream.record();
    const headers = { authorization: `Bearer ${ALICE}` };
    // Management so far (limit 4): the counted creation only; the refused one counted nothing.
    assert.equal((await newThread(gateway.url, ALICE, '/api/thread-actors/T-1')).status, 200);
    assert.equal((await send(`${gateway.url}/api/thread-actors`, { headers })).status, 200);
    assert.equal((await send(`${gateway.url}/api/threads/T-1`, { headers })).status, 200);
    assert.equal((await send(`${gateway.url}/api/threads/T-1`, { headers })).status, 429);
    assert.equal(received.requests.length, 3);
  });
});

describe('team limits and agent WebSockets (memory)', () => {
  let upstream: Awaited<ReturnType<typeof startWebSocketUpstream>>;
  let gateway: Awaited<ReturnType<typeof serve>>;
  const directory = new Map([
    ['gw-carol-key-0000000000003', { name: 'carol', team: 'eng' }],
    ['gw-dave-key-00000000000004', { name: 'dave', team: 'eng' }],
    ['gw-erin-key-00000000000005', { name: 'erin', team: 'ops' }],
    ['gw-frank-key-0000000000006', { name: 'frank', limits: { requestsPerMinute: { provider: 1 } } }],
    ['gw-grace-key-0000000000007', { name: 'grace', limits: { requestsPerMinute: { provider: -1 } } }],
  ]);

  before(async () => {
    upstream = await startWebSocketUpstream();
    gateway = await serve({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: async (key) => directory.get(key),
      policies: { actors: 'inject' },
      limits: {
        perClient: { concurrentWebSockets: 1 },
        perTeam: { requestsPerMinute: { provider: 3 } },
      },
    });
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  it('a team shares one allowance; another team has its own', async () => {
    const statuses = [];
    for (const key of [
      'gw-carol-key-0000000000003',
      'gw-dave-key-00000000000004',
      'gw-carol-key-0000000000003',
    ])
      statuses.push((await provider(gateway.url, key)).status);
    const refused = await provider(gateway.url, 'gw-dave-key-00000000000004');
    statuses.push(refused.status);
    statuses.push((await provider(gateway.url, 'gw-erin-key-00000000000005')).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 200]);
    assert.equal(errorCode(refused), 'amp_rate_limited');
  });

  it("a directory client's own limits replace perClient; limits that make no sense fail closed", async () => {
    assert.equal((await provider(gateway.url, 'gw-frank-key-0000000000006')).status, 200);
    const refused = await provider(gateway.url, 'gw-frank-key-0000000000006');
    assert.equal(refused.status, 429);
    const broken = await provider(gateway.url, 'gw-grace-key-0000000000007');
    assert.equal(broken.status, 503);
    assert.equal(errorCode(broken), 'amp_directory_unavailable');
  });

  it('a WebSocket over the limit is accepted and closed with 1008 and the code; a slot frees on close', async () => {
    const first = await agentSocket(gateway.url, 'gw-erin-key-00000000000005');
    assert.equal(first.closed, undefined);
    const second = await agentSocket(gateway.url, 'gw-erin-key-00000000000005');
    assert.deepEqual(second.closed, [1008, 'amp_session_limit']);
    const mark = upstream.closes.mark();
    first.socket.close();
    await upstream.closes.until(mark, (codes) => codes.length === 1);
    // The gateway sees the close of the client's socket on its own schedule: try until it has.
    let third = await agentSocket(gateway.url, 'gw-erin-key-00000000000005');
    for (let attempt = 0; third.closed && attempt < 50; attempt++)
      third = await agentSocket(gateway.url, 'gw-erin-key-00000000000005');
    assert.equal(third.closed, undefined);
    third.socket.close();
  });

  it('refuses limits it cannot use, naming the option', () => {
    for (const [limits, option] of [
      [{ perClient: { requestsPerMinute: { provider: 0 } } }, 'limits.perClient.requestsPerMinute.provider'],
      [{ perTeam: { requestsPerHour: 1 } }, 'limits.perTeam.requestsPerHour'],
      [{ perTeam: { threadsPerHour: 1.5 } }, 'limits.perTeam.threadsPerHour'],
      [{ store: { redis: 'localhost:6379' } }, 'limits.store.redis'],
      [{ onStoreError: 'maybe' }, 'limits.onStoreError'],
    ] as const) {
      assert.throws(
        () => ampRouter({ limits: limits as AmpLimits }),
        (error) => error instanceof AmpProxyConfigError && error.option === option,
        option,
      );
    }
  });
});

describe('limits in Redis, shared by two replicas', async () => {
  const skip = (await hasRedisServer()) ? false : 'needs redis-server (apt-get install redis-server)';
  let redisServer: RedisServer;
  let redis: Redis;
  let upstream: Awaited<ReturnType<typeof startWebSocketUpstream>>;
  const replicas: Awaited<ReturnType<typeof serve>>[] = [];
  const warnings = new WaitableList<string>();

  before(async () => {
    if (skip) return;
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    await redis.connect();
    upstream = await startWebSocketUpstream();
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await serve({
          upstream: upstream.url,
          upstreamKey: 'server-key',
          clients: CLIENTS,
          policies: { actors: 'inject', management: 'inject' },
          limits: {
            perClient: { requestsPerMinute: { provider: 5 }, concurrentWebSockets: 1, threadsPerHour: 3 },
            store: { redis, prefix: `test-${process.pid}:` },
          },
          logger: {
            info: () => undefined,
            error: () => undefined,
            warn: (o) => warnings.push((o as { code: string }).code),
          },
        }),
      );
    }
  });
  after(async () => {
    if (skip) return;
    for (const replica of replicas) await replica.close();
    await upstream.close();
    redis.disconnect();
    await redisServer.stop();
  });

  it(
    '20 requests at once, round-robin over both replicas: exactly the limit gets through',
    { skip },
    async () => {
      const received = upstream.record();
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => provider(replicas[i % 2]!.url, ALICE)),
      );
      assert.equal(answers.filter((res) => res.status === 200).length, 5);
      assert.equal(answers.filter((res) => res.status === 429).length, 15);
      assert.equal(received.requests.length, 5);
    },
  );

  it(
    '10 new threads at once over both replicas: exactly the hourly limit gets through',
    { skip },
    async () => {
      const received = upstream.record();
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => newThread(replicas[i % 2]!.url, BOB)),
      );
      assert.equal(answers.filter((res) => res.status === 200).length, 3);
      const refused = answers.filter((res) => res.status === 429);
      assert.equal(refused.length, 7);
      assert.ok(refused.every((res) => Number(res.headers['retry-after']) <= 3600));
      assert.equal(received.requests.length, 3);
    },
  );

  it('one agent WebSocket across both replicas', { skip }, async () => {
    const first = await agentSocket(replicas[0]!.url, BOB);
    assert.equal(first.closed, undefined);
    const second = await agentSocket(replicas[1]!.url, BOB);
    assert.deepEqual(second.closed, [1008, 'amp_session_limit']);
    first.socket.close();
  });

  it(
    'Redis down: refused with 503 amp_limits_unavailable (fail closed), with a warning',
    { skip },
    async () => {
      const mark = warnings.mark();
      await redisServer.stop();
      const received = upstream.record();
      const refused = await provider(replicas[0]!.url, BOB);
      assert.equal(refused.status, 503);
      assert.equal(errorCode(refused), 'amp_limits_unavailable');
      assert.equal(received.requests.length, 0);
      await warnings.until(mark, (codes) => codes.includes('amp_limits_store_unavailable'));
    },
  );

  it("Redis down with onStoreError 'open': let through", { skip }, async () => {
    const open = await serve({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: CLIENTS,
      limits: { perClient: { requestsPerMinute: { provider: 1 } }, store: { redis }, onStoreError: 'open' },
      logger: { info: () => undefined, error: () => undefined, warn: () => undefined },
    });
    try {
      assert.equal((await provider(open.url, BOB)).status, 200);
      assert.equal((await provider(open.url, BOB)).status, 200);
    } finally {
      await open.close();
    }
  });
});

describe('usage added up across replicas through the limits Redis', async () => {
  const skip = (await hasRedisServer()) ? false : 'needs redis-server (apt-get install redis-server)';
  let redisServer: RedisServer;
  let redis: Redis;
  let upstream: FakeUpstream;
  const warnings = new WaitableList<string>();
  const replica = (prefix: string) =>
    serve({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: CLIENTS,
      usage: true,
      limits: { store: { redis, prefix } },
      logger: {
        info: () => undefined,
        error: () => undefined,
        warn: (o) => warnings.push((o as { code: string }).code),
      },
    });

  before(async () => {
    if (skip) return;
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    await redis.connect();
    upstream = await startUpstream();
  });
  after(async () => {
    if (skip) return;
    redis.disconnect();
    await upstream.close();
    await redisServer.stop();
  });

  it(
    'each replica counts its own; usageAcrossReplicas() adds them up, close() adds what is left',
    { skip },
    async () => {
      const replicas = [await replica('sum:'), await replica('sum:'), await replica('sum:')];
      try {
        for (let i = 0; i < 3; i++) assert.equal((await provider(replicas[0]!.url, ALICE)).status, 200);
        assert.equal((await provider(replicas[1]!.url, ALICE)).status, 200);
        for (let i = 0; i < 2; i++) assert.equal((await provider(replicas[1]!.url, BOB)).status, 200);
        assert.equal((await provider(replicas[2]!.url, BOB)).status, 200);
        // Each process still reports its own alone.
        assert.deepEqual(replicas[0]!.router.usage()?.clients.alice?.requests, { provider: { '200': 3 } });
        assert.equal(replicas[0]!.router.usage()?.clients.bob, undefined);

        await replicas[2]!.close();
        // Asking a replica adds its own counts first; the second one asked finds the first one's.
        await replicas[1]!.router.usageAcrossReplicas();
        const report = await replicas[0]!.router.usageAcrossReplicas();
        assert.equal(report?.scope, 'replicas');
        assert.deepEqual(report.clients.alice?.requests, { provider: { '200': 4 } });
        assert.deepEqual(report.clients.bob?.requests, { provider: { '200': 3 } });
        const bytesUp = (name: string) =>
          replicas.reduce((sum, each) => sum + (each.router.usage()?.clients[name]?.bytes.up ?? 0), 0);
        assert.ok(bytesUp('alice') > 0);
        assert.equal(report.clients.alice.bytes.up, bytesUp('alice'));
        assert.equal(report.clients.bob.bytes.up, bytesUp('bob'));
        assert.ok(Date.parse(report.clients.bob.lastSeen) >= Date.parse(report.since));
        // Asked again, nothing is added twice.
        assert.deepEqual((await replicas[1]!.router.usageAcrossReplicas())?.clients, report.clients);
      } finally {
        await Promise.all(replicas.slice(0, 2).map((each) => each.close()));
      }
    },
  );

  it(
    'without usage: true, usageAcrossReplicas() is undefined and nothing reaches Redis',
    { skip },
    async () => {
      const plain = await serve({
        upstream: upstream.url,
        upstreamKey: 'server-key',
        clients: CLIENTS,
        limits: { store: { redis, prefix: 'plain:' } },
      });
      try {
        assert.equal((await provider(plain.url, ALICE)).status, 200);
        assert.equal(await plain.router.usageAcrossReplicas(), undefined);
      } finally {
        await plain.close();
      }
      const usageOn = await replica('plain:');
      try {
        assert.deepEqual((await usageOn.router.usageAcrossReplicas())?.clients, {});
      } finally {
        await usageOn.close();
      }
    },
  );

  it(
    'Redis down: requests pass, usage is counted here and warned about, and reaches Redis once it is back',
    { skip },
    async () => {
      const mark = warnings.mark();
      const down = await replica('down:');
      try {
        await redisServer.stop();
        assert.equal((await provider(down.url, ALICE)).status, 200);
        const local = await down.router.usageAcrossReplicas();
        assert.equal(local?.scope, 'process');
        assert.deepEqual(local.clients.alice?.requests, { provider: { '200': 1 } });
        assert.equal((await provider(down.url, ALICE)).status, 200);
        await down.router.usageAcrossReplicas();
        await warnings.until(mark, (codes) => codes.includes('amp_usage_store_unavailable'));
        // Once a minute, not once per failure.
        assert.equal(warnings.since(mark).filter((code) => code === 'amp_usage_store_unavailable').length, 1);

        redisServer = await startRedis(redisServer.port);
        const shared = await eventually(
          () => down.router.usageAcrossReplicas(),
          (report) => report?.scope === 'replicas',
        );
        assert.deepEqual(shared?.clients.alice?.requests, { provider: { '200': 2 } });
      } finally {
        await down.close();
      }
    },
  );
});
