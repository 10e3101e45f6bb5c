import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { ampRouter, attachUpgrade, type AmpMiddleware } from '../src/index.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { sendRaw } from './support/client.js';
import { WaitableList } from './support/events.js';
import { closeServer } from './support/upstream.js';
import { openSocket } from './support/gateway-harness.js';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

interface Handshake {
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * A WebSocket upstream that speaks Amp's rivet subprotocol and echoes every frame. It records the
 * handshakes it accepted and the close codes it received; a test reads its own part of each list
 * from a `mark()` on, and waits on the list for a close code to arrive.
 */
async function startWsUpstream() {
  const handshakes = new WaitableList<Handshake>();
  const closes = new WaitableList<number>();
  const server = createServer((_req, res) => res.end('http'));
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => (protocols.has('rivet') ? 'rivet' : false),
  });
  wss.on('connection', (socket, req) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    socket.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'close-4001') return socket.close(4001, 'upstream says bye');
      socket.send(data, { binary: isBinary });
    });
    socket.on('close', closes.push);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    handshakes,
    closes,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await closeServer(server);
    },
  };
}

const CONN_PARAMS = encodeURIComponent(JSON.stringify({ wsToken: 'ws-token-123' }));
const PROTOCOLS = ['rivet', 'rivet_encoding.bare', `rivet_conn_params.${CONN_PARAMS}`];
const GATEWAY_PATH =
  '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-method=get&rvt-key=T-1&rvt-token=pk_abc';

const open = (url: string, headers: Record<string, string> = {}, protocols = PROTOCOLS): Promise<WebSocket> =>
  openSocket(url, protocols, { headers, perMessageDeflate: true });

