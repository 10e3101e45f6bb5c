import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ampRouter, attachUpgrade, type AmpDirectoryClient, type AmpProxyEvent } from '../src/index.js';
import { ClientCache, DirectoryUnavailable } from '../src/directory/client-cache.js';
import { generateGatewayKey, isGatewayKey } from '../src/directory/key-shape.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { startUpstream, startWebSocketUpstream, type FakeUpstream } from './support/upstream.js';

const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const BODY = JSON.stringify({ model: 'claude', messages: [] });

describe('gateway key shape', () => {
  it('ampgw_, 32 random base62 characters and a 6-character checksum; every key different', () => {
    const keys = new Set(Array.from({ length: 200 }, generateGatewayKey));
    assert.equal(keys.size, 200);
    for (const key of keys) {
      assert.match(key, /^ampgw_[A-Za-z0-9]{38}$/);
      assert.ok(isGatewayKey(key));
    }
  });

  it('a key with one character changed, or cut short, fails its checksum', () => {
    const key = generateGatewayKey();
    for (const at of [6, 20, key.length - 1]) {
      const changed = key.slice(0, at) + (key[at] === 'A' ? 'B' : 'A') + key.slice(at + 1);
      assert.equal(isGatewayKey(changed), false, `changed at ${at}`);
    }
    assert.equal(isGatewayKey(key.slice(0, -1)), false);
    assert.equal(isGatewayKey(`x${key.slice(1)}`), false);
  });
});

describe('directory cache', () => {
  const settings = { maxEntries: 2, positiveTtlMs: 60_000, negativeTtlMs: 60_000, timeoutMs: 5_000 };

  it('one lookup in flight per key, however many ask at once', async () => {
    const asked: string[] = [];
    let answer!: (value: string) => void;
    const cache = new ClientCache<string>((key) => {
      asked.push(key);
      return new Promise((resolve) => (answer = resolve));
    }, settings);
    const waiting = [cache.get('k1'), cache.get('k1'), cache.get('k1')];
    answer('alice');
    assert.deepEqual(await Promise.all(waiting), ['alice', 'alice', 'alice']);
    assert.equal(cache.get('k1'), 'alice', 'answered from the cache, synchronously');
    assert.deepEqual(asked, ['k1']);
  });

  it('is bounded: the least recently used answer goes first; unknown keys are cached too', async () => {
    const asked: string[] = [];
    const cache = new ClientCache<string>(async (key) => {
      asked.push(key);
      return key === 'nobody' ? undefined : key.toUpperCase();
    }, settings);
    await cache.get('a');
    await cache.get('nobody');
    assert.equal(cache.get('a'), 'A');
    await cache.get('c'); // evicts 'nobody', used least recently
    assert.equal(cache.get('a'), 'A');
    await cache.get('nobody');
    assert.deepEqual(asked, ['a', 'nobody', 'c', 'nobody']);
  });

  it('a failing or slow lookup rejects with DirectoryUnavailable and is not cached', async () => {
    let fail = true;
    const cache = new ClientCache<string>(
      (key) => (fail ? Promise.reject(new Error(`down (${key})`)) : Promise.resolve('alice')),
      settings,
    );
    await assert.rejects(Promise.resolve(cache.get('k')), DirectoryUnavailable);
    fail = false;
    assert.equal(await cache.get('k'), 'alice');

    const slow = new ClientCache<string>(() => new Promise(() => undefined), { ...settings, timeoutMs: 1 });
    await assert.rejects(Promise.resolve(slow.get('k')), DirectoryUnavailable);
  });

  it('keeps an answer no longer than its own expiry', async () => {
    let asked = 0;
    const cache = new ClientCache<{ until: number }>(
      async () => {
        asked++;
        return { until: Date.now() - 1 };
      },
      settings,
      (value) => value.until,
    );
    await cache.get('k');
    await cache.get('k');
    assert.equal(asked, 2);
  });
});

