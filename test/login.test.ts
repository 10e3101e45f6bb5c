import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyOptions } from '../src/index.js';
import { startAmpEdge, type FakeAmpEdge } from './support/amp-edge.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { send } from './support/client.js';
import { startHttpProxy } from './support/egress-proxies.js';
import { WaitableList } from './support/events.js';
import {
  closedPort,
  closeServer,
  startUpstream,
  type FakeUpstream,
  type UpstreamHandler,
} from './support/upstream.js';
import { startGatewayApp } from './support/gateway-harness.js';

const GATEWAY_KEY = 'gw-alice-0001';
const DEVICE_CODE = 'device-code-secret-0001';
/** Shaped like the OAuth access tokens `amp login` stores (a JWT). */
const ACCESS_TOKEN = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl';
const IDENTITY = '/api/amp-proxy/identity';

function json(res: Parameters<UpstreamHandler>[1], value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const gatewayFor = (express: (typeof EXPRESS_VERSIONS)[number][1], options: AmpProxyOptions) =>
  startGatewayApp(express, ampRouter(options));

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

const MODES: readonly [string, Omit<AmpProxyOptions, 'upstream'>][] = [
  ['defaults (passthrough)', {}],
  ['clients, dual-token', { clients: [{ key: GATEWAY_KEY }], policies: { management: 'dual-token' } }],
  ['inject on management', { upstreamKey: 'sk-server-0001', policies: { management: 'inject' } }],
  [
    'a custom policy that refuses',
    { policies: { management: () => ({ reject: 'amp_client_unauthorized' }) } },
  ],
];

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`amp login through the gateway (${name})`, () => {
    let identity: FakeUpstream;
    let edge: FakeAmpEdge;
    before(async () => {
      identity = await startUpstream((req, res) => {
        if (req.url === '/user_management/authorize/device') {
          return json(res, { device_code: DEVICE_CODE, user_code: 'ABCD', interval: 1, expires_in: 60 });
        }
        json(res, { access_token: ACCESS_TOKEN, refresh_token: 'refresh-secret-0001' });
      });
      edge = await startAmpEdge({
        handler: (req, res, recorded) =>
          req.url === '/api/auth/oauth-config'
            ? json(res, { clientID: 'client_01', apiURL: `${identity.url}/`, defaultLoginMethod: 'oauth' })
            : json(res, { ok: true, url: recorded.url, authorization: req.headers.authorization ?? null }),
      });
    });
    after(async () => {
      await edge.close();
      await identity.close();
    });

    for (const [mode, options] of MODES) {
      it(`${mode}: oauth-config points at the gateway, which carries the device flow with no key`, async () => {
        const gateway = await gatewayFor(express, { upstream: edge.url, identityProxy: true, ...options });
        try {
          const config = await send(`${gateway.url}/api/auth/oauth-config`, {
            headers: { host: 'gw.internal:9000' },
          });
          assert.equal(config.status, 200, config.body);
          assert.equal((config.json() as { apiURL: string }).apiURL, `http://gw.internal:9000${IDENTITY}`);
          const record = identity.record();
          const device = await send(`${gateway.url}${IDENTITY}/user_management/authorize/device`, {
            ...form({ client_id: 'client_01' }),
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              authorization: `Bearer ${GATEWAY_KEY}`,
              'x-amp-token': ACCESS_TOKEN,
            },
          });
          assert.equal(device.status, 200, device.body);
          assert.equal((device.json() as { device_code: string }).device_code, DEVICE_CODE);
          const token = await send(
            `${gateway.url}${IDENTITY}/user_management/authenticate`,
            form({
              grant_type: 'refresh_token',
              refresh_token: 'refresh-secret-0001',
              client_id: 'client_01',
            }),
          );
          assert.equal((token.json() as { access_token: string }).access_token, ACCESS_TOKEN);
          const [first, second] = record.requests;
          assert.equal(first?.url, '/user_management/authorize/device');
          assert.equal(first?.body.toString(), 'client_id=client_01');
          assert.equal(second?.url, '/user_management/authenticate');
          for (const seen of record.requests) {
            assert.equal(seen.headers.host, new URL(identity.url).host);
            assert.equal(seen.headers.authorization, undefined);
            assert.equal(seen.headers['x-api-key'], undefined);
            assert.equal(seen.headers['x-amp-token'], undefined);
          }
        } finally {
          await gateway.close();
        }
      });
    }

    it('without identityProxy, apiURL is left alone and the identity path is an ordinary Amp route', async () => {
      const gateway = await gatewayFor(express, {
        upstream: edge.url,
        clients: [{ key: GATEWAY_KEY }],
        policies: { management: 'dual-token' },
      });
      try {
        const config = await send(`${gateway.url}/api/auth/oauth-config`);
        assert.equal((config.json() as { apiURL: string }).apiURL, `${identity.url}/`);
        const record = identity.record();
        const device = await send(`${gateway.url}${IDENTITY}/user_management/authorize/device`, form({}));
        assert.equal(device.status, 401);
        assert.equal(record.requests.length, 0);
      } finally {
        await gateway.close();
      }
    });

    it('a gateway that has seen no oauth-config asks the upstream itself, once for calls that arrive together, with no credential', async () => {
      const learning = await gatewayFor(express, {
        upstream: edge.url,
        identityProxy: true,
        upstreamKey: 'sk-server-0001',
        policies: { management: 'inject' },
      });
      try {
        const edgeRecord = edge.record();
        const providerRecord = identity.record();
        const answers = await Promise.all(
          Array.from({ length: 5 }, () =>
            send(
              `${learning.url}${IDENTITY}/user_management/authenticate`,
              form({ grant_type: 'refresh_token' }),
            ),
          ),
        );
        assert.deepEqual(
          answers.map((answer) => answer.status),
          [200, 200, 200, 200, 200],
        );
        assert.equal(providerRecord.requests.length, 5);
        const asked = edgeRecord.only();
        assert.equal(asked.url, '/api/auth/oauth-config');
        assert.equal(asked.method, 'GET');
        assert.equal(asked.headers.authorization, undefined);
        assert.doesNotMatch(JSON.stringify(asked.headers), /sk-server-0001/);
        const again = await send(`${learning.url}${IDENTITY}/user_management/authenticate`, form({}));
        assert.equal(again.status, 200);
        assert.equal(edgeRecord.requests.length, 1, 'the provider, once learned, is not asked for again');
      } finally {
        await learning.close();
      }
    });

    it("503 amp_identity_provider_unknown while the upstream's oauth-config cannot be read; the next call asks again", async () => {
      let config: 'broken' | 'no provider' | 'good' = 'broken';
      const flaky = await startUpstream((_req, res) => {
        if (config === 'broken') {
          res.writeHead(500);
          return res.end('{"apiURL":');
        }
        json(res, config === 'good' ? { apiURL: identity.url } : { apiURL: 'http://idp.example' });
      });
      const learning = await gatewayFor(express, { upstream: flaky.url, identityProxy: true });
      const configured = await gatewayFor(express, { upstream: flaky.url, identityProxy: identity.url });
      try {
        const call = (gateway: { url: string }) =>
          send(`${gateway.url}${IDENTITY}/user_management/authenticate`, form({}));
        for (const state of ['broken', 'no provider'] as const) {
          config = state;
          const unknown = await call(learning);
          assert.equal(unknown.status, 503, state);
          assert.equal((unknown.json() as { error: string }).error, 'amp_identity_provider_unknown');
        }
        const record = flaky.record();
        assert.equal((await call(configured)).status, 200, 'a configured provider needs no oauth-config');
        assert.equal(record.requests.length, 0);
        config = 'good';
        assert.equal((await call(learning)).status, 200);
        const unreachable = await gatewayFor(express, {
          upstream: `http://127.0.0.1:${await closedPort()}`,
          identityProxy: true,
        });
        try {
          assert.equal((await call(unreachable)).status, 503);
        } finally {
          await unreachable.close();
        }
      } finally {
        await learning.close();
        await configured.close();
        await flaky.close();
      }
    });

    it('logs never show the device code or tokens', async () => {
      const lines = new WaitableList<Record<string, unknown>>();
      const log = (line: object) => lines.push(line as Record<string, unknown>);
      const gateway = await gatewayFor(express, {
        upstream: edge.url,
        identityProxy: identity.url,
        logger: { info: log, warn: log, error: log },
      });
      try {
        const mark = lines.mark();
        await send(
          `${gateway.url}${IDENTITY}/user_management/authenticate?device_code=${DEVICE_CODE}`,
          form({ device_code: DEVICE_CODE, refresh_token: 'refresh-secret-0001' }),
        );
        const seen = await lines.until(mark, (items) => items.length > 0);
        assert.doesNotMatch(JSON.stringify(seen), /device-code-secret|refresh-secret|eyJ/);
      } finally {
        await gateway.close();
      }
    });

    it('OAuth access tokens are accepted where a user token is: passthrough and dual-token', async () => {
      const passthrough = await gatewayFor(express, { upstream: edge.url });
      const dualToken = await gatewayFor(express, {
        upstream: edge.url,
        clients: [{ key: GATEWAY_KEY }],
        policies: { management: 'dual-token' },
      });
      try {
        const record = edge.record();
        const direct = await send(`${passthrough.url}/api/internal?getUserInfo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ACCESS_TOKEN}` },
          body: '{}',
        });
        assert.equal(direct.status, 200);
        const dual = await send(`${dualToken.url}/api/internal?getUserInfo`, {
          method: 'POST',
          headers: { authorization: `Bearer ${GATEWAY_KEY}`, 'x-amp-token': ACCESS_TOKEN },
          body: '{}',
        });
        assert.equal(dual.status, 200);
        assert.deepEqual(
          record.requests.map((r) => r.headers.authorization),
          [`Bearer ${ACCESS_TOKEN}`, `Bearer ${ACCESS_TOKEN}`],
        );
      } finally {
        await passthrough.close();
        await dualToken.close();
      }
    });
  });
}

