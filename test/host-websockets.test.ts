/**
 * The host's own WebSocket server beside the Amp tunnels on one HTTP server: whichever listener
 * answers a socket, no upstream connection is opened for it; `close()` ends every tunnel the
 * middleware opened, half-open ones included; an upgrade nobody owns still gets an answer.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { ampRouter, attachUpgrade, type AmpMiddleware } from '../src/index.js';
import { EXPRESS_VERSIONS, listen, type RunningApp } from './support/apps.js';
import { startRawUpstream } from './support/raw-upstream.js';
import { startWebSocketUpstream, type FakeWebSocketUpstream } from './support/upstream.js';
import { openSocket } from './support/gateway-harness.js';

const AMP_SOCKET = '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-method=get&rvt-key=T-1';
const USER_TOKEN = 'Bearer user-own-amp-token';

const open = (url: string, headers: Record<string, string> = {}): Promise<WebSocket> =>
  openSocket(url, ['rivet'], { headers });

async function echoOnce(socket: WebSocket, text: string): Promise<string> {
  socket.send(text);
  const [data] = (await once(socket, 'message')) as [Buffer];
  return data.toString();
}

function wsUrl(server: Server, path: string): string {
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
}

/** The host's notification socket: greets, then echoes. */
function serveNotifications(wss: WebSocketServer): void {
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`notification:${data}`)));
}

for (const [name, express] of EXPRESS_VERSIONS) {
  for (const order of ['host ws server first', 'attachUpgrade first'] as const) {
    describe(`the host's WebSocketServer({ server, path }) beside attachUpgrade, ${order} (${name})`, () => {
      let upstream: FakeWebSocketUpstream;
      let amp: AmpMiddleware;
      let app: RunningApp;
      let hostWss: WebSocketServer;
      /** The same router on a server of its own, where Amp's sockets work: the control case. */
      let control: RunningApp;

      before(async () => {
        upstream = await startWebSocketUpstream();
        amp = ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' });
        app = await listen(express().use(amp));
        const { server } = app;
        if (order === 'host ws server first') {
          hostWss = new WebSocketServer({ server, path: '/ws/notifications' });
          attachUpgrade(server, amp);
        } else {
          attachUpgrade(server, amp);
          hostWss = new WebSocketServer({ server, path: '/ws/notifications' });
        }
        serveNotifications(hostWss);
        control = await listen(express().use(amp));
        attachUpgrade(control.server, amp);
      });
      after(async () => {
        await amp.close();
        hostWss.close();
        await app.close();
        await control.close();
        await upstream.close();
      });

      it("the host's own socket works", async () => {
        const socket = await open(wsUrl(app.server, '/ws/notifications'));
        assert.equal(await echoOnce(socket, 'hi'), 'notification:hi');
        socket.close();
      });

      it('an Amp socket the host server answered 400 opens no upstream connection', async () => {
        const accepted = upstream.connections.length;
        const handshakes = upstream.handshakes.mark();
        await assert.rejects(open(wsUrl(app.server, AMP_SOCKET), { authorization: USER_TOKEN }), /HTTP 400/);
        // The same socket through the control server: its upstream connection is the only one.
        const socket = await open(wsUrl(control.server, AMP_SOCKET), { authorization: USER_TOKEN });
        const seen = await upstream.handshakes.until(handshakes, (items) => items.length >= 1);
        socket.close();
        assert.equal(seen.length, 1);
        assert.equal(
          upstream.connections.length - accepted,
          1,
          'the upgrade the host answered also reached the upstream',
        );
      });
    });
  }

  describe(`the documented noServer pattern: one upgrade listener for both (${name})`, () => {
    let upstream: FakeWebSocketUpstream;
    let amp: AmpMiddleware;
    let app: RunningApp;
    let notifications: WebSocketServer;

    before(async () => {
      upstream = await startWebSocketUpstream();
      amp = ampRouter({ upstream: upstream.url, upstreamKey: 'server-key' });
      notifications = new WebSocketServer({ noServer: true });
      serveNotifications(notifications);
      app = await listen(express().use(amp));
      app.server.on('upgrade', (req, socket, head) => {
        if (amp.upgrade(req, socket, head)) return;
        if (new URL(req.url ?? '/', 'http://host').pathname === '/ws/notifications') {
          notifications.handleUpgrade(req, socket, head, (ws) => notifications.emit('connection', ws, req));
          return;
        }
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      });
    });
    after(async () => {
      await amp.close();
      notifications.close();
      await app.close();
      await upstream.close();
    });

    it("both kinds of socket work, the user's token reaching Amp on Amp's only", async () => {
      const handshakes = upstream.handshakes.mark();
      const hostSocket = await open(wsUrl(app.server, '/ws/notifications'), { authorization: 'Bearer jwt' });
      const ampSocket = await open(wsUrl(app.server, AMP_SOCKET), { authorization: USER_TOKEN });
      assert.equal(await echoOnce(hostSocket, 'a'), 'notification:a');
      assert.equal(await echoOnce(ampSocket, 'b'), 'b');
      assert.deepEqual(
        upstream.handshakes.since(handshakes).map((h) => [h.url, h.headers.authorization]),
        [[AMP_SOCKET, USER_TOKEN]],
      );
      await assert.rejects(open(wsUrl(app.server, '/ws/elsewhere')), /HTTP 404/);
      const closes = upstream.closes.mark();
      const ampClosed = once(ampSocket, 'close');
      await amp.close();
      assert.equal(((await ampClosed) as [number])[0], 1001);
      await upstream.closes.until(closes, (codes) => codes.length === 1);
      // The host's socket is the host's to end.
      assert.equal(hostSocket.readyState, WebSocket.OPEN);
      hostSocket.close();
    });
  });

  for (const order of ['host listener first', 'attachUpgrade first'] as const) {
    describe(`an upgrade no listener owns, ${order} (${name})`, () => {
      let amp: AmpMiddleware;
      let app: RunningApp;

      before(async () => {
        amp = ampRouter({ upstream: 'http://127.0.0.1:9' });
        app = await listen(express().use(amp));
        const hostListener = (req: { url?: string }, socket: NodeJS.WritableStream): void => {
          if (req.url === '/host-ws') socket.end('HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\n\r\n');
        };
        if (order === 'host listener first') app.server.on('upgrade', hostListener);
        attachUpgrade(app.server, amp);
        if (order === 'attachUpgrade first') app.server.on('upgrade', hostListener);
      });
      after(() => app.close());

      it('is answered 404, and the host still answers its own', async () => {
        await assert.rejects(open(wsUrl(app.server, '/nobody-owns-this')), /HTTP 404/);
        await assert.rejects(open(wsUrl(app.server, '/host-ws')), /HTTP 418/);
      });
    });
  }
}

describe('tunnels the upstream has not answered yet', () => {
  it('close() ends them upstream too', async () => {
    const upstream = await startRawUpstream({ reply: () => undefined });
    const amp = ampRouter({ upstream: upstream.url });
    const app = await listen((req, res) => amp(req, res));
    attachUpgrade(app.server, amp);
    try {
      const client = new WebSocket(wsUrl(app.server, AMP_SOCKET), ['rivet']);
      client.on('error', () => undefined);
      await upstream.waitForRequests(1);
      const [connection] = upstream.connections;
      await amp.close();
      await upstream.waitForClose(connection!);
      assert.ok(connection!.closed);
    } finally {
      await app.close();
      await upstream.close();
    }
  });
});
