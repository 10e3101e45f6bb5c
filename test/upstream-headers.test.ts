import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpCustomPolicy } from '../src/index.js';
import { listen, type RunningApp } from './support/apps.js';
import { send, sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

describe('headers sent upstream', () => {
  let upstream: FakeUpstream;
  let app: RunningApp;
  before(async () => {
    upstream = await startUpstream();
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: [{ key: 'gw-key' }],
    });
    app = await listen((req, res) => router(req, res));
  });
  after(async () => {
    await app.close();
    await upstream.close();
  });

  it('Amp client headers pass through unchanged', async () => {
    const received = upstream.record();
    const amp = {
      'content-type': 'application/json',
      'x-amp-client-application': 'CLI Execute Mode',
      'x-amp-client-type': 'cli',
      'x-amp-client-version': '0.0.1790142911-g7618fb',
      'x-amp-installation-id': '7f6c1b1e-2b1a-4a55-9f0e-0d1c2b3a4f5e',
      'x-amp-device-fingerprint': 'v1:abcdef',
      'x-amp-thread-id': 'T-1',
      'x-rivet-token': 'pk_public',
      'x-rivet-conn-params': '{"wsToken":"abc"}',
      'accept-encoding': 'gzip, deflate, br, zstd',
      'user-agent': 'amp/1',
    };
    await send(`${app.url}/api/internal?getUserInfo`, {
      method: 'POST',
      headers: { ...amp, authorization: 'Bearer user' },
      body: '{"method":"getUserInfo","params":{}}',
    });
    const seen = received.only();
    for (const [name, value] of Object.entries(amp)) assert.equal(seen.headers[name], value, name);
    assert.equal(seen.headers.authorization, 'Bearer user');
  });

  it('client-identity, proxy and hop-by-hop headers are not forwarded, and X-Forwarded-For is not re-added', async () => {
    const received = upstream.record();
    await send(`${app.url}/api/provider/openai/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer gw-key',
        'x-forwarded-for': '10.0.0.1',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
        'x-forwarded-port': '443',
        'x-real-ip': '10.0.0.1',
        forwarded: 'for=10.0.0.1',
        via: '1.1 someproxy',
        'x-title': 'my app',
        'x-stainless-lang': 'js',
        'x-stainless-os': 'Linux',
        'http-referer': 'https://example.com',
        referer: 'https://example.com',
        'sec-ch-ua': '"Chromium"',
        'sec-fetch-mode': 'cors',
        priority: 'u=1',
        // A proxy's own credentials (a gateway key here would be refused as misplaced).
        'proxy-authorization': `Basic ${Buffer.from('proxy-user:pw').toString('base64')}`,
        'keep-alive': 'timeout=5',
        connection: 'keep-alive, x-hop-secret',
        'x-hop-secret': 'should not pass',
        te: 'trailers',
        'x-forwarded': 'for=10.0.0.1',
        'x-client-ip': '10.0.0.1',
        'x-cluster-client-ip': '10.0.0.1',
        'true-client-ip': '10.0.0.1',
        'cf-connecting-ip': '10.0.0.1',
        'fastly-client-ip': '10.0.0.1',
        x_api_key: 'read-as-x-api-key-by-some-servers',
        x_amp_thread: 'underscored',
        'x-amp-token': 'never-forwarded',
        'content-type': 'application/json',
      },
      body: '{}',
    });
    const seen = received.only();
    for (const name of [
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-forwarded-port',
      'x-real-ip',
      'forwarded',
      'via',
      'x-title',
      'x-stainless-lang',
      'x-stainless-os',
      'http-referer',
      'referer',
      'sec-ch-ua',
      'sec-fetch-mode',
      'priority',
      'proxy-authorization',
      'keep-alive',
      'x-hop-secret',
      'te',
      'x-forwarded',
      'x-client-ip',
      'x-cluster-client-ip',
      'true-client-ip',
      'cf-connecting-ip',
      'fastly-client-ip',
      'x_api_key',
      'x_amp_thread',
      'x-amp-token',
    ]) {
      assert.equal(seen.headers[name], undefined, `${name} was forwarded`);
    }
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(seen.headers.authorization, 'Bearer server-key');
  });

  it('X-Forwarded-For is not re-added on identity routes either', async () => {
    const received = upstream.record();
    await send(`${app.url}/api/threads`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    assert.equal(received.only().headers['x-forwarded-for'], undefined);
  });

  it('repeated credential headers cannot smuggle a gateway key through passthrough', async () => {
    const received = upstream.record();
    const response = await sendRaw(
      app.port,
      'GET /api/threads HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' +
        'Authorization: Bearer user-token\r\nAuthorization: Bearer gw-key\r\n' +
        'X-Api-Key: user-key\r\nX-Api-Key: gw-key\r\nX-Goog-Api-Key: gw-key, other\r\n\r\n',
    );
    assert.match(response, /^HTTP\/1\.1 200 /);
    const seen = received.only();
    assert.ok(!seen.rawHeaders.join('\n').includes('gw-key'), seen.rawHeaders.join('\n'));
    assert.equal(seen.headers.authorization, 'Bearer user-token');
  });

  it('a gateway key comma-joined inside Authorization is not forwarded', async () => {
    const received = upstream.record();
    const res = await send(`${app.url}/api/threads`, {
      headers: { authorization: 'Bearer user-token, Bearer gw-key' },
    });
    assert.equal(res.status, 401);
    assert.equal(received.requests.length, 0);
  });

  it('Expect: 100-continue does not bypass the header rewrite', async () => {
    const received = upstream.record();
    const res = await send(`${app.url}/api/provider/anthropic/v1/messages`, {
      method: 'POST',
      headers: { authorization: 'Bearer gw-key', expect: '100-continue', 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.equal(res.status, 200);
    const seen = received.only();
    assert.equal(seen.headers.authorization, 'Bearer server-key');
    assert.equal(seen.headers.expect, undefined);
    assert.equal(seen.body.toString(), '{"a":1}');
  });
});

describe('custom and redirect policies', () => {
  let upstream: FakeUpstream;
  before(async () => {
    upstream = await startUpstream();
  });
  after(async () => upstream.close());

  it('a custom policy sets headers from the context, starting without client credentials', async () => {
    const contexts: unknown[] = [];
    const policy: AmpCustomPolicy = async (req, context) => {
      contexts.push({
        group: context.group,
        client: context.client,
        authorizationToken: context.authorizationToken,
      });
      return {
        headers: {
          Authorization: `Bearer ${await context.serverKey()}`,
          'X-Team': String(req.headers['x-team']),
          'user-agent': null,
        },
      };
    };
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: 'server-key',
      clients: [{ key: 'gw-key', name: 'alice' }],
      policies: { management: policy },
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      await send(`${app.url}/api/threads?auth_token=user-token&x=1`, {
        headers: { 'x-api-key': 'gw-key', 'x-team': 'blue', 'user-agent': 'amp', 'x-goog-api-key': 'other' },
      });
      const seen = received.only();
      assert.equal(seen.url, '/api/threads?x=1');
      assert.equal(seen.headers.authorization, 'Bearer server-key');
      assert.equal(seen.headers['x-team'], 'blue');
      assert.equal(seen.headers['user-agent'], undefined);
      assert.equal(seen.headers['x-api-key'], undefined);
      assert.equal(seen.headers['x-goog-api-key'], undefined);
      assert.deepEqual(contexts, [
        {
          group: 'management',
          client: { name: 'alice', upstreamKey: undefined },
          authorizationToken: undefined,
        },
      ]);
    } finally {
      await app.close();
    }
  });

  it('a custom policy that would forward a gateway key is stopped', async () => {
    const router = ampRouter({
      upstream: upstream.url,
      clients: [{ key: 'gw-key' }],
      policies: { management: (req) => ({ headers: { authorization: String(req.headers['x-api-key']) } }) },
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      const res = await send(`${app.url}/api/threads`, { headers: { 'x-api-key': 'gw-key' } });
      assert.equal(res.status, 500);
      assert.equal((res.json() as { error: string }).error, 'amp_policy_error');
      assert.equal(received.requests.length, 0);
    } finally {
      await app.close();
    }
  });

  it('a custom policy can refuse', async () => {
    const router = ampRouter({
      upstream: upstream.url,
      policies: { actors: () => ({ reject: 'amp_token_required' }) },
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const res = await send(`${app.url}/actors/gateway/x`);
      assert.equal(res.status, 401);
      assert.equal((res.json() as { error: string }).error, 'amp_token_required');
    } finally {
      await app.close();
    }
  });

  it('redirect sends browser pages to the upstream, without gateway credentials in the query', async () => {
    const router = ampRouter({ upstream: `${upstream.url}/prefix`, policies: { browser: 'redirect' } });
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      const res = await send(`${app.url}/auth/cli-login?authToken=abc&key=gw-key`);
      assert.equal(res.status, 302);
      assert.equal(res.headers.location, `${upstream.url}/prefix/auth/cli-login?authToken=abc`);
      assert.equal(received.requests.length, 0);
      // Other groups are still proxied.
      assert.equal((await send(`${app.url}/api/threads`)).status, 200);
    } finally {
      await app.close();
    }
  });
});
