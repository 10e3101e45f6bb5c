import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpClient, type AmpPolicyName } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { send, type ClientResponse } from './support/client.js';
import { startUpstream, type FakeUpstream, type RecordedRequest } from './support/upstream.js';

const SERVER_KEY = 'server-key-0123456789';
const CLIENTS: AmpClient[] = [
  { key: 'gw-alice-key', name: 'alice', upstreamKey: 'alice-amp-key' },
  { key: 'gw-bob-key', name: 'bob' },
];
const GATEWAY_KEYS = CLIENTS.map((client) => client.key);

/**
 * Every way a client can present one credential. A gateway key in the query is misplaced (the
 * query is forwarded): such requests are refused, while the user's own token there still counts.
 */
const PLACEMENTS: ReadonlyArray<{
  name: string;
  headers: (k: string) => Record<string, string>;
  query: (k: string) => string;
}> = [
  { name: 'Authorization: Bearer', headers: (k) => ({ Authorization: `Bearer ${k}` }), query: () => '' },
  { name: 'authorization: bearer', headers: (k) => ({ authorization: `bearer ${k}` }), query: () => '' },
  { name: 'AUTHORIZATION: BEARER', headers: (k) => ({ AUTHORIZATION: `BEARER ${k}` }), query: () => '' },
  { name: 'Authorization without scheme', headers: (k) => ({ Authorization: k }), query: () => '' },
  {
    name: 'Authorization with whitespace',
    headers: (k) => ({ Authorization: `  Bearer   ${k}  ` }),
    query: () => '',
  },
  { name: 'X-Api-Key', headers: (k) => ({ 'X-Api-Key': k }), query: () => '' },
  { name: 'x-goog-api-key', headers: (k) => ({ 'x-goog-api-key': k }), query: () => '' },
  { name: 'query key', headers: () => ({}), query: (k) => `key=${encodeURIComponent(k)}` },
  { name: 'query auth_token', headers: () => ({}), query: (k) => `auth_token=${encodeURIComponent(k)}` },
];

const GROUP_PATHS = {
  provider: '/api/provider/anthropic/v1/messages',
  management: '/api/threads/T-1',
  actors: '/actors/gateway/threadActor/request/raw-thread',
} as const;

function everythingSent(seen: RecordedRequest): string {
  return `${seen.url}\n${seen.rawHeaders.join('\n')}`;
}

function assertNoGatewayKey(seen: RecordedRequest): void {
  for (const key of GATEWAY_KEYS) assert.ok(!everythingSent(seen).includes(key), `gateway key ${key} leaked`);
}

function isQueryPlacement(placement: (typeof PLACEMENTS)[number]): boolean {
  return placement.query('x') !== '';
}

/** A gateway key in the query: refused with 400, nothing forwarded, the key never echoed. */
function assertMisplaced(res: ClientResponse, seen: RecordedRequest | undefined): void {
  assert.equal(res.status, 400);
  assert.deepEqual(
    { ...(res.json() as object), message: undefined },
    { error: 'amp_gateway_key_misplaced', message: undefined, where: 'query' },
  );
  for (const key of GATEWAY_KEYS) assert.ok(!res.body.includes(key));
  assert.equal(seen, undefined);
}

function assertQueryKept(seen: RecordedRequest): void {
  // The unrelated parameter survives byte for byte wherever credentials were removed.
  assert.ok(seen.url.includes('rvt-key=T%2D1'), `unrelated query parameter lost: ${seen.url}`);
}

