// A request target in absolute form (`POST http://gateway:8317/api/internal HTTP/1.1`): what the
// Amp CLI sends to its HTTP_PROXY for the gateway's http: URL, and what reaches the gateway when
// that proxy passes the request on without rewriting its target. A server must accept it
// (RFC 9112 §3.2.2), and Express routes it by its path; the gateway must serve it as the same
// request in origin form, with the same checks, and send the upstream the origin form.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ampRouter, attachUpgrade } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { exchangeRaw, RawClient } from './support/raw-client.js';
import { startRawUpstream } from './support/raw-upstream.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';

const GATEWAY_KEY = 'gwk_absoluteFormAlice0123456789';
const ALICE_AMP_KEY = 'amp-alice-key-0001';

/**
 * A host app with the router mounted at `mount` (its own 404 after it), Alice's gateway key mapped
 * to her Amp key, WebSockets through `attachUpgrade`; `origin` is the absolute form of the mount.
 */
async function startGateway(express: (typeof EXPRESS_VERSIONS)[number][1], mount: string) {
  const upstream = await startWebSocketUpstream();
  const router = ampRouter({
    upstream: upstream.url,
    actorToken: false,
    clients: [{ key: GATEWAY_KEY, name: 'alice', upstreamKey: ALICE_AMP_KEY }],
  });
  const host = express();
  if (mount === '') host.use(router);
  else host.use(mount, router);
  host.use((_req, res) => void res.status(404).send('host 404'));
  const app = await listen(host);
  attachUpgrade(app.server, router, { prefix: mount });
  return {
    upstream,
    app,
    origin: `http://localhost:${app.port}${mount}`,
    close: async () => {
      await router.close();
      await app.close();
      await upstream.close();
    },
  };
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`request targets in absolute form (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let app: RunningApp;
    let origin: string;
    let close: () => Promise<void>;
    before(async () => {
      ({ upstream, app, origin, close } = await startGateway(express, ''));
    });
    after(() => close());

    const post = (target: string, authorization = `Bearer ${GATEWAY_KEY}`) =>
      exchangeRaw(
        app.port,
        `POST ${target} HTTP/1.1\r\nHost: localhost:${app.port}\r\nAuthorization: ${authorization}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
      );

    it('an Amp call is served, and the upstream gets its origin form and the mapped key', async () => {
      const received = upstream.record();
      const response = await post(`${origin}/api/internal?listThreads`);
      assert.equal(response.status, 200, response.text);
      const request = received.only();
      assert.equal(request.url, '/api/internal?listThreads');
      assert.equal(request.headers.authorization, `Bearer ${ALICE_AMP_KEY}`);
      assert.ok(!JSON.stringify(request.rawHeaders).includes(GATEWAY_KEY));
    });

    it('the scheme is matched in any case, a path-less target is the root', async () => {
      const received = upstream.record();
      assert.equal((await post(`HTTP://localhost:${app.port}/api/threads/find?q=x`)).status, 200);
      assert.equal(received.only().url, '/api/threads/find?q=x');
      const root = await post(`${origin}?q=1`);
      assert.equal(root.status, 404);
      assert.match(root.text, /host 404/);
    });

    it('a gateway key in its query is refused as misplaced, never forwarded', async () => {
      const received = upstream.record();
      const response = await post(`${origin}/api/internal?listThreads&key=${GATEWAY_KEY}`, 'Bearer user');
      assert.equal(response.status, 400);
      assert.match(response.text, /amp_gateway_key_misplaced/);
      assert.equal(received.requests.length, 0);
    });

    it('an ambiguous path is refused as in origin form', async () => {
      const received = upstream.record();
      const response = await post(`${origin}/api/../admin`);
      assert.equal(response.status, 400);
      assert.match(response.text, /amp_bad_path/);
      assert.equal(received.requests.length, 0);
    });

    it("the host's own paths stay the host's, and so does a target with userinfo", async () => {
      const received = upstream.record();
      for (const target of [`${origin}/healthz`, `http://user:secret@localhost:${app.port}/api/internal`]) {
        const response = await post(target);
        assert.equal(response.status, 404, target);
        assert.match(response.text, /host 404/);
      }
      assert.equal(received.requests.length, 0);
    });

    it('a WebSocket upgrade is tunnelled, the upstream gets its origin form', async () => {
      await assertTunnelled(upstream, app.port, origin);
    });
  });

  describe(`request targets in absolute form, under a prefix (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let app: RunningApp;
    let origin: string;
    let close: () => Promise<void>;
    before(async () => {
      ({ upstream, app, origin, close } = await startGateway(express, '/amp'));
    });
    after(() => close());

    it('an Amp call and a WebSocket upgrade reach the upstream without the prefix', async () => {
      const received = upstream.record();
      const response = await exchangeRaw(
        app.port,
        `GET ${origin}/api/threads/find?q=x HTTP/1.1\r\nHost: localhost:${app.port}\r\n` +
          `Authorization: Bearer ${GATEWAY_KEY}\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(response.status, 200, response.text);
      assert.equal(received.only().url, '/api/threads/find?q=x');
      await assertTunnelled(upstream, app.port, origin);
    });
  });
}