/** A directory in memory, as a host's resolver over its own store would be. */
function memoryDirectory() {
  const clients = new Map<string, AmpDirectoryClient>();
  const asked: string[] = [];
  let down = false;
  return {
    clients,
    asked,
    setDown: (value: boolean) => (down = value),
    resolve: async (key: string): Promise<AmpDirectoryClient | undefined> => {
      asked.push(key);
      if (down) throw new Error('directory down');
      return clients.get(key);
    },
  };
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`clients as a resolver with the gateway key shape (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    const directory = memoryDirectory();
    const events = new WaitableList<AmpProxyEvent>();
    const alice = generateGatewayKey();
    const bob = generateGatewayKey();
    const unknown = generateGatewayKey();

    before(async () => {
      directory.clients.set(alice, { name: 'alice', team: 'eng' });
      directory.clients.set(bob, { name: 'bob', upstreamKey: 'bobs-own-amp-key' });
      upstream = await startUpstream();
      const host = express();
      host.use(
        ampRouter({
          upstream: upstream.url,
          upstreamKey: 'server-key',
          clients: { resolve: directory.resolve, keyShape: 'gateway' },
          onProxyEvent: events.push,
        }),
      );
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    const provider = (headers: Record<string, string>) =>
      send(`${app.url}${PROVIDER_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: BODY,
      });

    it("a known key spends the server key, or the client's own; the directory is asked once per key", async () => {
      const received = upstream.record();
      const before = directory.asked.length;
      assert.equal((await provider({ authorization: `Bearer ${alice}` })).status, 200);
      assert.equal((await provider({ 'x-api-key': alice })).status, 200);
      assert.equal((await provider({ authorization: `Bearer ${bob}` })).status, 200);
      const [first, second, third] = received.requests;
      assert.equal(first!.headers.authorization, 'Bearer server-key');
      assert.equal(second!.headers.authorization, 'Bearer server-key');
      assert.equal(third!.headers.authorization, 'Bearer bobs-own-amp-key');
      assert.deepEqual(directory.asked.slice(before), [alice, bob]);
    });

    it('an unknown key of the shape, or none, is refused and nothing reaches the upstream', async () => {
      const received = upstream.record();
      for (const headers of [{ authorization: `Bearer ${unknown}` }, {}] as Record<string, string>[]) {
        const res = await provider(headers);
        assert.equal(res.status, 401);
        assert.equal((res.json() as { error: string }).error, 'amp_client_unauthorized');
      }
      assert.equal(received.requests.length, 0);
    });

    it('an unknown key of the shape is never forwarded on a passthrough route', async () => {
      const received = upstream.record();
      const res = await send(`${app.url}/api/user`, { headers: { authorization: `Bearer ${unknown}` } });
      assert.equal(res.status, 401);
      assert.equal((res.json() as { error: string }).error, 'amp_token_required');
      assert.equal(received.requests.length, 0);
    });

    it("a user's own Amp token on a passthrough route is forwarded without asking the directory", async () => {
      const received = upstream.record();
      const before = directory.asked.length;
      const res = await send(`${app.url}/api/user`, {
        headers: { authorization: 'Bearer sgamp_user_token' },
      });
      assert.equal(res.status, 200);
      assert.equal(received.only().headers.authorization, 'Bearer sgamp_user_token');
      assert.equal(directory.asked.length, before);
    });

    it('a key of the shape anywhere else is misplaced, known or not, without asking the directory', async () => {
      const received = upstream.record();
      const before = directory.asked.length;
      const cases: [string, Record<string, string>, string][] = [
        [`/api/user?k=${unknown}`, {}, 'query'],
        [`/api/user/${alice}`, {}, 'path'],
        ['/api/user', { 'x-note': `see ${encodeURIComponent(`"${alice}"`)}` }, 'x-note'],
        [
          '/api/user',
          {
            cookie: `s=${Buffer.from(`u:${unknown}`).toString('base64')}; t=Basic ${Buffer.from(`u:${unknown}`).toString('base64')}`,
          },
          'cookie',
        ],
      ];
      for (const [path, headers, where] of cases) {
        const res = await send(`${app.url}${path}`, {
          headers: { authorization: 'Bearer user', ...headers },
        });
        assert.equal(res.status, 400, path);
        const { error, where: foundIn } = res.json() as { error: string; where: string };
        assert.deepEqual([error, foundIn], ['amp_gateway_key_misplaced', where], path);
      }
      assert.equal(received.requests.length, 0);
      assert.equal(directory.asked.length, before);
    });

    it('several keys in one request: refused, and at most two are looked up', async () => {
      const received = upstream.record();
      const before = directory.asked.length;
      const made = Array.from({ length: 5 }, generateGatewayKey);
      for (const headers of [
        { authorization: `Bearer ${made.join(' ')}` },
        { authorization: `Bearer ${alice}`, 'x-api-key': bob },
      ] as Record<string, string>[]) {
        const res = await provider(headers);
        assert.equal(res.status, 401);
        assert.equal((res.json() as { error: string }).error, 'amp_client_unauthorized');
      }
      assert.equal(directory.asked.length - before, 2);
      assert.equal(received.requests.length, 0);
    });

    it('events name the client; no key of the shape appears in any event', async () => {
      const mark = events.mark();
      await provider({ authorization: `Bearer ${alice}` });
      await send(`${app.url}/api/user?k=${unknown}`);
      const seen = await events.until(
        mark,
        (items) => items.filter((e) => e.type === 'request-end').length === 2,
      );
      const ends = seen.filter((event) => event.type === 'request-end');
      assert.equal(ends[0]!.type === 'request-end' && ends[0]!.client, 'alice');
      const text = JSON.stringify(seen);
      assert.ok(!text.includes(alice) && !text.includes(unknown), text);
    });

    it('a directory that fails refuses with 503 amp_directory_unavailable; nothing goes through', async () => {
      const received = upstream.record();
      const stranger = generateGatewayKey();
      directory.setDown(true);
      try {
        for (const path of [PROVIDER_PATH, '/api/user']) {
          const res = await send(`${app.url}${path}`, { headers: { authorization: `Bearer ${stranger}` } });
          assert.equal(res.status, 503, path);
          assert.equal((res.json() as { error: string }).error, 'amp_directory_unavailable');
        }
      } finally {
        directory.setDown(false);
      }
      assert.equal(received.requests.length, 0);
      assert.equal(
        (await provider({ authorization: `Bearer ${alice}` })).status,
        200,
        'a cached key still works',
      );
    });
  });
}

