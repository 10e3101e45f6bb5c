import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ampRouter, attachUpgrade, type AmpMiddleware, type AmpProxyOptions } from '../src/index.js';
import { publicActorToken } from '../src/actors/actor-token.js';
import { isSecretName } from '../src/auth/credential-names.js';
import { validateOptions, actorTokenOf } from '../src/config/validate-options.js';
import { EDGE_ACTOR_TOKEN, GUARD_MISSING, startAmpEdge, type FakeAmpEdge } from './support/amp-edge.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { send } from './support/client.js';
import { WaitableList } from './support/events.js';
import { closeServer, POLICY_VIOLATION } from './support/upstream.js';
import { openSocket } from './support/gateway-harness.js';

const CONN_PARAMS = encodeURIComponent(JSON.stringify({ wsToken: 'ws-token-123' }));
const PROTOCOLS = ['rivet', 'rivet_encoding.bare', `rivet_conn_params.${CONN_PARAMS}`];
/** What the Amp CLI sends when its Amp URL is `http://localhost:…`: namespace, and no token. */
const LOCALHOST_SHAPE =
  '/actors/gateway/threadActor/websocket/?rvt-namespace=default&rvt-method=get&rvt-key=T-1';
const IMPORT_PATH =
  '/actors/gateway/threadActor/request/import?rvt-namespace=default&rvt-method=get&rvt-key=T-1';

/** The next frame; a close before it fails the test at once instead of leaving it hanging. */
function nextMessage(socket: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('message', (data: Buffer) => resolve(data.toString()));
    socket.once('close', (code: number, reason: Buffer) => reject(new Error(`closed ${code} ${reason}`)));
  });
}

function tokenParams(url: string): string[] {
  return new URL(url, 'http://edge').searchParams.getAll('rvt-token');
}

