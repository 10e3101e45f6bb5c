// How a WebSocket ended, told apart: the gateway refused it, the upstream could not be reached
// (and why: TLS, egress proxy, refused connection, timeout), or the upstream accepted it and then
// closed it with an error code (Amp refused). Events, log lines and metrics say which, and no
// `websocket-open` is ever emitted for a tunnel that never opened.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { WebSocket } from 'ws';
import {
  ampRouter,
  attachUpgrade,
  createAmpMetrics,
  type AmpProxyEvent,
  type AmpProxyOptions,
  type AmpWebSocketCloseEvent,
} from '../src/index.js';
import { CloseFrameReader, type CloseFrame } from '../src/proxy/tunnels.js';
import { GUARD_MISSING, startAmpEdge, type FakeAmpEdge } from './support/amp-edge.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { startHttpProxy } from './support/egress-proxies.js';
import { WaitableList } from './support/events.js';
import { startRawUpstream } from './support/raw-upstream.js';
import { tlsFixtures } from './support/tls-fixtures.js';
import { closedPort, closeServer, POLICY_VIOLATION, startUpstream } from './support/upstream.js';

const TOKENLESS_ACTOR_PATH =
  '/actors/gateway/threadActor/websocket/?rvt-namespace=default&rvt-method=get&rvt-key=T-1';

interface Gateway {
  port: number;
  events: WaitableList<AmpProxyEvent>;
  warnings: WaitableList<object>;
  metrics(): Promise<string>;
  close(): Promise<void>;
}

/** A router on a plain server, its events, `warn` log lines and Prometheus metrics recorded. */
async function startGateway(
  options: AmpProxyOptions,
  app?: (router: ReturnType<typeof ampRouter>) => Parameters<typeof createServer>[1],
): Promise<Gateway> {
  const events = new WaitableList<AmpProxyEvent>();
  const warnings = new WaitableList<object>();
  const metrics = createAmpMetrics(promClient);
  const ignore = (): void => undefined;
  const router = ampRouter({
    ...options,
    onProxyEvent: (event) => {
      events.push(event);
      metrics.onProxyEvent(event);
    },
    logger: { info: ignore, error: ignore, warn: (line: object) => warnings.push(line) },
  });
  const server: Server = createServer(app ? app(router) : router);
  attachUpgrade(server, router);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    events,
    warnings,
    metrics: () => metrics.registry.metrics(),
    async close() {
      await router.close();
      await closeServer(server);
    },
  };
}

/** Opens a WebSocket through the gateway and resolves once it is over, however it ended. */
async function attempt(gateway: Gateway, path = TOKENLESS_ACTOR_PATH): Promise<void> {
  const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, ['rivet']);
  // A refused handshake also errors: only its close matters here.
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('close', resolve));
}

async function closeEvent(gateway: Gateway, mark: number): Promise<AmpWebSocketCloseEvent> {
  const events = await gateway.events.until(mark, (items) => items.some((e) => e.type === 'websocket-close'));
  assert.ok(
    !events.some((event) => event.type === 'websocket-open'),
    `no websocket-open for a tunnel that never opened: ${JSON.stringify(events)}`,
  );
  return events.find((event) => event.type === 'websocket-close') as AmpWebSocketCloseEvent;
}