for (const [expressName, express] of EXPRESS_VERSIONS) {
  describe(`policies x credential placements (${expressName})`, () => {
    let upstream: FakeUpstream;
    const apps: RunningApp[] = [];

    async function gateway(
      policy: Exclude<AmpPolicyName, 'redirect'>,
      withClients: boolean,
    ): Promise<RunningApp> {
      const app = express();
      app.use(
        ampRouter({
          upstream: upstream.url,
          upstreamKey: SERVER_KEY,
          clients: withClients ? CLIENTS : undefined,
          policies: { provider: policy, management: policy, actors: policy },
        }),
      );
      const running = await listen(app);
      apps.push(running);
      return running;
    }

    async function call(
      app: RunningApp,
      path: string,
      placement: (typeof PLACEMENTS)[number],
      k: string,
      extra = {},
    ) {
      const received = upstream.record();
      const query = ['rvt-key=T%2D1', placement.query(k)].filter(Boolean).join('&');
      const res = await send(`${app.url}${path}?${query}`, {
        headers: { ...placement.headers(k), ...extra },
      });
      return { res, seen: received.requests[0] };
    }

    before(async () => {
      upstream = await startUpstream();
    });
    after(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await upstream.close();
    });

    describe('inject', () => {
      let open: RunningApp;
      let guarded: RunningApp;
      before(async () => {
        open = await gateway('inject', false);
        guarded = await gateway('inject', true);
      });

      for (const [group, path] of Object.entries(GROUP_PATHS)) {
        for (const placement of PLACEMENTS) {
          it(`${group}, ${placement.name}: the user's credential is replaced by the server key`, async () => {
            const { res, seen } = await call(open, path, placement, 'user-token-xyz');
            assert.equal(res.status, 200);
            assert.ok(seen);
            assert.equal(seen.headers.authorization, `Bearer ${SERVER_KEY}`);
            assert.equal(seen.headers['x-api-key'], SERVER_KEY);
            assert.equal(seen.headers['x-goog-api-key'], undefined);
            assert.ok(!everythingSent(seen).includes('user-token-xyz'));
            assert.ok(!/[?&](key|auth_token)=/.test(seen.url));
            assertQueryKept(seen);
          });

          it(`${group}, ${placement.name}: a client with a mapped key spends that key`, async () => {
            const { res, seen } = await call(guarded, path, placement, 'gw-alice-key');
            if (isQueryPlacement(placement)) return assertMisplaced(res, seen);
            assert.equal(res.status, 200);
            assert.ok(seen);
            assert.equal(seen.headers.authorization, 'Bearer alice-amp-key');
            assert.equal(seen.headers['x-api-key'], 'alice-amp-key');
            assertNoGatewayKey(seen);
            assertQueryKept(seen);
          });

          it(`${group}, ${placement.name}: a client without a mapped key spends the server key`, async () => {
            const { res, seen } = await call(guarded, path, placement, 'gw-bob-key');
            if (isQueryPlacement(placement)) return assertMisplaced(res, seen);
            assert.equal(res.status, 200);
            assert.ok(seen);
            assert.equal(seen.headers.authorization, `Bearer ${SERVER_KEY}`);
            assertNoGatewayKey(seen);
          });

          it(`${group}, ${placement.name}: an unknown key is refused before the upstream`, async () => {
            const { res, seen } = await call(guarded, path, placement, 'gw-mallory-key');
            assert.equal(res.status, 401);
            assert.deepEqual(Object.keys(res.json() as object), ['error', 'message']);
            assert.equal((res.json() as { error: string }).error, 'amp_client_unauthorized');
            assert.equal(seen, undefined);
          });
        }
      }

      it('no credential at all is refused with the same shape as a wrong one', async () => {
        const received = upstream.record();
        const res = await send(`${guarded.url}${GROUP_PATHS.provider}`);
        assert.equal(res.status, 401);
        assert.deepEqual(res.json(), {
          error: 'amp_client_unauthorized',
          message: 'A valid gateway client key is required for this route.',
        });
        assert.equal(received.requests.length, 0);
      });

      it('keys of two different clients together are refused', async () => {
        const received = upstream.record();
        const res = await send(`${guarded.url}${GROUP_PATHS.provider}`, {
          headers: { authorization: 'Bearer gw-alice-key', 'x-api-key': 'gw-bob-key' },
        });
        assert.equal(res.status, 401);
        assert.equal(received.requests.length, 0);
      });
    });

    describe('passthrough', () => {
      let open: RunningApp;
      let guarded: RunningApp;
      before(async () => {
        open = await gateway('passthrough', false);
        guarded = await gateway('passthrough', true);
      });

      for (const [group, path] of Object.entries(GROUP_PATHS)) {
        for (const placement of PLACEMENTS) {
          it(`${group}, ${placement.name}: the user's own credential arrives unchanged`, async () => {
            const { res, seen } = await call(open, path, placement, 'user-token-xyz');
            assert.equal(res.status, 200);
            assert.ok(seen);
            const sent = placement.headers('user-token-xyz');
            for (const [name, value] of Object.entries(sent)) {
              // HTTP itself drops the whitespace around a header value; the rest arrives as sent.
              assert.equal(seen.headers[name.toLowerCase()], value.trim());
            }
            if (placement.query('x')) assert.ok(seen.url.includes(placement.query('user-token-xyz')));
            assert.ok(!everythingSent(seen).includes(SERVER_KEY), 'server key reached a passthrough route');
            assertQueryKept(seen);
          });

          it(`${group}, ${placement.name}: a gateway key is swapped for the client's mapped Amp key`, async () => {
            const { res, seen } = await call(guarded, path, placement, 'gw-alice-key');
            if (isQueryPlacement(placement)) return assertMisplaced(res, seen);
            assert.equal(res.status, 200);
            assert.ok(seen);
            assert.equal(seen.headers.authorization, 'Bearer alice-amp-key');
            assertNoGatewayKey(seen);
            assert.ok(!everythingSent(seen).includes(SERVER_KEY));
            assertQueryKept(seen);
          });

          it(`${group}, ${placement.name}: a gateway key without a mapped key is refused`, async () => {
            const { res, seen } = await call(guarded, path, placement, 'gw-bob-key');
            if (isQueryPlacement(placement)) return assertMisplaced(res, seen);
            assert.equal(res.status, 401);
            assert.equal((res.json() as { error: string }).error, 'amp_token_required');
            assert.equal(seen, undefined);
          });
        }
      }

      it("the user's token passes while a gateway key beside it is dropped", async () => {
        const received = upstream.record();
        const res = await send(`${guarded.url}${GROUP_PATHS.management}`, {
          headers: { authorization: 'Bearer user-token-xyz', 'x-api-key': 'gw-bob-key' },
        });
        assert.equal(res.status, 200);
        const seen = received.only();
        assert.equal(seen.headers.authorization, 'Bearer user-token-xyz');
        assertNoGatewayKey(seen);
      });

      it('a request without credentials is forwarded without any', async () => {
        const received = upstream.record();
        const res = await send(`${guarded.url}/api/auth/oauth-config`);
        assert.equal(res.status, 200);
        const seen = received.only();
        assert.equal(seen.headers.authorization, undefined);
        assert.equal(seen.headers['x-api-key'], undefined);
      });
    });

    describe('dual-token', () => {
      let open: RunningApp;
      let guarded: RunningApp;
      before(async () => {
        open = await gateway('dual-token', false);
        guarded = await gateway('dual-token', true);
      });

      for (const [group, path] of Object.entries(GROUP_PATHS)) {
        it(`${group}: the Amp token from x-amp-token becomes Authorization; the gateway key stays behind`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}?key=user-query-key`, {
            headers: { authorization: 'Bearer gw-bob-key', 'X-Amp-Token': 'user-amp-token' },
          });
          assert.equal(res.status, 200);
          const seen = received.only();
          assert.equal(seen.headers.authorization, 'Bearer user-amp-token');
          assert.equal(seen.headers['x-amp-token'], undefined);
          assert.equal(seen.headers['x-api-key'], undefined);
          assert.ok(!seen.url.includes('user-query-key'), 'dual-token drops query credentials');
          assertNoGatewayKey(seen);
          assert.ok(!everythingSent(seen).includes(SERVER_KEY));
        });

        it(`${group}: a gateway key in the query beside the header is refused, not dropped`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}?key=gw-bob-key`, {
            headers: { authorization: 'Bearer gw-bob-key', 'X-Amp-Token': 'user-amp-token' },
          });
          assertMisplaced(res, received.requests[0]);
        });

        it(`${group}: without an Amp token the client's mapped key is used`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}`, { headers: { 'x-api-key': 'gw-alice-key' } });
          assert.equal(res.status, 200);
          assert.equal(received.only().headers.authorization, 'Bearer alice-amp-key');
        });

        it(`${group}: without an Amp token or a mapped key the request is refused`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}`, {
            headers: { authorization: 'Bearer gw-bob-key' },
          });
          assert.equal(res.status, 401);
          assert.equal((res.json() as { error: string }).error, 'amp_token_required');
          assert.equal(received.requests.length, 0);
        });

        it(`${group}: an unknown gateway key is refused`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}`, {
            headers: { authorization: 'Bearer nope', 'x-amp-token': 'user-amp-token' },
          });
          assert.equal(res.status, 401);
          assert.equal((res.json() as { error: string }).error, 'amp_client_unauthorized');
          assert.equal(received.requests.length, 0);
        });

        it(`${group}: a gateway key put in x-amp-token is never forwarded`, async () => {
          const received = upstream.record();
          const res = await send(`${guarded.url}${path}`, {
            headers: { authorization: 'Bearer gw-bob-key', 'x-amp-token': 'gw-alice-key' },
          });
          assert.equal(res.status, 401);
          assert.equal(received.requests.length, 0);
        });
      }

      it('without clients, any gateway credential is accepted and removed', async () => {
        const received = upstream.record();
        const res = await send(`${open.url}${GROUP_PATHS.provider}`, {
          headers: { authorization: 'Bearer anything', 'x-amp-token': 'Bearer user-amp-token' },
        });
        assert.equal(res.status, 200);
        const seen = received.only();
        assert.equal(seen.headers.authorization, 'Bearer user-amp-token');
        assert.ok(!everythingSent(seen).includes('anything'));
      });
    });
  });
}