/** An actor WebSocket asked for in absolute form under `origin` is tunnelled, in origin form and on the mapped key. */
async function assertTunnelled(upstream: FakeWebSocketUpstream, port: number, origin: string): Promise<void> {
  const handshakes = upstream.handshakes.mark();
  const client = await RawClient.open(port);
  try {
    client.write(
      `GET ${origin}/actors/gateway/threadActor/websocket/?rvt-key=T-1 HTTP/1.1\r\n` +
        `Host: localhost:${port}\r\nAuthorization: Bearer ${GATEWAY_KEY}\r\n` +
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: rivet\r\n\r\n',
    );
    const response = await client.finalResponse();
    assert.equal(response.status, 101, response.text);
    const [handshake] = upstream.handshakes.since(handshakes);
    assert.equal(handshake?.url, '/actors/gateway/threadActor/websocket/?rvt-key=T-1');
    assert.equal(handshake?.headers.authorization, `Bearer ${ALICE_AMP_KEY}`);
  } finally {
    client.destroy();
  }
}

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`absolute-form requests, as the upstream's bytes show them (${name})`, () => {
    it('bodies of both framings reach the upstream in origin form, framed by the gateway, nothing left over', async () => {
      const upstream = await startRawUpstream();
      const router = ampRouter({ upstream: upstream.url, upstreamKey: 'sk-server-0001', actorToken: false });
      const app = await listen(express().use(router));
      const client = await RawClient.open(app.port);
      try {
        const authority = `http://localhost:${app.port}`;
        client.write(
          `POST ${authority}/api/provider/anthropic/v1/messages HTTP/1.1\r\nHost: localhost:${app.port}\r\n` +
            'Authorization: Bearer user-token\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}',
        );
        assert.equal((await client.finalResponse()).status, 200);
        client.write(
          `POST ${authority}/api/internal?getUserInfo HTTP/1.1\r\nHost: localhost:${app.port}\r\n` +
            'Authorization: Bearer user-token\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        );
        assert.equal((await client.finalResponse()).status, 200);
        await upstream.waitForRequests(2);
        const arrivals = upstream.arrivals();
        assert.deepEqual(
          arrivals.map(({ request }) => [request.method, request.target, request.body.toString()]),
          [
            ['POST', '/api/provider/anthropic/v1/messages', '{"a":1}'],
            ['POST', '/api/internal?getUserInfo', '{}'],
          ],
        );
        for (const connection of upstream.connections) {
          const bytes = connection.bytes.toString('latin1');
          assert.doesNotMatch(bytes, /https?:\/\/localhost/i, 'an absolute-form target reached the upstream');
          const parsed = connection.parse();
          assert.equal(parsed.error, undefined);
          assert.equal(parsed.leftover.length, 0);
        }
      } finally {
        client.destroy();
        await router.close();
        await app.close();
        await upstream.close();
      }
    });
  });
}
