import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ampRouter, attachUpgrade, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { sendRaw } from './support/client.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SERVER_KEY = 'srv-key-5d1c8e2a7f';
const ALICE = 'gwk_Alice_7Q2mZ9xL4pR8';
const BOB = 'gwk_Bob_3vN8kW1cT6yH';
/** Lower case, so that it survives as a header name (Node lower-cases names). */
const CAROL = 'gwk-carol-3f9a2c7e1b';
const ALICE_AMP_KEY = 'amp-alice-0000';
const CLIENTS = [
  { key: ALICE, name: 'alice', upstreamKey: ALICE_AMP_KEY },
  { key: BOB, name: 'bob' },
  { key: CAROL, name: 'carol' },
];
const GATEWAY_KEYS = [ALICE, BOB, CAROL];

const base64 = (text: string): string => Buffer.from(text).toString('base64');
/** Every character percent-encoded: `gwk…` becomes `%67%77%6b…`. */
const encodeAll = (text: string): string =>
  [...text].map((char) => `%${char.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
const connParams = (token: string): string =>
  `rivet_conn_params.${encodeURIComponent(JSON.stringify({ wsToken: token }))}`;

/** One path per group, and the same group's path with a key in it. */
const GROUPS = {
  provider: {
    path: '/api/provider/anthropic/v1/messages',
    withKey: (k: string) => `/api/provider/anthropic/v1/${k}`,
  },
  management: { path: '/api/threads/T-1', withKey: (k: string) => `/api/threads/${k}` },
  actors: {
    path: '/actors/gateway/threadActor/request/raw-thread',
    withKey: (k: string) => `/actors/gateway/threadActor/request/${k}`,
  },
  browser: { path: '/settings', withKey: (k: string) => `/threads/${k}` },
} as const;

interface Placement {
  name: string;
  /** What `where` names. */
  where: string;
  headers?: (k: string) => [string, string][];
  query?: (k: string) => string;
}

/** Every place outside the credential headers where issue 9 §2 says a key must be refused. */
const MISPLACED: readonly Placement[] = [
  { name: 'a cookie', where: 'cookie', headers: (k) => [['Cookie', `theme=dark; session=${k}`]] },
  { name: 'X_Api_Key (underscores)', where: 'x_api_key', headers: (k) => [['X_Api_Key', k]] },
  {
    name: 'x_goog_api_key with a scheme',
    where: 'x_goog_api_key',
    headers: (k) => [['x_goog_api_key', `Bearer ${k}`]],
  },
  {
    name: 'a WebSocket subprotocol',
    where: 'sec-websocket-protocol',
    headers: (k) => [['Sec-WebSocket-Protocol', `rivet, ${connParams(k)}`]],
  },
  {
    name: 'X-Rivet-Conn-Params',
    where: 'x-rivet-conn-params',
    headers: (k) => [['X-Rivet-Conn-Params', JSON.stringify({ wsToken: k })]],
  },
  { name: 'X-Rivet-Token', where: 'x-rivet-token', headers: (k) => [['X-Rivet-Token', k]] },
  { name: 'User-Agent', where: 'user-agent', headers: (k) => [['User-Agent', `amp/1 (${k})`]] },
  {
    name: 'Proxy-Authorization (Basic)',
    where: 'proxy-authorization',
    headers: (k) => [['Proxy-Authorization', `Basic ${base64(`:${k}`)}`]],
  },
  {
    name: 'any header, quoted with text',
    where: 'x-note',
    headers: (k) => [['X-Note', `Token "${k}" and more`]],
  },
  { name: 'any header, percent-encoded', where: 'x-data', headers: (k) => [['X-Data', encodeAll(k)]] },
  { name: 'a header name', where: 'header name', headers: () => [[CAROL, '1']] },
  { name: '?key=', where: 'query', query: (k) => `key=${k}` },
  { name: '?auth_token=', where: 'query', query: (k) => `auth_token=${k}` },
  { name: '; separators', where: 'query', query: (k) => `a=1;key=${k}` },
  { name: 'an encoded parameter name', where: 'query', query: (k) => `%6Bey=${k}` },
  { name: 'array syntax', where: 'query', query: (k) => `key[]=${k}&keys[0]=x` },
  { name: 'inside an unrelated parameter', where: 'query', query: (k) => `q=see%20${k}%20here` },
  { name: 'a key alone', where: 'query', query: (k) => k },
  { name: 'encoded twice', where: 'query', query: (k) => `x=${encodeAll(k).replace(/%/g, '%25')}` },
  {
    name: 'encoded JSON',
    where: 'query',
    query: (k) => `filter=${encodeURIComponent(JSON.stringify({ key: k }))}`,
  },
];

interface RawResponse {
  status: number;
  body: string;
  text: string;
}

/** A request written byte for byte (no client library rewrites its target or headers). */
async function exchange(
  port: number,
  target: string,
  headers: readonly [string, string][],
  { method = 'GET', body = '' }: { method?: string; body?: string } = {},
): Promise<RawResponse> {
  const head = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  const length = body ? `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` : '';
  const text = await sendRaw(
    port,
    `${method} ${target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n${length}${head}\r\n${body}`,
  );
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4), text };
}

function assertNoKey(text: string, what: string): void {
  for (const key of GATEWAY_KEYS) assert.ok(!text.includes(key), `${what} contains a gateway key`);
}

function errorOf(response: RawResponse): { error: string; where?: string } {
  return JSON.parse(response.body) as { error: string; where?: string };
}

for (const [expressName, express] of EXPRESS_VERSIONS) {
  describe(`a gateway key is recognised wherever it appears (${expressName})`, () => {
    let upstream: FakeUpstream;
    let app: RunningApp;
    let upgrades = 0;

    function everythingUpstreamSaw(): string {
      return JSON.stringify(upstream.requests.map((r) => [r.url, r.rawHeaders, r.body.toString('latin1')]));
    }

    before(async () => {
      upstream = await startUpstream();
      upstream.server.on('upgrade', (_req, socket) => {
        upgrades++;
        socket.destroy();
      });
      const router = ampRouter({ upstream: upstream.url, upstreamKey: SERVER_KEY, clients: CLIENTS });
      const host = express();
      host.use(router);
      app = await listen(host);
      attachUpgrade(app.server, router);
    });
    after(async () => {
      await app.close();
      await upstream.close();
    });

    for (const [group, { path, withKey }] of Object.entries(GROUPS)) {
      for (const placement of MISPLACED) {
        it(`${group}: in ${placement.name}, refused with 400 naming "${placement.where}"`, async () => {
          upstream.requests.length = 0;
          const query = placement.query?.(ALICE);
          const response = await exchange(app.port, query ? `${path}?${query}` : path, [
            ['Authorization', `Bearer ${BOB}`],
            ...(placement.headers?.(ALICE) ?? []),
          ]);
          assert.equal(response.status, 400, response.text);
          assert.deepEqual(errorOf(response), {
            error: 'amp_gateway_key_misplaced',
            message:
              'A gateway key was found where it would be forwarded upstream; send it only in Authorization, X-Api-Key, X-Goog-Api-Key or the token header.',
            where: placement.where,
          });
          assertNoKey(response.text, 'the response');
          assert.equal(upstream.requests.length, 0, 'something reached the upstream');
        });
      }

      for (const [name, target] of [
        ['the path', withKey(ALICE)],
        ['the path, percent-encoded', withKey(encodeAll(ALICE))],
      ] as const) {
        it(`${group}: in ${name}, refused with 400 naming "path"`, async () => {
          upstream.requests.length = 0;
          const response = await exchange(app.port, target, [['Authorization', `Bearer ${BOB}`]]);
          assert.equal(response.status, 400, response.text);
          assert.equal(errorOf(response).error, 'amp_gateway_key_misplaced');
          assert.equal(errorOf(response).where, 'path');
          assert.equal(upstream.requests.length, 0);
        });
      }

      it(`${group}: after a raw # in the target, refused (as a bad path or a misplaced key)`, async () => {
        upstream.requests.length = 0;
        const response = await exchange(app.port, `${path}?a=1#${ALICE}`, [
          ['Authorization', `Bearer ${BOB}`],
        ]);
        assert.equal(response.status, 400, response.text);
        assert.match(errorOf(response).error, /^(amp_bad_path|amp_gateway_key_misplaced)$/);
        assertNoKey(response.text, 'the response');
        assert.equal(upstream.requests.length, 0);
      });
    }

    it('a WebSocket upgrade with a key in its subprotocol is refused before the upstream', async () => {
      upgrades = 0;
      const response = await exchange(app.port, '/actors/gateway/threadActor/websocket/', [
        ['Authorization', `Bearer ${BOB}`],
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
        ['Sec-WebSocket-Version', '13'],
        ['Sec-WebSocket-Protocol', `rivet, ${connParams(ALICE)}`],
      ]);
      assert.equal(response.status, 400, response.text);
      assert.deepEqual(
        { ...errorOf(response), message: undefined },
        { error: 'amp_gateway_key_misplaced', message: undefined, where: 'sec-websocket-protocol' },
      );
      assertNoKey(response.text, 'the response');
      assert.equal(upgrades, 0);
    });

    /** The caller's key in a credential header, in every form a client may send it. */
    const CREDENTIAL_FORMS: readonly (readonly [string, (k: string) => string])[] = [
      ['Authorization', (k) => `Bearer ${k}`],
      ['Authorization', (k) => `Token ${k}`],
      ['Authorization', (k) => `ApiKey ${k}`],
      ['Authorization', (k) => k],
      ['Authorization', (k) => `"${k}"`],
      ['Authorization', (k) => `Bearer "${k}"`],
      ['Authorization', (k) => `Bearer ${k} trailing-text`],
      ['Authorization', (k) => `Bearer ${k}, another`],
      ['Authorization', (k) => `Basic ${base64(`${k}:`)}`],
      ['Authorization', (k) => `Basic ${base64(`:${k}`)}`],
      ['Authorization', (k) => `basic ${base64(`alice:${k}`)}`],
      ['X-Api-Key', (k) => `Bearer ${k}`],
      ['X-Api-Key', (k) => `'${k}'`],
      ['X-Goog-Api-Key', (k) => `"${k}"`],
      ['X-Amp-Token', (k) => `Token ${k}`],
    ];
    for (const [group, { path }] of [
      ['provider (inject)', GROUPS.provider],
      ['management (passthrough)', GROUPS.management],
    ] as const) {
      for (const [header, form] of CREDENTIAL_FORMS) {
        it(`${group}: ${header}: ${form('KEY')} identifies the client and never leaves`, async () => {
          upstream.requests.length = 0;
          const response = await exchange(app.port, path, [[header, form(ALICE)]], {
            method: 'POST',
            body: '{"x":1}',
          });
          assert.equal(response.status, 200, response.text);
          const seen = upstream.only();
          assert.equal(seen.headers.authorization, `Bearer ${ALICE_AMP_KEY}`);
          assertNoKey(everythingUpstreamSaw(), 'the upstream request');
        });
      }
    }

    it('keys of two clients inside one Basic credential are refused', async () => {
      upstream.requests.length = 0;
      const response = await exchange(app.port, GROUPS.provider.path, [
        ['Authorization', `Basic ${base64(`${ALICE}:${BOB}`)}`],
      ]);
      assert.equal(response.status, 401);
      assert.equal(errorOf(response).error, 'amp_client_unauthorized');
      assert.equal(upstream.requests.length, 0);
    });

    it("a key with no mapped Amp key, in any form, is not forwarded on the user's behalf", async () => {
      upstream.requests.length = 0;
      const response = await exchange(app.port, GROUPS.management.path, [
        ['Authorization', `Basic ${base64(`:${BOB}`)}`],
      ]);
      assert.equal(response.status, 401);
      assert.equal(errorOf(response).error, 'amp_token_required');
      assert.equal(upstream.requests.length, 0);
    });

    it("the user's own credentials in the query still pass (passthrough) or are dropped (inject)", async () => {
      upstream.requests.length = 0;
      const management = await exchange(app.port, `${GROUPS.management.path}?key=user-key-1&a=1`, [
        ['Authorization', `Bearer ${ALICE}`],
      ]);
      assert.equal(management.status, 200);
      assert.equal(upstream.only().url, `${GROUPS.management.path}?key=user-key-1&a=1`);
      upstream.requests.length = 0;
      const provider = await exchange(app.port, `${GROUPS.provider.path}?key=user-key-1&a=1`, [
        ['Authorization', `Bearer ${ALICE}`],
      ]);
      assert.equal(provider.status, 200);
      assert.equal(upstream.only().url, `${GROUPS.provider.path}?a=1`);
    });
  });

  describe(`custom policies and server keys go through the same recogniser (${expressName})`, () => {
    let upstream: FakeUpstream;
    const apps: RunningApp[] = [];

    async function gateway(options: AmpProxyOptions): Promise<RunningApp> {
      const host = express();
      host.use(ampRouter({ upstream: upstream.url, clients: CLIENTS, ...options }));
      const running = await listen(host);
      apps.push(running);
      return running;
    }

    before(async () => {
      upstream = await startUpstream();
    });
    after(async () => {
      await Promise.all(apps.map((running) => running.close()));
      await upstream.close();
    });

    const DISGUISES: readonly (readonly [string, (k: string) => Record<string, string>])[] = [
      ['Bearer', (k) => ({ authorization: `Bearer ${k}` })],
      ['a quoted token after other text', (k) => ({ 'x-forwarded-token': `v1 "${k}"` })],
      ['Basic :key', (k) => ({ authorization: `Basic ${base64(`:${k}`)}` })],
      ['percent-encoded JSON', (k) => ({ 'x-params': encodeURIComponent(JSON.stringify({ token: k })) })],
      ['a header name', () => ({ [CAROL]: 'x' })],
    ];
    for (const [name, disguise] of DISGUISES) {
      it(`a custom policy returning a key as ${name} fails with 500 amp_policy_error`, async () => {
        const app = await gateway({
          upstreamKey: SERVER_KEY,
          policies: {
            management: (req) => {
              const presented = String(req.headers.authorization).replace('Bearer ', '');
              return { headers: disguise(presented) };
            },
          },
        });
        upstream.requests.length = 0;
        const response = await exchange(app.port, GROUPS.management.path, [
          ['Authorization', `Bearer ${CAROL}`],
        ]);
        assert.equal(response.status, 500, response.text);
        assert.equal(errorOf(response).error, 'amp_policy_error');
        assertNoKey(response.text, 'the response');
        assert.equal(upstream.requests.length, 0);
      });
    }

    const conflict = async (app: RunningApp, path: string = GROUPS.provider.path): Promise<void> => {
      upstream.requests.length = 0;
      const response = await exchange(app.port, path, [['Authorization', `Bearer ${BOB}`]]);
      assert.equal(response.status, 503, response.text);
      assert.deepEqual(JSON.parse(response.body), {
        error: 'amp_upstream_key_conflict',
        message:
          'The upstream key resolved for this request equals a gateway client key, so it was not sent; give the gateway and its clients different keys.',
      });
      assertNoKey(response.text, 'the response');
      assert.equal(upstream.requests.length, 0, 'a gateway key was sent as the server key');
    };

    it('an upstreamKey function that returns a gateway key fails the request with 503', async () => {
      await conflict(await gateway({ upstreamKey: () => ALICE }));
      await conflict(await gateway({ upstreamKey: async () => `Bearer ${CAROL}` }));
    });

    it('AMP_API_KEY holding a gateway key fails the request with 503', async () => {
      const saved = process.env.AMP_API_KEY;
      process.env.AMP_API_KEY = ALICE;
      try {
        await conflict(
          await gateway({ upstreamKey: 'env', secretsFile: join(tmpdir(), 'amp-no-such-secrets.json') }),
        );
      } finally {
        if (saved === undefined) delete process.env.AMP_API_KEY;
        else process.env.AMP_API_KEY = saved;
      }
    });

    it('a secrets file entry holding a gateway key fails the request with 503', async () => {
      const saved = process.env.AMP_API_KEY;
      delete process.env.AMP_API_KEY;
      const dir = await mkdtemp(join(tmpdir(), 'amp-secrets-'));
      try {
        const secretsFile = join(dir, 'secrets.json');
        await writeFile(secretsFile, JSON.stringify({ [`apiKey@${upstream.url}`]: BOB }));
        await conflict(await gateway({ upstreamKey: 'env', secretsFile }));
      } finally {
        if (saved !== undefined) process.env.AMP_API_KEY = saved;
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('a custom policy asking for a server key that is a gateway key gets none, and the request fails with 503', async () => {
      const given: (string | undefined)[] = [];
      const app = await gateway({
        upstreamKey: () => CAROL,
        policies: {
          management: async (_req, context) => {
            const key = await context.serverKey();
            given.push(key);
            return { headers: { authorization: `Bearer ${key}` } };
          },
        },
      });
      await conflict(app, GROUPS.management.path);
      assert.deepEqual(given, [undefined]);
    });

    it('a server key that is not a gateway key is spent as before', async () => {
      const app = await gateway({ upstreamKey: () => SERVER_KEY });
      upstream.requests.length = 0;
      const response = await exchange(app.port, GROUPS.provider.path, [['Authorization', `Bearer ${BOB}`]]);
      assert.equal(response.status, 200);
      assert.equal(upstream.only().headers.authorization, `Bearer ${SERVER_KEY}`);
    });
  });
}
