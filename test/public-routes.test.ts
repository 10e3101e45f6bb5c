import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyOptions } from '../src/index.js';
import { EDGE_ACTOR_TOKEN, startAmpEdge, type FakeAmpEdge } from './support/amp-edge.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { send } from './support/client.js';
import type { UpstreamHandler } from './support/upstream.js';
import { startGatewayApp } from './support/gateway-harness.js';

const GATEWAY_KEY = 'gw-alice-0001';
const OAUTH_CONFIG = { clientID: 'client_01', apiURL: 'https://idp.example', defaultLoginMethod: 'oauth' };

/** What Amp's edge would answer: RivetKit metadata naming another endpoint, and the login config. */
function edgeHandler(edgeUrl: () => string): UpstreamHandler {
  return (req, res, recorded) => {
    let body: string | Buffer = JSON.stringify({ ok: true, url: recorded.url });
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (req.url?.startsWith('/actors/metadata')) {
      body = JSON.stringify({
        runtime: 'engine',
        version: '2.0.0',
        clientEndpoint: 'https://api.rivet.example/',
        clientNamespace: 'amp',
        clientToken: 'pk_fromMetadata',
        links: [`${edgeUrl()}/actors/inspect`, 'https://docs.example/x'],
      });
      if (req.url.includes('gzip')) {
        body = gzipSync(body);
        headers['content-encoding'] = 'gzip';
      }
      if (req.url.includes('huge')) body = JSON.stringify({ pad: 'x'.repeat(100_000) });
      if (req.url.includes('broken')) body = '{"clientEndpoint": "https://api.rivet.example/"';
      if (req.url.includes('text')) headers['content-type'] = 'text/plain';
      if (req.url.includes('zstd')) headers['content-encoding'] = 'zstd';
    } else if (req.url === '/api/auth/oauth-config') {
      body = JSON.stringify(OAUTH_CONFIG);
    }
    headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(200, headers);
    res.end(body);
  };
}

async function gatewayFor(express: (typeof EXPRESS_VERSIONS)[number][1], options: AmpProxyOptions) {
  const router = ampRouter(options);
  return { ...(await startGatewayApp(express, router)), router };
}