describe('a WebSocket handshake that fails on the way to the upstream', () => {
  const handshakeFailure = async (
    options: AmpProxyOptions,
    outcome: 'upstream-error' | 'timeout',
    cause: string,
  ): Promise<void> => {
    const gateway = await startGateway(options);
    try {
      const mark = gateway.events.mark();
      await attempt(gateway);
      const end = await closeEvent(gateway, mark);
      assert.equal(end.opened, false);
      assert.equal(end.outcome, outcome);
      assert.equal(end.cause, cause);
      assert.equal(end.error, outcome === 'timeout' ? 'amp_upstream_timeout' : 'amp_upstream_proxy_error');
      assert.equal(end.status, outcome === 'timeout' ? 504 : 502);
      const warned = await gateway.warnings.until(0, (lines) => lines.length > 0);
      assert.equal((warned[0] as { cause?: string }).cause, cause);
      const text = await gateway.metrics();
      assert.match(
        text,
        new RegExp(`amp_proxy_upstream_errors_total\\{group="actors",outcome="${outcome}"\\} 1`),
      );
      assert.match(text, new RegExp(`amp_proxy_websockets_total\\{group="actors",outcome="${outcome}"\\} 1`));
      assert.doesNotMatch(text, /amp_proxy_websockets_open\{[^}]*\} [1-9]/);
    } finally {
      await gateway.close();
    }
  };

  it('connection refused: outcome upstream-error, cause ECONNREFUSED, counted', async () => {
    await handshakeFailure(
      { upstream: `http://127.0.0.1:${await closedPort()}` },
      'upstream-error',
      'ECONNREFUSED',
    );
  });

  it('an upstream certificate nobody vouches for: cause UNABLE_TO_VERIFY_LEAF_SIGNATURE', async () => {
    const tls = await tlsFixtures();
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    try {
      await handshakeFailure(
        { upstream: `https://localhost:${upstream.port}` },
        'upstream-error',
        'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      );
    } finally {
      await upstream.close();
    }
  });

  it('an egress proxy that refuses our credentials: cause PROXY_407, the password shown nowhere', async () => {
    const proxy = await startHttpProxy({
      credentials: { username: 'proxy-user', password: 'proxy-pass-9f3e' },
    });
    const edge = await startAmpEdge();
    try {
      const proxyUrl = new URL(proxy.url);
      proxyUrl.username = 'proxy-user';
      proxyUrl.password = 'wrong-pass-c0ffee';
      const gateway = await startGateway({ upstream: edge.url, upstreamProxy: proxyUrl.href });
      try {
        const mark = gateway.events.mark();
        await attempt(gateway);
        const end = await closeEvent(gateway, mark);
        assert.equal(end.outcome, 'upstream-error');
        assert.equal(end.cause, 'PROXY_407');
        assert.equal(edge.handshakes.items.length, 0);
        const everything = JSON.stringify([gateway.events.items, gateway.warnings.items]);
        assert.ok(!everything.includes('wrong-pass-c0ffee') && !everything.includes('proxy-pass-9f3e'));
        assert.match(
          await gateway.metrics(),
          /amp_proxy_upstream_errors_total\{group="actors",outcome="upstream-error"\} 1/,
        );
      } finally {
        await gateway.close();
      }
    } finally {
      await edge.close();
      await proxy.close();
    }
  });

  it('an upstream that never answers the upgrade: outcome timeout, cause timeout', async () => {
    const silent = await startRawUpstream({ reply: () => undefined });
    try {
      await handshakeFailure({ upstream: silent.url, timeoutMs: 300 }, 'timeout', 'timeout');
    } finally {
      await silent.close();
    }
  });
});