for (const [name, express] of EXPRESS_VERSIONS) {
  describe(`WebSocket upgrades (${name})`, () => {
    let upstream: Awaited<ReturnType<typeof startWsUpstream>>;
    let server: Server;
    let router: AmpMiddleware;
    let base: string;
    let otherUpgrades: string[];

    before(async () => {
      upstream = await startWsUpstream();
      router = ampRouter({
        upstream: upstream.url,
        upstreamKey: 'server-key',
        clients: [{ key: 'gw-alice', upstreamKey: 'alice-amp' }],
      });
      const app = express();
      app.use('/amp', router);
      server = createServer(app);
      // The host's own WebSocket endpoint, on the same server.
      otherUpgrades = [];
      server.on('upgrade', (req, socket) => {
        if (req.url?.startsWith('/host-ws')) {
          otherUpgrades.push(req.url);
          socket.end('HTTP/1.1 418 Teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        }
      });
      attachUpgrade(server, router, { prefix: '/amp' });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/amp`;
    });
    after(async () => {
      await router.close();
      await closeServer(server);
      await upstream.close();
    });

    it('the Amp gateway socket is tunnelled with subprotocol, rivet headers and query intact', async () => {
      const handshakes = upstream.handshakes.mark();
      const closes = upstream.closes.mark();
      const socket = await open(`${base}${GATEWAY_PATH}`, {
        'x-rivet-token': 'pk_abc',
        'x-rivet-conn-params': '{"wsToken":"ws-token-123"}',
      });
      assert.equal(socket.protocol, 'rivet');
      const [seen] = upstream.handshakes.since(handshakes);
      assert.ok(seen);
      assert.equal(seen.url, GATEWAY_PATH);
      assert.equal(seen.headers['sec-websocket-protocol'], PROTOCOLS.join(','));
      assert.equal(seen.headers['x-rivet-token'], 'pk_abc');
      assert.equal(seen.headers['x-rivet-conn-params'], '{"wsToken":"ws-token-123"}');
      assert.equal(seen.headers.authorization, undefined);
      assert.match(String(seen.headers['sec-websocket-extensions']), /permessage-deflate/);

      socket.send('"ping"');
      const [text, textIsBinary] = (await once(socket, 'message')) as [Buffer, boolean];
      assert.equal(text.toString(), '"ping"');
      assert.equal(textIsBinary, false);

      const binary = Buffer.from([0, 1, 2, 250, 255]);
      socket.send(binary);
      const [echoed, echoedIsBinary] = (await once(socket, 'message')) as [Buffer, boolean];
      assert.deepEqual(Buffer.from(echoed), binary);
      assert.equal(echoedIsBinary, true);

      socket.send('close-4001');
      const [code, reason] = (await once(socket, 'close')) as [number, Buffer];
      assert.equal(code, 4001);
      assert.equal(reason.toString(), 'upstream says bye');
      // The upstream's side of that close has ended too, so no later test sees it.
      assert.deepEqual(await upstream.closes.until(closes, (codes) => codes.length > 0), [4001]);
    });

    it("a client's close code reaches the upstream", async () => {
      const closes = upstream.closes.mark();
      const socket = await open(`${base}${GATEWAY_PATH}`);
      socket.close(4321, 'client done');
      await once(socket, 'close');
      assert.deepEqual(await upstream.closes.until(closes, (codes) => codes.length > 0), [4321]);
    });

    it("the group's policy applies to the upgrade request", async () => {
      const handshakes = upstream.handshakes.mark();
      const management = await open(`${base}/api/some-ws`, { authorization: 'Bearer gw-alice' });
      management.close();
      const provider = await open(`${base}/api/provider/openai/v1/realtime`, {
        authorization: 'Bearer gw-alice',
      });
      provider.close();
      assert.deepEqual(
        upstream.handshakes.since(handshakes).map((h) => [h.url, h.headers.authorization]),
        [
          ['/api/some-ws', 'Bearer alice-amp'],
          ['/api/provider/openai/v1/realtime', 'Bearer alice-amp'],
        ],
      );
    });

    it('a refused upgrade gets a JSON error and never reaches the upstream', async () => {
      const handshakes = upstream.handshakes.mark();
      await assert.rejects(open(`${base}/api/provider/x`, { authorization: 'Bearer wrong' }), /HTTP 401/);
      // A raw request line: WebSocket clients resolve `%2e%2e` themselves before sending.
      const port = new URL(base).port;
      const response = await sendRaw(
        Number(port),
        'GET /amp/actors/gateway/%2e%2e/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      assert.match(response, /^HTTP\/1\.1 400 Bad Request/);
      assert.match(response, /"error":"amp_bad_path"/);
      assert.deepEqual(upstream.handshakes.since(handshakes), []);
    });

    it('an overlong upgrade URL gets 414 amp_uri_too_long and never reaches the upstream', async () => {
      const handshakes = upstream.handshakes.mark();
      const response = await sendRaw(
        Number(new URL(base).port),
        `GET /amp/actors/gateway/x?q=${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n` +
          'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      assert.match(response, /^HTTP\/1\.1 414 /);
      assert.match(response, /"error":"amp_uri_too_long"/);
      assert.deepEqual(upstream.handshakes.since(handshakes), []);
    });

    it("upgrades on paths the router does not own are left to the host's handlers", async () => {
      const root = base.replace(/\/amp$/, '');
      await assert.rejects(open(`${root}/host-ws/chat`), /HTTP 418/);
      assert.deepEqual(otherUpgrades, ['/host-ws/chat']);
    });
  });
}

describe('attachUpgrade with no other upgrade handler', () => {
  it("tunnels Amp's gateway socket for a router at the root of a plain node:http server", async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'rivet' });
    await once(wss, 'listening');
    wss.on('connection', (socket) => socket.send('hello'));
    const router = ampRouter({ upstream: `http://127.0.0.1:${(wss.address() as AddressInfo).port}` });
    const server = createServer((req, res) => router(req, res));
    attachUpgrade(server, router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const client = new WebSocket(`ws://127.0.0.1:${port}/actors/gateway/threadActor/websocket/`, ['rivet']);
      const message = await new Promise<string>((resolve, reject) => {
        client.once('message', (data: Buffer) => resolve(data.toString()));
        client.once('error', reject);
      });
      assert.equal(message, 'hello');
      client.close();
    } finally {
      await router.close();
      await closeServer(server);
      for (const client of wss.clients) client.terminate();
      wss.close();
    }
  });

  it('answers 404 for paths it does not own instead of leaving the socket open', async () => {
    const router = ampRouter({ upstream: 'http://127.0.0.1:9' });
    const server = createServer((req, res) => router(req, res));
    attachUpgrade(server, router);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      await assert.rejects(open(`ws://127.0.0.1:${port}/not-amp`), /HTTP 404/);
      // Browser pages never upgrade.
      await assert.rejects(open(`ws://127.0.0.1:${port}/threads/T-1`), /HTTP 404/);
    } finally {
      await closeServer(server);
    }
  });
});

describe('what an open tunnel keeps', () => {
  it("neither the client's handshake request nor its timer: both go once the upstream answered 101", async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'rivet' });
    await once(wss, 'listening');
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(data)));
    const router = ampRouter({
      upstream: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      // Long enough that a handshake timer still armed would be seen among the active timers.
      timeoutMs: 3_600_000,
    });
    const server = createServer((req, res) => router(req, res));
    const handshakes: WeakRef<object>[] = [];
    server.on('upgrade', (req, socket, head) => {
      handshakes.push(new WeakRef(req));
      router.upgrade(req, socket, head);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const timersBefore = timers();
    const clients: WebSocket[] = [];
    try {
      const port = (server.address() as AddressInfo).port;
      for (let i = 0; i < 20; i++) {
        const client = new WebSocket(`ws://127.0.0.1:${port}/actors/gateway/threadActor/websocket/`, [
          'rivet',
        ]);
        clients.push(client);
        await once(client, 'open');
      }
      // The tunnels still carry frames both ways.
      const echoed = once(clients[0]!, 'message');
      clients[0]!.send('still open');
      assert.equal(String((await echoed)[0]), 'still open');
      assert.ok(timers() < timersBefore + clients.length, 'a handshake timer outlived its handshake');
      await new Promise((resolve) => setImmediate(resolve));
      collectGarbage();
      const kept = handshakes.filter((handshake) => handshake.deref() !== undefined).length;
      assert.equal(kept, 0, `${kept} of ${handshakes.length} open tunnels keep their handshake request`);
    } finally {
      for (const client of clients) client.terminate();
      await router.close();
      await closeServer(server);
      for (const client of wss.clients) client.terminate();
      wss.close();
    }
  });
});