const STRICT_MODES: readonly [string, Omit<AmpProxyOptions, 'upstream'>][] = [
  ['defaults (passthrough)', {}],
  [
    'clients, dual-token everywhere',
    { clients: [{ key: GATEWAY_KEY }], policies: { management: 'dual-token', actors: 'dual-token' } },
  ],
  ['clients, inject on actors', { clients: [{ key: GATEWAY_KEY }], policies: { actors: 'inject' } }],
  [
    'custom policies that refuse everything',
    {
      policies: {
        management: () => ({ reject: 'amp_client_unauthorized' }),
        actors: () => ({ reject: 'amp_client_unauthorized' }),
      },
    },
  ],
];

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`public routes (${name})`, () => {
    let edge: FakeAmpEdge;
    before(async () => {
      edge = await startAmpEdge({ handler: edgeHandler(() => edge.url) });
    });
    after(() => edge.close());

    for (const [mode, options] of STRICT_MODES) {
      it(`${mode}: metadata and oauth-config are served without a credential, and carry none`, async () => {
        const gateway = await gatewayFor(express, {
          upstream: edge.url,
          actorToken: EDGE_ACTOR_TOKEN,
          upstreamKey: 'sk-server-0001',
          ...options,
        });
        try {
          const record = edge.record();
          const metadata = await send(`${gateway.url}/actors/metadata?namespace=default`);
          assert.equal(metadata.status, 200, metadata.body);
          const config = await send(`${gateway.url}/api/auth/oauth-config`, {
            headers: { authorization: `Bearer ${GATEWAY_KEY}` },
          });
          assert.equal(config.status, 200, config.body);
          assert.deepEqual(config.json(), OAUTH_CONFIG);
          for (const seen of record.requests) {
            assert.equal(seen.headers.authorization, undefined);
            assert.equal(seen.headers['x-api-key'], undefined);
          }
          // Every other route keeps its policy.
          const other = await send(`${gateway.url}/actors/gateway/threadActor/request/raw-thread`);
          if (mode !== 'defaults (passthrough)') assert.notEqual(other.status, 200);
        } finally {
          await gateway.close();
        }
      });
    }

    it('only GET and HEAD of those exact paths are public', async () => {
      const gateway = await gatewayFor(express, {
        upstream: edge.url,
        clients: [{ key: GATEWAY_KEY }],
        policies: { actors: 'dual-token', management: 'dual-token' },
      });
      try {
        const record = edge.record();
        assert.equal(
          (await send(`${gateway.url}/actors/metadata`, { method: 'POST', body: '{}' })).status,
          401,
        );
        assert.equal((await send(`${gateway.url}/actors/metadata/x`)).status, 401);
        assert.equal((await send(`${gateway.url}/api/auth/oauth-config2`)).status, 401);
        assert.equal(record.requests.length, 0);
      } finally {
        await gateway.close();
      }
    });

    describe('the metadata reply keeps the client on the gateway', () => {
      let gateway: Awaited<ReturnType<typeof gatewayFor>>;
      let configured: Awaited<ReturnType<typeof gatewayFor>>;
      let behindProxy: Awaited<ReturnType<typeof gatewayFor>>;
      before(async () => {
        gateway = await gatewayFor(express, { upstream: edge.url, actorToken: EDGE_ACTOR_TOKEN });
        configured = await gatewayFor(express, {
          upstream: edge.url,
          actorToken: EDGE_ACTOR_TOKEN,
          publicUrl: 'https://amp-gw.example/',
        });
        behindProxy = await gatewayFor(express, {
          upstream: edge.url,
          actorToken: EDGE_ACTOR_TOKEN,
          trustedProxies: ['127.0.0.1'],
        });
      });
      after(async () => {
        await gateway.close();
        await configured.close();
        await behindProxy.close();
      });

      it("clientEndpoint becomes the gateway's /actors, from the request's Host", async () => {
        const reply = await send(`${gateway.url}/actors/metadata`, { headers: { host: 'gw.internal:8080' } });
        assert.equal(reply.status, 200);
        const document = reply.json() as Record<string, unknown>;
        assert.equal(document.clientEndpoint, 'http://gw.internal:8080/actors');
        assert.equal(document.clientNamespace, 'amp');
        assert.deepEqual(document.links, [
          'http://gw.internal:8080/actors/inspect',
          'https://docs.example/x',
        ]);
        assert.equal(reply.headers['content-length'], String(Buffer.byteLength(reply.body)));
      });

      it('publicUrl wins over the request', async () => {
        const reply = await send(`${configured.url}/actors/metadata`, { headers: { host: 'elsewhere' } });
        assert.equal(
          (reply.json() as { clientEndpoint: string }).clientEndpoint,
          'https://amp-gw.example/actors',
        );
      });

      it('X-Forwarded-Proto and -Host count only from a trusted proxy', async () => {
        const forwarded = {
          host: 'gw.internal',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'amp.corp.example',
        };
        const untrusted = (await send(`${gateway.url}/actors/metadata`, { headers: forwarded })).json();
        assert.equal((untrusted as { clientEndpoint: string }).clientEndpoint, 'http://gw.internal/actors');
        const trusted = (await send(`${behindProxy.url}/actors/metadata`, { headers: forwarded })).json();
        assert.equal(
          (trusted as { clientEndpoint: string }).clientEndpoint,
          'https://amp.corp.example/actors',
        );
      });

      it('a compressed reply is decoded and sent plain', async () => {
        const reply = await send(`${gateway.url}/actors/metadata?gzip`);
        assert.equal(reply.headers['content-encoding'], undefined);
        assert.match(
          (reply.json() as { clientEndpoint: string }).clientEndpoint,
          /^http:\/\/127\.0\.0\.1:\d+\/actors$/,
        );
      });

      it('a reply that cannot be read as JSON goes as it came', async () => {
        for (const variant of ['broken', 'text', 'zstd']) {
          const reply = await send(`${gateway.url}/actors/metadata?${variant}`);
          assert.equal(reply.status, 200);
          assert.match(reply.body, /api\.rivet\.example/, variant);
        }
      });

      it('a reply too large to be metadata is not held: 502', async () => {
        const reply = await send(`${gateway.url}/actors/metadata?huge`);
        assert.equal(reply.status, 502);
      });
    });
  });
}
