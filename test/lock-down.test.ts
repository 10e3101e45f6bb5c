import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import cors from 'cors';
import { ampRouter, AmpProxyConfigError } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send, sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

describe('restrictManagementToLocalhost', () => {
  let upstream: FakeUpstream;
  const apps: RunningApp[] = [];
  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await upstream.close();
  });
  async function gateway(options: object): Promise<RunningApp> {
    const router = ampRouter({ upstream: upstream.url, upstreamKey: 'k', ...options });
    const app = await listen((req, res) => router(req, res));
    apps.push(app);
    return app;
  }

  it('loopback peers are served; X-Forwarded-For from an untrusted peer is ignored', async () => {
    const app = await gateway({ restrictManagementToLocalhost: true });
    for (const path of ['/api/threads', '/actors/gateway/x', '/settings']) {
      const res = await send(`${app.url}${path}`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
      assert.equal(res.status, 200, path);
    }
  });

  it('behind a trusted proxy, a remote client is refused on identity and browser routes only', async () => {
    const app = await gateway({ restrictManagementToLocalhost: true, trustedProxies: ['127.0.0.0/8'] });
    const received = upstream.record();
    for (const path of ['/api/threads', '/actors/gateway/x', '/settings']) {
      const res = await send(`${app.url}${path}`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
      assert.equal(res.status, 403, path);
      assert.equal((res.json() as { error: string }).error, 'amp_localhost_only');
    }
    assert.equal(received.requests.length, 0);
    const provider = await send(`${app.url}/api/provider/x`, {
      headers: { 'x-forwarded-for': '203.0.113.9' },
    });
    assert.equal(provider.status, 200);
  });

  it('only hops added by trusted proxies count: a spoofed leftmost entry does not help', async () => {
    const app = await gateway({ restrictManagementToLocalhost: true, trustedProxies: ['127.0.0.1'] });
    const res = await send(`${app.url}/api/threads`, {
      headers: { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' },
    });
    assert.equal(res.status, 403);
    const local = await send(`${app.url}/api/threads`, {
      headers: { 'x-forwarded-for': '203.0.113.9, 127.0.0.1' },
    });
    assert.equal(local.status, 403);
    const viaLoopback = await send(`${app.url}/api/threads`, { headers: { 'x-forwarded-for': '::1' } });
    assert.equal(viaLoopback.status, 200);
  });

  it('bad trustedProxies entries are refused in the factory', () => {
    assert.throws(() => ampRouter({ trustedProxies: ['10.0.0.0/33'] }), AmpProxyConfigError);
    assert.throws(() => ampRouter({ trustedProxies: ['proxy.internal'] }), /trustedProxies\[0\]/);
    assert.throws(() => ampRouter({ restrictManagementToLocalhost: 'yes' as never }), /true or false/);
  });
});

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`CORS on identity routes (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    before(async () => {
      upstream = await startUpstream((_req, res) => {
        res.writeHead(200, {
          'access-control-allow-origin': '*',
          'access-control-allow-credentials': 'true',
          'content-type': 'application/json',
        });
        res.end('{}');
      });
      const host = express();
      host.use(cors({ origin: true, credentials: true, preflightContinue: true }));
      host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'k' }));
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it('management and actors responses carry no Access-Control-Allow-* headers, from the upstream or the host', async () => {
      for (const path of ['/api/threads', '/actors/gateway/x']) {
        const res = await send(`${app.url}${path}`, { headers: { origin: 'https://evil.example' } });
        assert.equal(res.status, 200);
        const cors = Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
        assert.deepEqual(cors, [], path);
      }
    });

    it('preflights to management and actors routes get 403 and never reach the upstream', async () => {
      const received = upstream.record();
      for (const path of ['/api/threads', '/actors/gateway/x']) {
        const res = await send(`${app.url}${path}`, {
          method: 'OPTIONS',
          headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
        });
        assert.equal(res.status, 403, path);
        assert.equal((res.json() as { error: string }).error, 'amp_preflight_forbidden');
      }
      assert.equal(received.requests.length, 0);
    });

    it("the gateway's own error answers carry no CORS permission that the host's cors() set", async () => {
      for (const request of [
        'GET /api/threads/%2e%2e/user HTTP/1.1',
        'GET /actors/gateway/x?a#b HTTP/1.1',
        'OPTIONS /api/threads HTTP/1.1\r\nAccess-Control-Request-Method: POST',
      ]) {
        const response = await sendRaw(
          app.port,
          `${request}\r\nHost: x\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n`,
        );
        const head = response.slice(0, response.indexOf('\r\n\r\n'));
        assert.match(head, /^HTTP\/1\.1 4\d\d /, request);
        assert.doesNotMatch(head, /^access-control-/im, request);
      }
    });

    it('provider responses keep the CORS headers they were given', async () => {
      const res = await send(`${app.url}/api/provider/x`, { headers: { origin: 'https://app.example' } });
      assert.equal(res.headers['access-control-allow-origin'], '*');
    });
  });

  describe(`CORS with the router mounted before the host's cors(), the documented order (${name})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    before(async () => {
      upstream = await startUpstream();
      const host = express();
      host.use(ampRouter({ upstream: upstream.url, upstreamKey: 'k' }));
      host.use(cors());
      app = await listen(host);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    it("a preflight to an identity route gets the router's 403, not the host's permission", async () => {
      const received = upstream.record();
      const preflight = await send(`${app.url}/api/threads`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.status, 403);
      assert.equal(received.requests.length, 0);
    });
  });
}

describe('URL length', () => {
  it('an overlong Amp URL gets 414 amp_uri_too_long', async () => {
    const upstream = await startUpstream();
    const router = ampRouter({ upstream: upstream.url });
    const app = await listen((req, res) => router(req, res));
    const received = upstream.record();
    try {
      const res = await send(`${app.url}/api/threads?q=${'a'.repeat(9000)}`);
      assert.equal(res.status, 414);
      assert.equal((res.json() as { error: string }).error, 'amp_uri_too_long');
      assert.equal(received.requests.length, 0);
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});