describe('identityProxy through an egress proxy', () => {
  it("identity calls take the group's way out: a CONNECT tunnel to the provider, with no key in it", async () => {
    const identity = await startUpstream((_req, res) => json(res, { access_token: ACCESS_TOKEN }));
    const proxy = await startHttpProxy();
    const router = ampRouter({
      upstream: 'http://amp-upstream.invalid',
      upstreamProxy: proxy.url,
      upstreamKey: 'sk-server-0001',
      clients: [{ key: GATEWAY_KEY, upstreamKey: 'amp-alice-0001' }],
      policies: { management: 'inject' },
      identityProxy: identity.url,
    });
    const server = createServer(router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const mark = proxy.tunnels.mark();
      const answer = await send(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}${IDENTITY}/user_management/authenticate`,
        {
          ...form({ refresh_token: 'refresh-secret-0001' }),
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Bearer ${GATEWAY_KEY}`,
          },
        },
      );
      assert.equal(answer.status, 200, answer.body);
      const [tunnel] = proxy.tunnels.since(mark);
      assert.equal(tunnel?.target, new URL(identity.url).host);
      const relayed = proxy.relayed(mark).toString('latin1');
      assert.match(relayed, /POST \/user_management\/authenticate /);
      assert.doesNotMatch(relayed, /sk-server-0001|amp-alice-0001|gw-alice-0001/);
    } finally {
      await closeServer(server);
      await proxy.close();
      await identity.close();
    }
  });
});