describe('the actor token in force (no sockets)', () => {
  it("is the one the Amp CLI sends to Amp's production and staging hosts, and none for others", () => {
    assert.match(publicActorToken('https://ampcode.com') ?? '', /^pk_/);
    assert.ok(publicActorToken('https://staging.ampcodedev.org'));
    assert.notEqual(
      publicActorToken('https://staging.ampcodedev.org'),
      publicActorToken('https://ampcode.com'),
    );
    assert.equal(publicActorToken('http://ampcode.com'), undefined);
    assert.equal(publicActorToken('https://amp.example.com'), undefined);
    assert.equal(publicActorToken('http://127.0.0.1:8080'), undefined);
  });

  it('is derived from the upstream unless the option names one or turns it off', () => {
    const of = (options: AmpProxyOptions) => actorTokenOf(validateOptions(options));
    assert.equal(of({}), publicActorToken('https://ampcode.com'));
    assert.equal(of({ upstream: 'https://ampcode.com/' }), publicActorToken('https://ampcode.com'));
    assert.equal(of({ actorToken: false }), undefined);
    assert.equal(of({ upstream: 'https://amp.example.com' }), undefined);
    assert.equal(of({ upstream: 'https://amp.example.com', actorToken: ' pk_own ' }), 'pk_own');
  });

  it('is validated in the factory, and never echoed in an error', () => {
    for (const bad of ['', 'has space', 'tab\there', 42, true, {}]) {
      assert.throws(
        () => ampRouter({ actorToken: bad as string }),
        (error: Error & { option?: string }) => {
          assert.equal(error.option, 'actorToken');
          assert.doesNotMatch(error.message, /has space|tab/);
          return true;
        },
      );
    }
    assert.throws(() => ampRouter({ clients: [{ key: 'gw-alice-0001' }], actorToken: 'gw-alice-0001' }), {
      option: 'actorToken',
    });
  });

  it('is masked wherever it is logged: the rvt-token parameter and the x-rivet-token header', () => {
    assert.equal(isSecretName('rvt-token'), true);
    assert.equal(isSecretName('x-rivet-token'), true);
  });
});

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`actor token, against an edge that enforces it (${name})`, () => {
    let edge: FakeAmpEdge;
    let server: Server;
    let router: AmpMiddleware;
    let http: string;
    let ws: string;
    const events = new WaitableList<{ type: string; path?: string }>();

    before(async () => {
      edge = await startAmpEdge();
      router = ampRouter({ upstream: edge.url, actorToken: EDGE_ACTOR_TOKEN, onProxyEvent: events.push });
      const app = express();
      app.use(router);
      server = createServer(app);
      attachUpgrade(server, router);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      http = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      ws = http.replace('http:', 'ws:');
    });
    after(async () => {
      await router.close();
      await closeServer(server);
      await edge.close();
    });

    it('the fake edge closes a tokenless actor WebSocket after the upgrade, as production does', async () => {
      const direct = new WebSocket(`${edge.url.replace('http:', 'ws:')}${LOCALHOST_SHAPE}`, PROTOCOLS);
      const [code, reason] = (await once(direct, 'close')) as [number, Buffer];
      assert.equal(code, POLICY_VIOLATION);
      assert.equal(reason.toString(), GUARD_MISSING);
      const refused = await send(`${edge.url}${IMPORT_PATH}`, { method: 'POST', body: '{}' });
      assert.equal(refused.status, 400);
    });

    it('a WebSocket in the localhost shape gets the token on its way and carries frames', async () => {
      const handshakes = edge.handshakes.mark();
      const socket = await openSocket(`${ws}${LOCALHOST_SHAPE}`, PROTOCOLS);
      const echoed = nextMessage(socket);
      socket.send('"ping"');
      assert.equal(await echoed, '"ping"');
      socket.close(1000);
      await once(socket, 'close');
      const [seen] = edge.handshakes.since(handshakes);
      assert.ok(seen);
      assert.equal(seen.url, `${LOCALHOST_SHAPE}&rvt-token=${EDGE_ACTOR_TOKEN}`);
      // Only the query, as the CLI sends it on upgrades.
      assert.equal(seen.headers['x-rivet-token'], undefined);
      assert.equal(seen.headers['sec-websocket-protocol'], PROTOCOLS.join(','));
    });

    it('an actor HTTP request without a token gets it in the query and as x-rivet-token', async () => {
      const record = edge.record();
      const response = await send(`${http}${IMPORT_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-rivet-conn-params': '{"wsToken":"w"}' },
        body: '{}',
      });
      assert.equal(response.status, 200);
      const seen = record.only();
      assert.deepEqual(tokenParams(seen.url), [EDGE_ACTOR_TOKEN]);
      assert.equal(seen.headers['x-rivet-token'], EDGE_ACTOR_TOKEN);
      assert.equal(seen.headers['x-rivet-conn-params'], '{"wsToken":"w"}');
    });

    it("a client's own token is never replaced or doubled", async () => {
      const record = edge.record();
      const handshakes = edge.handshakes.mark();
      const theirs = await send(`${http}${IMPORT_PATH}&rvt-token=pk_client`, { method: 'POST', body: '{}' });
      assert.equal(theirs.status, 400, 'the edge judges the client token, not ours');
      const headerOnly = await send(`${http}${IMPORT_PATH}`, {
        method: 'POST',
        headers: { 'x-rivet-token': 'pk_client' },
        body: '{}',
      });
      assert.equal(headerOnly.status, 400);
      const socket = new WebSocket(`${ws}${LOCALHOST_SHAPE}&rvt-token=pk_client`, PROTOCOLS);
      await once(socket, 'close');
      const [withQuery, withHeader] = record.requests;
      assert.deepEqual(tokenParams(withQuery!.url), ['pk_client']);
      assert.equal(withQuery!.headers['x-rivet-token'], undefined);
      assert.deepEqual(tokenParams(withHeader!.url), []);
      assert.equal(withHeader!.headers['x-rivet-token'], 'pk_client');
      assert.deepEqual(tokenParams(edge.handshakes.since(handshakes)[0]!.url), ['pk_client']);
    });

    it("Amp's public token of another deployment, which the CLI sends to a gateway it reaches by name, becomes the upstream's", async () => {
      // For any AMP_URL host but localhost the CLI sends Amp's production token (its staging
      // token for the staging host): through a gateway, a guess about a deployment it cannot see.
      const production = publicActorToken('https://ampcode.com')!;
      const staging = publicActorToken('https://staging.ampcodedev.org')!;
      const record = edge.record();
      const handshakes = edge.handshakes.mark();
      const namedShape = (token: string) =>
        `/actors/gateway/threadActor/websocket/?rvt-namespace=default&rvt-method=get&rvt-key=T-1&rvt-token=${token}&rvt-skip-ready-wait=true`;
      const socket = await openSocket(`${ws}${namedShape(production)}`, PROTOCOLS);
      const echoed = nextMessage(socket);
      socket.send('"ping"');
      assert.equal(await echoed, '"ping"');
      socket.close(1000);
      await once(socket, 'close');
      const response = await send(`${http}${IMPORT_PATH}&rvt-token=${staging}`, {
        method: 'POST',
        headers: { 'x-rivet-token': staging },
        body: '{}',
      });
      assert.equal(response.status, 200);
      const [seen] = edge.handshakes.since(handshakes);
      assert.equal(seen?.url, namedShape(EDGE_ACTOR_TOKEN));
      const request = record.only();
      assert.equal(request.url, `${IMPORT_PATH}&rvt-token=${EDGE_ACTOR_TOKEN}`);
      assert.equal(request.headers['x-rivet-token'], EDGE_ACTOR_TOKEN);
    });

    it('no request of another group gets the token', async () => {
      const record = edge.record();
      await send(`${http}/api/internal?getUserInfo`, { method: 'POST', body: '{}' });
      const seen = record.only();
      assert.equal(seen.url, '/api/internal?getUserInfo');
      assert.equal(seen.headers['x-rivet-token'], undefined);
    });

    it('events never show the token the gateway added, nor a client token in full', async () => {
      const mark = events.mark();
      await send(`${http}${IMPORT_PATH}&rvt-token=pk_clientTokenValue`, { method: 'POST', body: '{}' });
      await send(`${http}${IMPORT_PATH}`, { method: 'POST', body: '{}' });
      const seen = await events.until(
        mark,
        (items) => items.filter((e) => e.type === 'request-end').length === 2,
      );
      const text = JSON.stringify(seen);
      assert.doesNotMatch(text, new RegExp(EDGE_ACTOR_TOKEN));
      assert.doesNotMatch(text, /pk_clientTokenValue/);
    });
  });
}

describe('actor token off', () => {
  it('with actorToken: false a tokenless WebSocket reaches the edge as it came, and the edge closes it', async () => {
    const edge = await startAmpEdge();
    const router = ampRouter({ upstream: edge.url, actorToken: false });
    const server = createServer(router);
    attachUpgrade(server, router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const socket = new WebSocket(`ws://127.0.0.1:${port}${LOCALHOST_SHAPE}`, PROTOCOLS);
      const [code, reason] = (await once(socket, 'close')) as [number, Buffer];
      assert.equal(code, POLICY_VIOLATION);
      assert.equal(reason.toString(), GUARD_MISSING);
    } finally {
      await router.close();
      await closeServer(server);
      await edge.close();
    }
  });
});