describe('the upstream accepts a WebSocket, then closes it with an error code (Amp refused)', () => {
  let edge: FakeAmpEdge;
  before(async () => {
    edge = await startAmpEdge();
  });
  after(() => edge.close());

  it('the guard’s 1008 and reason are in the event, the warn line and the metrics, apart from gateway refusals', async () => {
    const gateway = await startGateway({ upstream: edge.url, actorToken: false });
    try {
      const mark = gateway.events.mark();
      await attempt(gateway);
      const events = await gateway.events.until(mark, (items) =>
        items.some((e) => e.type === 'websocket-close'),
      );
      assert.deepEqual(
        events.map((event) => event.type),
        ['websocket-open', 'websocket-close'],
      );
      const end = events[1] as AmpWebSocketCloseEvent;
      assert.equal(end.opened, true);
      assert.equal(end.status, 101);
      assert.equal(end.outcome, 'upstream-refused');
      assert.equal(end.error, undefined);
      assert.equal(end.upstreamCloseCode, POLICY_VIOLATION);
      assert.equal(end.upstreamCloseReason, GUARD_MISSING);
      const warned = await gateway.warnings.until(0, (lines) => lines.length > 0);
      assert.equal((warned[0] as { upstreamCloseReason?: string }).upstreamCloseReason, GUARD_MISSING);
      const text = await gateway.metrics();
      assert.match(text, /amp_proxy_websocket_upstream_closes_total\{group="actors",code="1008"\} 1/);
      assert.match(text, /amp_proxy_websockets_total\{group="actors",outcome="upstream-refused"\} 1/);
      assert.match(text, /amp_proxy_websockets_open\{group="actors"\} 0/);
      assert.doesNotMatch(text, /upstream_errors_total\{/);
    } finally {
      await gateway.close();
    }
  });

  it('an upstream that answers the upgrade without 101 refused it too: its status, no websocket-open', async () => {
    const refusing = await startRawUpstream({
      reply: () => ({ status: 403, body: '{"error":"billing"}', close: true }),
    });
    const gateway = await startGateway({ upstream: refusing.url });
    try {
      const mark = gateway.events.mark();
      await attempt(gateway);
      const end = await closeEvent(gateway, mark);
      assert.equal(end.outcome, 'upstream-refused');
      assert.equal(end.status, 403);
      assert.equal(end.error, undefined);
      assert.equal(end.upstreamCloseCode, undefined);
      assert.match(
        await gateway.metrics(),
        /amp_proxy_websockets_total\{group="actors",outcome="upstream-refused"\} 1/,
      );
    } finally {
      await gateway.close();
      await refusing.close();
    }
  });

  for (const [name, express] of EXPRESS_VERSIONS) {
    it(`${name}: a gateway refusal is outcome refused with its amp_ code, and never a websocket-open`, async () => {
      const gateway = await startGateway(
        { upstream: edge.url, policies: { actors: 'dual-token' } },
        (router) => {
          const app = express();
          app.use(router);
          return app;
        },
      );
      try {
        const mark = gateway.events.mark();
        const handshakes = edge.handshakes.mark();
        await attempt(gateway);
        const end = await closeEvent(gateway, mark);
        assert.equal(end.outcome, 'refused');
        assert.equal(end.error, 'amp_token_required');
        assert.equal(end.status, 401);
        assert.equal(end.opened, false);
        assert.equal(edge.handshakes.since(handshakes).length, 0);
        const text = await gateway.metrics();
        assert.match(text, /amp_proxy_websockets_total\{group="actors",outcome="refused"\} 1/);
        assert.doesNotMatch(text, /upstream_closes_total\{/);
      } finally {
        await gateway.close();
      }
    });
  }
});

describe('reading the upstream’s close frame', () => {
  it('a close frame written byte by byte through a real tunnel is read, the client gets every byte', async () => {
    // After 101: a text frame with a 126-length header, a binary frame, then close 4403 + a reason that holds a token.
    const token = 'sgamp_user_0123456789abcdefghijklmnop';
    const reason = Buffer.from(`billing: no credits for ${token}`);
    const text = Buffer.alloc(300, 0x61);
    const frames = Buffer.concat([
      Buffer.from([0x81, 126, 0x01, 0x2c]),
      text,
      Buffer.from([0x82, 0x03, 1, 2, 3]),
      Buffer.from([0x88, reason.length + 2, 0x11, 0x33]),
      reason,
    ]);
    const upstream = createNetServer((socket: Socket) => {
      socket.setNoDelay(true);
      socket.once('data', async (request: Buffer) => {
        const keyLine = /sec-websocket-key: *(\S+)/i.exec(request.toString())![1]!;
        const { createHash } = await import('node:crypto');
        const accept = createHash('sha1')
          .update(`${keyLine}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
          .digest('base64');
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        for (const byte of frames) {
          await new Promise<void>((resolve) => socket.write(Buffer.from([byte]), () => resolve()));
        }
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const gateway = await startGateway({
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      actorToken: false,
    });
    try {
      const mark = gateway.events.mark();
      const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}${TOKENLESS_ACTOR_PATH}`);
      const received: Buffer[] = [];
      socket.on('message', (data: Buffer) => received.push(data));
      const [code, closeReason] = (await once(socket, 'close')) as [number, Buffer];
      assert.equal(code, 4403);
      assert.equal(closeReason.toString(), reason.toString());
      assert.deepEqual(received, [text, Buffer.from([1, 2, 3])]);
      const end = (
        await gateway.events.until(mark, (items) => items.some((e) => e.type === 'websocket-close'))
      ).find((event) => event.type === 'websocket-close') as AmpWebSocketCloseEvent;
      assert.equal(end.upstreamCloseCode, 4403);
      assert.equal(end.outcome, 'upstream-refused');
      assert.ok(end.upstreamCloseReason?.startsWith('billing: no credits for sgam'), end.upstreamCloseReason);
      assert.ok(end.upstreamCloseReason !== undefined);
      assert.ok(!end.upstreamCloseReason.includes(token), end.upstreamCloseReason);
    } finally {
      await gateway.close();
      upstream.close();
    }
  });

  const read = (chunks: Buffer[]): CloseFrame[] => {
    const seen: CloseFrame[] = [];
    const reader = new CloseFrameReader((frame) => seen.push(frame));
    for (const chunk of chunks) reader.feed(chunk);
    return seen;
  };
  const bytes = (stream: Buffer): Buffer[] => [...stream].map((byte) => Buffer.from([byte]));

  it('frames split at every byte, masked, with 16- and 64-bit lengths and compressed data frames', () => {
    const mask = [0x12, 0x34, 0x56, 0x78];
    const closePayload = Buffer.from([0x03, 0xf0, ...Buffer.from('bye')]);
    const maskedClose = closePayload.map((byte, index) => byte ^ mask[index % 4]!);
    const big = Buffer.alloc(70_000, 0x88);
    const stream = Buffer.concat([
      // RSV1 (permessage-deflate) text frame whose payload holds bytes that look like a close header.
      Buffer.from([0xc1, 0x04, 0x88, 0x02, 0x03, 0xe8]),
      Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]),
      big,
      Buffer.from([0x89, 0x80, ...mask]), // a masked, empty ping
      Buffer.from([0x88, 0x80 | closePayload.length, ...mask]),
      maskedClose,
    ]);
    for (const chunks of [
      [stream],
      bytes(stream),
      [stream.subarray(0, 7), stream.subarray(7, 70_013), stream.subarray(70_013)],
    ]) {
      const seen = read(chunks);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.code, 1008);
      assert.equal(seen[0]!.reason.toString(), 'bye');
    }
  });

  it('a close without a status, and a "close" too long to be a control frame (not read)', () => {
    assert.deepEqual(
      read([Buffer.from([0x88, 0x00])]).map((frame) => frame.code),
      [undefined],
    );
    assert.deepEqual(read([Buffer.from([0x88, 126, 0x00, 0x80]), Buffer.alloc(128)]), []);
  });
});
