// A client that leaves while the gateway is still opening its upstream connection starts
// nothing upstream: one test per way of connecting (direct http, direct https, HTTP CONNECT
// proxy, SOCKS5 proxy), each holding that way's own wait open until the client has gone.
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ampRouter, type AmpProxyEvent, type AmpProxyOptions } from '../src/index.js';
import { EXPRESS_VERSIONS } from './support/apps.js';
import { startHttpProxy, startSocksProxy, type EgressProxy } from './support/egress-proxies.js';
import { startGatewayApp, within } from './support/gateway-harness.js';
import { WaitableList } from './support/events.js';
import { tlsFixtures, type TlsFixtures } from './support/tls-fixtures.js';
import { startUpstream, type FakeUpstream } from './support/upstream.js';

const SERVER_KEY = 'server-key-client-gone-7c1e';
const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';

/** A promise and the function that settles it. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Sends a provider call from a raw socket, which the test can cut at any moment. */
function rawProviderCall(url: string): Socket {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write(
    `POST ${PROVIDER_PATH} HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
  );
  return socket;
}

/**
 * A TCP relay in front of `target` that passes nothing until `released`: a TLS upstream whose
 * handshake has not begun. `connected` resolves with each connection made to it, `closed` with
 * the moment the gateway's side of it closes.
 */
async function startHeldRelay(target: number, released: Promise<void>) {
  const connections = new WaitableList<{ closed: Promise<void> }>();
  const server = createNetServer((socket) => {
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    connections.push({ closed });
    socket.pause();
    void released.then(() => {
      if (socket.destroyed) return;
      const upstream = connect(target, '127.0.0.1');
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
      socket.resume();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What a way of connecting needs to set itself up. */
interface Context {
  readonly tls: TlsFixtures;
  /** Settles when the test lets the held wait end. */
  readonly released: Promise<void>;
  readonly upstream: FakeUpstream;
}

/** One way of connecting: its options, the wait it holds open, and what shows it gave up. */
interface Way {
  readonly label: string;
  readonly tlsUpstream: boolean;
  setUp(context: Context): Promise<{
    options: AmpProxyOptions;
    /**
     * Resolves once the gateway is inside the held wait, with what shows it has given the wait
     * up, and whether it can do so while the wait still holds (the proxy not answering yet).
     */
    inside: Promise<{ abandoned: Promise<void> | undefined; atOnce?: boolean }>;
    close(): Promise<void>;
  }>;
}

/**
 * `atOnce`: the connection to the proxy can be closed mid-handshake (https-proxy-agent takes a
 * signal; the SOCKS client does not, so its tunnel is closed as soon as it opens).
 */
function throughProxy(
  label: string,
  start: (hold: Promise<void>) => Promise<EgressProxy>,
  atOnce: boolean,
): Way {
  return {
    label,
    tlsUpstream: true,
    async setUp({ released }) {
      const proxy = await start(released);
      const mark = proxy.tunnels.mark();
      return {
        options: { upstreamProxy: proxy.url },
        inside: proxy.tunnels
          .until(mark, (tunnels) => tunnels.length > 0)
          .then(([tunnel]) => ({ abandoned: tunnel!.clientClosed, atOnce })),
        close: () => proxy.close(),
      };
    },
  };
}

const WAYS: readonly Way[] = [
  {
    label: 'direct http, while the server key is looked up',
    tlsUpstream: false,
    async setUp({ released }) {
      const asked = gate();
      return {
        options: {
          upstreamKey: async () => {
            asked.open();
            await released;
            return SERVER_KEY;
          },
        },
        // No connection is opened at all: nothing to see close.
        inside: asked.opened.then(() => ({ abandoned: undefined })),
        close: async () => undefined,
      };
    },
  },
  {
    label: 'direct https, during the TLS handshake',
    tlsUpstream: true,
    async setUp({ released, upstream }) {
      const relay = await startHeldRelay(upstream.port, released);
      const mark = relay.connections.mark();
      return {
        options: { upstream: `https://localhost:${relay.port}` },
        inside: relay.connections
          .until(mark, (connections) => connections.length > 0)
          .then(([connection]) => ({ abandoned: connection!.closed })),
        close: relay.close,
      };
    },
  },
  throughProxy('an HTTP CONNECT proxy, before the tunnel opens', (hold) => startHttpProxy({ hold }), true),
  throughProxy('a SOCKS5 proxy, before the tunnel opens', (hold) => startSocksProxy({ hold }), false),
];

describe('a client that leaves before the upstream connection is open starts nothing upstream', () => {
  let tls: TlsFixtures;
  let plain: FakeUpstream;
  let secure: FakeUpstream;
  const arrivals = new WaitableList<string>();
  const record = (req: { url?: string }, res: { end(body: string): void }): void => {
    arrivals.push(req.url ?? '');
    res.end('{}');
  };

  before(async () => {
    tls = await tlsFixtures();
    plain = await startUpstream(record);
    secure = await startUpstream(record, { tls: tls.leaf });
  });
  after(async () => {
    await plain.close();
    await secure.close();
  });

  for (const [expressName, express] of EXPRESS_VERSIONS) {
    for (const way of WAYS) {
      it(`${way.label} (${expressName})`, async () => {
        const release = gate();
        const upstream = way.tlsUpstream ? secure : plain;
        const setUp = await way.setUp({ tls, released: release.opened, upstream });
        const events = new WaitableList<AmpProxyEvent>();
        const router = ampRouter({
          upstream: `${way.tlsUpstream ? 'https://localhost' : 'http://127.0.0.1'}:${upstream.port}`,
          upstreamKey: SERVER_KEY,
          upstreamCa: tls.ca.cert,
          onProxyEvent: events.push,
          ...setUp.options,
        });
        const gateway = await startGatewayApp(express, router);
        const received = upstream.record();
        const arrivalMark = arrivals.mark();
        try {
          const eventMark = events.mark();
          const client = rawProviderCall(gateway.url);
          const { abandoned, atOnce } = await within(setUp.inside, 5000, 'the gateway to wait');
          client.destroy();
          const [end] = (
            await events.until(eventMark, (items) => items.some((event) => event.type === 'request-end'))
          ).filter((event) => event.type === 'request-end');
          assert.equal(end?.type === 'request-end' && end.outcome, 'client-aborted');
          // The proxy has not answered yet: the gateway hangs up on it rather than wait.
          if (atOnce) await within(abandoned!, 5000, 'the connection to the proxy to close');
          release.open();
          if (abandoned) {
            // Whichever comes first: the upstream gets the call, or the gateway gives its connection up.
            const first = await within(
              Promise.race([
                arrivals.until(arrivalMark, (items) => items.length > 0).then(() => 'sent'),
                abandoned.then(() => 'abandoned'),
              ]),
              5000,
              'the call to be sent or abandoned',
            );
            assert.equal(first, 'abandoned');
          } else {
            // A later call from another client arrives after anything the first would have sent.
            const barrier = rawProviderCall(gateway.url);
            await arrivals.until(arrivalMark, (items) => items.length > 0);
            barrier.destroy();
          }
          const sent = received.requests.filter((request) => request.url === PROVIDER_PATH);
          assert.equal(sent.length, abandoned ? 0 : 1, 'the call of the client that left went upstream');
        } finally {
          await gateway.close();
          await setUp.close();
        }
      });
    }
  }
});