describe('a resolver that does not answer in time', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream();
    const host = EXPRESS_VERSIONS[0]![1]();
    host.use(
      ampRouter({
        upstream: upstream.url,
        upstreamKey: 'server-key',
        clients: { resolve: () => new Promise(() => undefined), keyShape: 'gateway', timeoutMs: 50 },
      }),
    );
    app = await listen(host);
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('fails closed with 503', async () => {
    const received = upstream.record();
    const res = await send(`${app.url}${PROVIDER_PATH}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${generateGatewayKey()}`, 'content-type': 'application/json' },
      body: BODY,
    });
    assert.equal(res.status, 503);
    assert.equal((res.json() as { error: string }).error, 'amp_directory_unavailable');
    assert.equal(received.requests.length, 0);
  });
});

describe('a resolver without a key shape', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  const directory = memoryDirectory();
  const warnings = new WaitableList<{ code: string; message: string }>();

  before(async () => {
    directory.clients.set('corp-key-of-carol-0001', { name: 'carol' });
    upstream = await startUpstream();
    const host = EXPRESS_VERSIONS[1]![1]();
    const logger = {
      info: () => undefined,
      error: () => undefined,
      warn: (object: object, message?: string) =>
        warnings.push({ code: (object as { code: string }).code, message: message ?? '' }),
    };
    host.use(
      ampRouter({ upstream: upstream.url, upstreamKey: 'server-key', clients: directory.resolve, logger }),
    );
    app = await listen(host);
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('warns at start that only the credential headers are searched for keys', () => {
    assert.equal(warnings.items.length, 1);
    assert.equal(warnings.items[0]!.code, 'amp_directory_shapeless');
    assert.match(warnings.items[0]!.message, /only in the credential headers/);
  });

  it('resolves the whole credential; a key known this way is never forwarded, even repeated elsewhere', async () => {
    const received = upstream.record();
    const ok = await send(`${app.url}${PROVIDER_PATH}`, {
      method: 'POST',
      headers: { 'x-api-key': 'corp-key-of-carol-0001', 'content-type': 'application/json' },
      body: BODY,
    });
    assert.equal(ok.status, 200);
    assert.equal(received.only().headers.authorization, 'Bearer server-key');
    assert.equal(received.only().headers['x-api-key'], 'server-key');
    const misplaced = await send(`${app.url}/api/user?copy=corp-key-of-carol-0001`, {
      headers: { authorization: 'Bearer corp-key-of-carol-0001' },
    });
    assert.equal(misplaced.status, 400);
    const refused = await send(`${app.url}${PROVIDER_PATH}`, {
      method: 'POST',
      headers: { 'x-api-key': 'nope' },
    });
    assert.equal(refused.status, 401);
    assert.equal(received.requests.length, 1);
  });
});

describe('agent WebSockets with a directory', () => {
  it('a known key opens the tunnel; a directory that fails refuses the upgrade with 503', async () => {
    const upstream = await startWebSocketUpstream();
    const directory = memoryDirectory();
    const alice = generateGatewayKey();
    directory.clients.set(alice, { name: 'alice', upstreamKey: 'alices-amp-key' });
    const router = ampRouter({
      upstream: upstream.url,
      clients: { resolve: directory.resolve, keyShape: 'gateway' },
      policies: { actors: 'inject' },
    });
    const server = createServer(router);
    attachUpgrade(server, router);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const url = `ws://127.0.0.1:${port}/actors/gateway/threadActor/websocket/`;
    try {
      const mark = upstream.handshakes.mark();
      const socket = new WebSocket(url, ['rivet'], { headers: { authorization: `Bearer ${alice}` } });
      await once(socket, 'open');
      const [handshake] = await upstream.handshakes.until(mark, (items) => items.length === 1);
      assert.equal(handshake!.headers.authorization, 'Bearer alices-amp-key');
      socket.close();

      directory.setDown(true);
      const refused = new WebSocket(url, ['rivet'], {
        headers: { authorization: `Bearer ${generateGatewayKey()}` },
      });
      const [request, res] = (await once(refused, 'unexpected-response')) as [
        { destroy(): void },
        { statusCode: number },
      ];
      assert.equal(res.statusCode, 503);
      request.destroy();
    } finally {
      await router.close();
      server.closeAllConnections();
      server.close();
      await upstream.close();
    }
  });
});