describe("identityProxy with upstreamProxy: 'env'", () => {
  const VARIABLES = [
    'HTTP_PROXY',
    'http_proxy',
    'HTTPS_PROXY',
    'https_proxy',
    'ALL_PROXY',
    'all_proxy',
    'NO_PROXY',
    'no_proxy',
  ];

  /** The factory reads the environment; it is put back before any request. */
  function routerWith(variables: Record<string, string>, options: AmpProxyOptions) {
    const saved = VARIABLES.map((name) => [name, process.env[name]] as const);
    for (const name of VARIABLES) Reflect.deleteProperty(process.env, name);
    Object.assign(process.env, variables);
    try {
      return ampRouter({ upstreamProxy: 'env', ...options });
    } finally {
      for (const [name, value] of saved) {
        if (value === undefined) Reflect.deleteProperty(process.env, name);
        else process.env[name] = value;
      }
    }
  }

  async function identityCall(router: ReturnType<typeof ampRouter>) {
    const server = createServer(router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      return await send(`http://127.0.0.1:${port}${IDENTITY}/user_management/authenticate`, form({}));
    } finally {
      await router.close();
      await closeServer(server);
    }
  }

  it('NO_PROXY is read for the identity provider apart from the upstream, both ways', async () => {
    const identity = await startUpstream((_req, res) => json(res, { access_token: ACCESS_TOKEN }));
    const edge = await startUpstream((_req, res) => json(res, { apiURL: identity.url }));
    const proxy = await startHttpProxy();
    const providerHost = new URL(identity.url).host;
    try {
      // The upstream through the proxy, the provider (named as localhost) exempt.
      const byName = identity.url.replace('127.0.0.1', 'localhost');
      let mark = proxy.tunnels.mark();
      let record = identity.record();
      const exemptProvider = routerWith(
        { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost' },
        { upstream: edge.url, identityProxy: byName },
      );
      assert.equal((await identityCall(exemptProvider)).status, 200);
      assert.equal(record.requests.length, 1);
      assert.deepEqual(proxy.tunnels.since(mark), [], 'the exempt provider was reached through the proxy');

      // The upstream exempt, the provider it names (learned, not configured) through the proxy.
      mark = proxy.tunnels.mark();
      record = identity.record();
      const edgeRecord = edge.record();
      const exemptUpstream = routerWith(
        { HTTP_PROXY: proxy.url, NO_PROXY: new URL(edge.url).host },
        { upstream: edge.url, identityProxy: true },
      );
      assert.equal((await identityCall(exemptUpstream)).status, 200);
      assert.equal(edgeRecord.only().url, '/api/auth/oauth-config');
      assert.equal(record.requests.length, 1);
      assert.deepEqual(
        proxy.tunnels.since(mark).map((tunnel) => tunnel.target),
        [providerHost],
      );
    } finally {
      await proxy.close();
      await edge.close();
      await identity.close();
    }
  });

  it('a proxy variable the identity provider would use is checked in the factory', () => {
    assert.throws(
      () =>
        routerWith(
          { HTTPS_PROXY: 'ftp://proxy.example:21' },
          { upstream: 'http://127.0.0.1:1', identityProxy: true },
        ),
      { code: 'amp_invalid_options', option: 'HTTPS_PROXY' },
    );
  });
});

describe('identity provider discovery', () => {
  it('a silent upstream is given up on (within timeoutMs here): 503, and nothing hangs', async () => {
    // Reads what it is sent (so it sees the gateway hang up) and never answers.
    const silent = createNetServer((socket) => socket.resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const router = ampRouter({
      upstream: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      identityProxy: true,
      timeoutMs: 200,
    });
    const server = createServer(router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const answer = await send(`http://127.0.0.1:${port}${IDENTITY}/user_management/authenticate`, form({}));
      assert.equal(answer.status, 503);
      assert.equal((answer.json() as { error: string }).error, 'amp_identity_provider_unknown');
    } finally {
      await router.close();
      await closeServer(server);
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('identityProxy option', () => {
  it('takes true, false or an https URL (http only on localhost)', () => {
    for (const good of [true, false, 'https://idp.example', 'http://127.0.0.1:8080', 'http://localhost']) {
      ampRouter({ identityProxy: good });
    }
    for (const bad of ['http://idp.example', 'ftp://idp.example', 'https://u:p@idp.example', 'nope', 42]) {
      assert.throws(() => ampRouter({ identityProxy: bad as string }), { option: 'identityProxy' });
    }
  });
});
