// The gateway reaches its upstream through an egress proxy (`upstreamProxy`): HTTP CONNECT (with
// and without credentials, over TLS too), SOCKS5 and SOCKS5h. Every group goes through it, the
// upstream is reached only through it, nothing secret crosses it in the clear, the proxy's
// refusals say why, and its credentials never show.
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ampRouter,
  AmpProxyConfigError,
  attachUpgrade,
  type AmpMiddleware,
  type AmpProxyOptions,
} from '../src/index.js';
import { EXPRESS_VERSIONS, listen } from './support/apps.js';
import { send } from './support/client.js';
import {
  SOCKS_REPLY,
  startHttpProxy,
  startSocksProxy,
  withCredentials,
  type ConnectTunnel,
  type EgressProxy,
  type RelayedTunnel,
  type SocksTunnel,
} from './support/egress-proxies.js';
import {
  observe,
  openEventStream,
  openSocket,
  runCli,
  startCli,
  startGatewayApp,
  upstreamAnswers,
  within,
} from './support/gateway-harness.js';
import { tlsFixtures, type TlsFixtures } from './support/tls-fixtures.js';
import {
  closedPort,
  startUpstream,
  startWebSocketUpstream,
  type FakeUpstream,
  type FakeWebSocketUpstream,
} from './support/upstream.js';

const SERVER_KEY = 'server-key-egress-3b8f1d';
const CLIENT_KEY = 'client-key-egress-a61c2e';
const USER_TOKEN = 'user-token-egress-52d9f0';
const WS_TOKEN = 'ws-token-egress-e07a44';
const PROXY_USER = 'proxy-user';
const PROXY_PASSWORD = 'proxy-pass-s3cret-91';
const PROVIDER_PATH = '/api/provider/anthropic/v1/messages';
const PROTOCOLS = [
  'rivet',
  'rivet_encoding.bare',
  `rivet_conn_params.${encodeURIComponent(JSON.stringify({ wsToken: WS_TOKEN }))}`,
];
const WS_PATH = '/actors/gateway/threadActor/websocket/?rvt-namespace=ns&rvt-method=get&rvt-key=T-1';
const PROXY_VARIABLES = [
  'http_proxy',
  'HTTP_PROXY',
  'https_proxy',
  'HTTPS_PROXY',
  'all_proxy',
  'ALL_PROXY',
  'no_proxy',
  'NO_PROXY',
] as const;

/** The tunnel a request came through: the one whose outbound connection is the request's peer. */
function tunnelOf<T extends RelayedTunnel>(proxy: EgressProxy<T>, remotePort: number): T {
  const tunnel = proxy.tunnels.items.find((t) => t.outboundPort === remotePort);
  assert.ok(
    tunnel,
    `the upstream's peer (port ${remotePort}) is not one of the proxy's connections (${proxy.outboundPorts().join(', ') || 'none'})`,
  );
  return tunnel;
}

/**
 * One provider call to `upstream` (reached as `upstreamUrl`) through a socks5 proxy of its own:
 * the tunnel it took and the request that arrived, for a test to check how the target was named.
 */
async function throughSocks5(tls: TlsFixtures, upstream: FakeUpstream, upstreamUrl: string) {
  const proxy = await startSocksProxy();
  const router = ampRouter({
    upstream: upstreamUrl,
    upstreamKey: SERVER_KEY,
    upstreamCa: tls.ca.cert,
    upstreamProxy: proxy.url,
  });
  const app = await listen((req, res) => router(req, res));
  try {
    const received = upstream.record();
    assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
    const seen = received.only();
    return { tunnel: tunnelOf(proxy, seen.remotePort), seen };
  } finally {
    await router.close();
    await app.close();
    await proxy.close();
  }
}

function assertNoSecretIn(bytes: Buffer, secrets: readonly string[], where: string): void {
  for (const secret of secrets) assert.ok(!bytes.includes(secret), `${where} carries ${secret} in the clear`);
}

interface ProxyKind {
  label: string;
  start(tls: TlsFixtures): Promise<EgressProxy>;
  /** The `upstreamProxy` option for the running proxy. */
  option(proxy: EgressProxy): string;
  /** The upstream's host name as configured (socks5 resolves it locally, so it gets an IP). */
  host: 'localhost' | '127.0.0.1';
  /** What the proxy must have been asked for a tunnel to the upstream. */
  checkTunnel(tunnel: RelayedTunnel, upstreamPort: number): void;
}

const BASIC = `Basic ${Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64')}`;

const KINDS: ProxyKind[] = [
  {
    label: 'http CONNECT',
    start: () => startHttpProxy(),
    option: (proxy) => proxy.url,
    host: 'localhost',
    checkTunnel(tunnel, port) {
      assert.equal(tunnel.target, `localhost:${port}`);
      assert.equal((tunnel as ConnectTunnel).proxyAuthorization, undefined);
    },
  },
  {
    label: 'http CONNECT with credentials',
    start: () => startHttpProxy({ credentials: { username: PROXY_USER, password: PROXY_PASSWORD } }),
    option: (proxy) => withCredentials(proxy.url, PROXY_USER, PROXY_PASSWORD),
    host: 'localhost',
    checkTunnel(tunnel, port) {
      assert.equal(tunnel.target, `localhost:${port}`);
      assert.equal((tunnel as ConnectTunnel).proxyAuthorization, BASIC);
    },
  },
  {
    label: 'https CONNECT (the proxy itself trusted through upstreamCa)',
    start: (tls) => startHttpProxy({ tls: tls.leaf }),
    option: (proxy) => proxy.url,
    host: 'localhost',
    checkTunnel(tunnel, port) {
      assert.equal(tunnel.target, `localhost:${port}`);
    },
  },
  {
    label: 'socks5',
    start: () => startSocksProxy(),
    option: (proxy) => proxy.url,
    host: '127.0.0.1',
    checkTunnel(tunnel, port) {
      assert.equal((tunnel as SocksTunnel).addressType, 'ipv4');
      assert.equal(tunnel.target, `127.0.0.1:${port}`);
    },
  },
  {
    label: 'socks5h',
    start: () => startSocksProxy(),
    option: (proxy) => proxy.url.replace(/^socks5:/, 'socks5h:'),
    host: 'localhost',
    checkTunnel(tunnel, port) {
      // The proxy resolves the name: it arrives as a domain, not an address.
      assert.equal((tunnel as SocksTunnel).addressType, 'domain');
      assert.equal(tunnel.target, `localhost:${port}`);
    },
  },
  {
    label: 'socks5 with credentials',
    start: () => startSocksProxy({ credentials: { username: PROXY_USER, password: PROXY_PASSWORD } }),
    option: (proxy) => withCredentials(proxy.url, PROXY_USER, PROXY_PASSWORD),
    host: '127.0.0.1',
    checkTunnel(tunnel, port) {
      assert.equal(tunnel.target, `127.0.0.1:${port}`);
      assert.equal((tunnel as SocksTunnel).username, PROXY_USER);
      assert.equal((tunnel as SocksTunnel).password, PROXY_PASSWORD);
    },
  },
];

for (const [expressName, express] of EXPRESS_VERSIONS) {
  for (const kind of KINDS) {
    describe(`through a ${kind.label} proxy to an HTTPS upstream (${expressName})`, () => {
      let proxy: EgressProxy;
      let upstream: FakeWebSocketUpstream;
      let gateway: Awaited<ReturnType<typeof startGatewayApp>>;
      const { handler, held } = upstreamAnswers();
      const seen = observe();

      before(async () => {
        const tls = await tlsFixtures();
        proxy = await kind.start(tls);
        upstream = await startWebSocketUpstream(handler, { tls: tls.leaf });
        const router = ampRouter({
          upstream: `https://${kind.host}:${upstream.port}`,
          upstreamKey: SERVER_KEY,
          upstreamCa: tls.ca.cert,
          upstreamProxy: kind.option(proxy),
          clients: [{ key: CLIENT_KEY, name: 'alice' }],
          ...seen.options,
        });
        gateway = await startGatewayApp(express, router);
      });
      after(async () => {
        await gateway.close();
        await upstream.close();
        await proxy.close();
      });

      it('provider and management calls go through the proxy, and no key or token crosses it in the clear', async () => {
        const received = upstream.record();
        const provider = await send(`${gateway.url}${PROVIDER_PATH}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
          body: '{"model":"claude"}',
        });
        assert.equal(provider.status, 200);
        const management = await send(`${gateway.url}/api/threads/T-1`, {
          headers: { authorization: `Bearer ${USER_TOKEN}` },
        });
        assert.equal(management.status, 200);

        const [providerCall, managementCall] = received.requests;
        assert.ok(providerCall && managementCall && received.requests.length === 2);
        assert.equal(providerCall.headers.authorization, `Bearer ${SERVER_KEY}`);
        assert.equal(managementCall.headers.authorization, `Bearer ${USER_TOKEN}`);
        assert.equal(providerCall.headers.host, `${kind.host}:${upstream.port}`);
        for (const call of [providerCall, managementCall]) {
          assert.equal(call.headers['proxy-authorization'], undefined);
          kind.checkTunnel(tunnelOf(proxy, call.remotePort), upstream.port);
        }
        const relayed = proxy.relayed();
        assert.ok(relayed.length > 0, 'the proxy relayed the TLS traffic');
        if (kind.host === 'localhost') assert.ok(relayed.includes('localhost'), "the TLS ClientHello's SNI");
        assertNoSecretIn(relayed, [SERVER_KEY, CLIENT_KEY, USER_TOKEN, PROXY_PASSWORD], 'the tunnel');
        // Nor does the proxy's password show in what the gateway reported.
        await seen.events.until(0, (events) => events.filter((e) => e.type === 'request-end').length >= 2);
        const reported = JSON.stringify([seen.events.items, seen.lines.items]);
        assert.ok(
          !reported.includes(PROXY_PASSWORD) && !reported.includes(encodeURIComponent(PROXY_PASSWORD)),
        );
      });

      it('a WebSocket goes through the proxy to the wss: upstream, subprotocol intact', async () => {
        const handshakes = upstream.handshakes.mark();
        const socket = await openSocket(`${gateway.url.replace('http:', 'ws:')}${WS_PATH}`, PROTOCOLS);
        try {
          assert.equal(socket.protocol, 'rivet');
          const [seen] = upstream.handshakes.since(handshakes);
          assert.ok(seen);
          assert.equal(seen.url, WS_PATH);
          assert.equal(seen.headers['sec-websocket-protocol'], PROTOCOLS.join(','));
          kind.checkTunnel(tunnelOf(proxy, seen.remotePort), upstream.port);
          socket.send('"ping"');
          const [echoed] = (await once(socket, 'message')) as [Buffer];
          assert.equal(echoed.toString(), '"ping"');
        } finally {
          socket.close();
        }
        assertNoSecretIn(proxy.relayed(), [WS_TOKEN, SERVER_KEY], 'the tunnel');
      });

      it('an event stream stays live through the proxy', async () => {
        const mark = held.mark();
        const stream = openEventStream(`${gateway.url}${PROVIDER_PATH}?stream`, CLIENT_KEY);
        const first = await within(stream.firstChunk, 5000, 'the first event while the stream is open');
        assert.match(first, /message_start/);
        const [hold] = await held.until(mark, (items) => items.length === 1);
        kind.checkTunnel(tunnelOf(proxy, hold!.recorded.remotePort), upstream.port);
        hold!.res.end('data: [DONE]\n\n');
        const { status, text } = await within(stream.all, 5000, 'the end of the stream');
        assert.equal(status, 200);
        assert.equal(text, 'event: message_start\ndata: {"n":1}\n\ndata: [DONE]\n\n');
      });

      it("a client's abort ends the upstream call on the far side of the proxy", async () => {
        const mark = held.mark();
        const stream = openEventStream(`${gateway.url}${PROVIDER_PATH}?stream`, CLIENT_KEY);
        await within(stream.firstChunk, 5000, 'the first event');
        const [hold] = await held.until(mark, (items) => items.length === 1);
        stream.abort();
        // The upstream never ends this stream itself: only the abort, relayed, closes it.
        await within(hold!.recorded.closed, 5000, "the upstream's side of the call to close");
      });
    });
  }
}

describe('through an http CONNECT proxy to a plain http upstream', () => {
  it('HTTP and WebSocket traffic is tunnelled with CONNECT too, never sent to the proxy as a request', async () => {
    const proxy = await startHttpProxy();
    const upstream = await startWebSocketUpstream();
    const router = ampRouter({ upstream: upstream.url, upstreamKey: SERVER_KEY, upstreamProxy: proxy.url });
    const gateway = await startGatewayApp(EXPRESS_VERSIONS[1]![1], router);
    try {
      const received = upstream.record();
      const provider = await send(`${gateway.url}${PROVIDER_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${CLIENT_KEY}` },
        body: '{}',
      });
      assert.equal(provider.status, 200);
      const management = await send(`${gateway.url}/api/threads`, {
        headers: { authorization: `Bearer ${USER_TOKEN}` },
      });
      assert.equal(management.status, 200);
      const socket = await openSocket(`${gateway.url.replace('http:', 'ws:')}${WS_PATH}`, PROTOCOLS);
      assert.equal(socket.protocol, 'rivet');
      socket.close();

      const [providerCall, managementCall] = received.requests;
      assert.equal(providerCall?.headers.authorization, `Bearer ${SERVER_KEY}`);
      assert.equal(managementCall?.headers.authorization, `Bearer ${USER_TOKEN}`);
      const remotePorts = [
        providerCall!.remotePort,
        managementCall!.remotePort,
        upstream.handshakes.items[0]!.remotePort,
      ];
      for (const port of remotePorts)
        assert.equal(tunnelOf(proxy, port).target, `127.0.0.1:${upstream.port}`);
      assert.deepEqual(proxy.plainRequests, []);
      // The tap sees what a plain-HTTP tunnel carries: the server key, in the clear. (So the same
      // check finding nothing in an HTTPS tunnel means something.)
      assert.ok(proxy.relayed().includes(SERVER_KEY));
    } finally {
      await gateway.close();
      await upstream.close();
      await proxy.close();
    }
  });
});

describe('through a socks5 proxy to an IPv6 upstream', () => {
  it('the target arrives as an IPv6 address', async (t) => {
    const tls = await tlsFixtures();
    let upstream: FakeUpstream;
    try {
      upstream = await startUpstream(undefined, { tls: tls.leaf, host: '::1' });
    } catch {
      t.skip('no IPv6 loopback here');
      return;
    }
    try {
      const { tunnel } = await throughSocks5(tls, upstream, upstream.url);
      assert.equal(tunnel.addressType, 'ipv6');
      assert.equal(tunnel.target, `[::1]:${upstream.port}`);
    } finally {
      await upstream.close();
    }
  });
});

describe("upstreamProxy: 'env'", () => {
  let tls: TlsFixtures;
  let httpProxy: EgressProxy<ConnectTunnel>;
  let socksProxy: EgressProxy<SocksTunnel>;
  let httpsUpstream: FakeUpstream;
  let httpUpstream: FakeUpstream;
  let deadProxy: string;

  before(async () => {
    tls = await tlsFixtures();
    [httpProxy, socksProxy, httpsUpstream, httpUpstream] = await Promise.all([
      startHttpProxy(),
      startSocksProxy(),
      startUpstream(undefined, { tls: (await tlsFixtures()).leaf }),
      startUpstream(),
    ]);
    deadProxy = `http://127.0.0.1:${await closedPort()}`;
  });
  after(async () => {
    await Promise.all([httpProxy.close(), socksProxy.close(), httpsUpstream.close(), httpUpstream.close()]);
  });

  /**
   * Creates the middleware with exactly `variables` as the proxy environment, then puts the
   * environment back before any request: the variables count when the factory runs.
   */
  function routerWithEnvironment(
    variables: Partial<Record<(typeof PROXY_VARIABLES)[number], string>>,
    upstream: string,
  ) {
    const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const);
    for (const name of PROXY_VARIABLES) Reflect.deleteProperty(process.env, name);
    Object.assign(process.env, variables);
    try {
      return ampRouter({ upstream, upstreamKey: SERVER_KEY, upstreamCa: tls.ca.cert, upstreamProxy: 'env' });
    } finally {
      for (const [name, value] of saved) {
        if (value === undefined) Reflect.deleteProperty(process.env, name);
        else process.env[name] = value;
      }
    }
  }

  /** Sends one provider call; returns the proxy it went through (`direct` when none). */
  async function routeOf(
    router: AmpMiddleware,
    upstream: FakeUpstream,
  ): Promise<'http' | 'socks' | 'direct'> {
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      const res = await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 200, res.body);
      const { remotePort } = received.only();
      if (httpProxy.outboundPorts().includes(remotePort)) return 'http';
      if (socksProxy.outboundPorts().includes(remotePort)) return 'socks';
      return 'direct';
    } finally {
      await router.close();
      await app.close();
    }
  }

  const https = () => `https://localhost:${httpsUpstream.port}`;
  const cases: Array<{
    label: string;
    env: () => Partial<Record<(typeof PROXY_VARIABLES)[number], string>>;
    /** The upstream the call goes to: the https one, by name, unless a case says otherwise. */
    upstream?: () => [url: string, upstream: FakeUpstream];
    route: 'http' | 'socks' | 'direct';
  }> = [
    {
      label: 'HTTPS_PROXY, for an https upstream',
      env: () => ({ HTTPS_PROXY: httpProxy.url }),
      route: 'http',
    },
    {
      label: 'https_proxy wins over HTTPS_PROXY',
      env: () => ({ https_proxy: httpProxy.url, HTTPS_PROXY: deadProxy }),
      route: 'http',
    },
    {
      label: 'HTTP_PROXY, not HTTPS_PROXY, for an http upstream',
      env: () => ({ HTTP_PROXY: httpProxy.url, HTTPS_PROXY: deadProxy }),
      upstream: () => [httpUpstream.url, httpUpstream],
      route: 'http',
    },
    {
      label: 'HTTP_PROXY alone does not apply to an https upstream',
      env: () => ({ HTTP_PROXY: deadProxy, http_proxy: deadProxy }),
      route: 'direct',
    },
    {
      label: 'ALL_PROXY when no scheme-specific variable is set',
      env: () => ({ ALL_PROXY: socksProxy.url.replace(/^socks5:/, 'socks5h:') }),
      route: 'socks',
    },
    {
      label: 'HTTPS_PROXY wins over all_proxy',
      env: () => ({ all_proxy: socksProxy.url, HTTPS_PROXY: httpProxy.url }),
      route: 'http',
    },
    {
      label: 'no variable set: direct',
      env: () => ({}),
      route: 'direct',
    },
    {
      label: 'NO_PROXY=*',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: '*' }),
      route: 'direct',
    },
    {
      label: 'no_proxy naming the host',
      env: () => ({ HTTPS_PROXY: httpProxy.url, no_proxy: 'localhost' }),
      route: 'direct',
    },
    {
      label: 'NO_PROXY naming the domain with a leading dot (the domain itself included)',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: '.localhost' }),
      route: 'direct',
    },
    {
      label: 'NO_PROXY with a host:port entry for the upstream, in a comma and space separated list',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: `example.com, localhost:${httpsUpstream.port}` }),
      route: 'direct',
    },
    {
      label: 'NO_PROXY with an IP literal, for an upstream at that IP',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: 'example.com 127.0.0.1' }),
      upstream: () => [`https://127.0.0.1:${httpsUpstream.port}`, httpsUpstream],
      route: 'direct',
    },
    {
      label: 'NO_PROXY with the host on another port: proxied',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: `localhost:${httpsUpstream.port === 1 ? 2 : 1}` }),
      route: 'http',
    },
    {
      label: 'NO_PROXY naming other hosts, or a mere suffix of the name: proxied',
      env: () => ({ HTTPS_PROXY: httpProxy.url, NO_PROXY: 'example.com other.test,ocalhost' }),
      route: 'http',
    },
  ];

  it('a proxy variable that is not a proxy URL is refused by the factory, never echoing its credentials', () => {
    assert.throws(
      () => routerWithEnvironment({ HTTPS_PROXY: 'ftp://user:pw-secret-0d2@proxy.example:21' }, https()),
      (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError, String(error));
        assert.match(error.message, /upstreamProxy|HTTPS_PROXY/);
        assert.ok(!error.message.includes('pw-secret-0d2'), error.message);
        return true;
      },
    );
  });

  for (const { label, env, upstream, route } of cases) {
    it(`${label}: ${route === 'direct' ? 'direct' : `through the ${route} proxy`}`, async () => {
      const [url, target] = upstream?.() ?? [https(), httpsUpstream];
      const router = routerWithEnvironment(env(), url);
      assert.equal(await routeOf(router, target), route);
    });
  }
});

describe('an egress proxy that fails', () => {
  let tls: TlsFixtures;
  let upstream: FakeWebSocketUpstream;
  before(async () => {
    tls = await tlsFixtures();
    upstream = await startWebSocketUpstream(undefined, { tls: tls.leaf });
  });
  after(() => upstream.close());

  /**
   * Every group's request through `upstreamProxy` gets `502 amp_upstream_proxy_error`, and a
   * WebSocket upgrade an HTTP 502; returns the causes reported (all the same), having checked that
   * event and log line agree and that no secret shows anywhere.
   */
  async function failures(upstreamProxy: string, secrets: string[]): Promise<string> {
    const seen = observe();
    const router = ampRouter({
      upstream: `https://localhost:${upstream.port}`,
      upstreamKey: SERVER_KEY,
      upstreamCa: tls.ca.cert,
      upstreamProxy,
      ...seen.options,
    });
    const app = await listen((req, res) => router(req, res));
    attachUpgrade(app.server, router);
    const received = upstream.record();
    const causes = new Set<string>();
    try {
      for (const [path, headers] of [
        [PROVIDER_PATH, { authorization: `Bearer ${CLIENT_KEY}` }],
        ['/api/threads', { authorization: `Bearer ${USER_TOKEN}` }],
      ] as const) {
        const eventMark = seen.events.mark();
        const lineMark = seen.lines.mark();
        const res = await send(`${app.url}${path}`, { method: 'POST', headers, body: '{}' });
        assert.equal(res.status, 502, `${path}: ${res.body}`);
        assert.equal((res.json() as { error: string }).error, 'amp_upstream_proxy_error');
        const { event, line } = await seen.requestEnd(eventMark, lineMark);
        assert.equal(event.outcome, 'upstream-error');
        assert.equal(line.cause, event.cause);
        // The client is told the same cause as the operator.
        assert.equal((res.json() as { cause?: string }).cause, event.cause);
        causes.add(String(event.cause));
        for (const secret of secrets) assert.ok(!res.body.includes(secret), `the error body shows ${secret}`);
      }
      await assert.rejects(openSocket(`${app.url.replace('http:', 'ws:')}${WS_PATH}`, PROTOCOLS), /HTTP 502/);
      const reported = JSON.stringify([seen.events.items, seen.lines.items]);
      for (const secret of secrets)
        assert.ok(!reported.includes(secret), `an event or log line shows ${secret}`);
      assert.deepEqual(received.requests, []);
      assert.equal(causes.size, 1, `causes: ${[...causes].join(', ')}`);
      // A readiness probe goes the same way, and says the same.
      assert.deepEqual(await router.checkUpstream(), { ready: false, cause: [...causes][0] });
      return [...causes][0]!;
    } finally {
      await router.close();
      await app.close();
    }
  }

  it('wrong credentials (407): cause PROXY_407, the passwords shown nowhere', async () => {
    const proxy = await startHttpProxy({ credentials: { username: PROXY_USER, password: PROXY_PASSWORD } });
    try {
      const wrong = withCredentials(proxy.url, PROXY_USER, 'wrong-pass-c0ffee');
      assert.equal(await failures(wrong, ['wrong-pass-c0ffee', PROXY_PASSWORD]), 'PROXY_407');
      assert.equal(await failures(proxy.url, [PROXY_PASSWORD]), 'PROXY_407');
      assert.ok(proxy.tunnels.items.length > 0 && proxy.tunnels.items.every((t) => !t.established));
    } finally {
      await proxy.close();
    }
  });

  it('a proxy that never answers CONNECT: 504 after timeoutMs, cause PROXY_TIMEOUT', async () => {
    const silentConnections = new Set<Socket>();
    // Reads the CONNECT request and never answers it.
    const silent = createNetServer((socket) => {
      socket.resume();
      silentConnections.add(socket);
      socket.once('close', () => silentConnections.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const seen = observe();
    const router = ampRouter({
      upstream: `https://localhost:${upstream.port}`,
      upstreamKey: SERVER_KEY,
      upstreamCa: tls.ca.cert,
      upstreamProxy: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      timeoutMs: 300,
      ...seen.options,
    });
    const app = await listen((req, res) => router(req, res));
    try {
      const eventMark = seen.events.mark();
      const lineMark = seen.lines.mark();
      const res = await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 504);
      assert.equal((res.json() as { error: string }).error, 'amp_upstream_timeout');
      assert.equal((res.json() as { cause?: string }).cause, 'PROXY_TIMEOUT');
      const { event } = await seen.requestEnd(eventMark, lineMark);
      assert.equal(event.outcome, 'timeout');
      assert.equal(event.cause, 'PROXY_TIMEOUT');
      // The connection to the silent proxy is closed, not left open for good.
      const [connection] = silentConnections;
      if (connection) await within(once(connection, 'close'), 2000, 'the proxy connection to close');
      // A readiness probe through the silent proxy gives up too (after its own 3 s), and says why.
      assert.deepEqual(await within(router.checkUpstream(), 5000, 'the probe'), {
        ready: false,
        cause: 'PROXY_TIMEOUT',
      });
    } finally {
      await router.close();
      await app.close();
      silent.close();
    }
  });

  it('a CONNECT refused with 403: cause PROXY_403', async () => {
    const proxy = await startHttpProxy({ forbid: true });
    try {
      assert.equal(
        await failures(withCredentials(proxy.url, PROXY_USER, PROXY_PASSWORD), [PROXY_PASSWORD]),
        'PROXY_403',
      );
      assert.equal(proxy.tunnels.items.at(-1)?.target, `localhost:${upstream.port}`);
    } finally {
      await proxy.close();
    }
  });

  it('nothing listening on the proxy port: cause PROXY_ECONNREFUSED, for http and socks5 proxies', async () => {
    const port = await closedPort();
    assert.equal(
      await failures(`http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${port}`, [PROXY_PASSWORD]),
      'PROXY_ECONNREFUSED',
    );
    assert.equal(
      await failures(`socks5://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${port}`, [PROXY_PASSWORD]),
      'PROXY_ECONNREFUSED',
    );
  });

  it('a SOCKS server that refuses the connection, or the credentials: a PROXY_ cause', async () => {
    for (const refuse of [SOCKS_REPLY.notAllowed, SOCKS_REPLY.connectionRefused]) {
      const proxy = await startSocksProxy({ refuse });
      try {
        const cause = await failures(proxy.url.replace(/^socks5:/, 'socks5h:'), []);
        assert.match(cause, /^PROXY_/);
        assert.deepEqual(
          proxy.tunnels.items.map((t) => [t.target, t.reply]),
          Array(proxy.tunnels.items.length).fill([`localhost:${upstream.port}`, refuse]),
        );
      } finally {
        await proxy.close();
      }
    }
    const proxy = await startSocksProxy({ credentials: { username: PROXY_USER, password: PROXY_PASSWORD } });
    try {
      const wrong = withCredentials(proxy.url, PROXY_USER, 'wrong-pass-c0ffee');
      assert.match(await failures(wrong, ['wrong-pass-c0ffee', PROXY_PASSWORD]), /^PROXY_/);
      assert.match(await failures(proxy.url, [PROXY_PASSWORD]), /^PROXY_/);
      assert.deepEqual(proxy.tunnels.items, []);
      assert.ok(proxy.failedAuthentications >= 6);
    } finally {
      await proxy.close();
    }
  });

  it('a bad upstreamProxy is refused by the factory, naming upstreamProxy and never its credentials', () => {
    for (const value of [
      'not a url',
      'ftp://user:pw-secret-5e1@proxy.example:21',
      'socks4://user:pw-secret-5e1@127.0.0.1:1080',
      'http://user:pw-secret-5e1@/',
      'envx',
    ]) {
      assert.throws(
        () => ampRouter({ upstreamProxy: value }),
        (error: unknown) => {
          assert.ok(error instanceof AmpProxyConfigError, `${value}: ${String(error)}`);
          assert.match(error.option, /^upstreamProxy/);
          assert.ok(!error.message.includes('pw-secret-5e1'), error.message);
          return true;
        },
        value,
      );
    }
  });
});

describe('reload with another upstreamProxy', () => {
  it('switching proxies back and forth many times keeps working, and piles nothing up on the server', async () => {
    const upstream = await startUpstream();
    const proxies = [await startHttpProxy(), await startSocksProxy()];
    const router = ampRouter({
      upstream: upstream.url,
      upstreamKey: SERVER_KEY,
      upstreamProxy: proxies[0]!.url,
    });
    const app = await listen((req, res) => router(req, res));
    try {
      assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
      const closeListeners = app.server.listenerCount('close');
      for (let round = 1; round <= 25; round++) {
        const proxy = proxies[round % 2]!;
        router.reload({ upstream: upstream.url, upstreamKey: SERVER_KEY, upstreamProxy: proxy.url });
        const tunnels = proxy.tunnels.items.length;
        assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
        assert.ok(proxy.tunnels.items.length > tunnels, `round ${round} went through the proxy it named`);
      }
      assert.equal(app.server.listenerCount('close'), closeListeners);
    } finally {
      await router.close();
      await app.close();
      await Promise.all(proxies.map((proxy) => proxy.close()));
      await upstream.close();
    }
  });

  it('new requests go through the new proxy; a stream under way finishes through the old one', async () => {
    const tls = await tlsFixtures();
    const { handler, held } = upstreamAnswers();
    const upstream = await startUpstream(handler, { tls: tls.leaf });
    const first = await startHttpProxy();
    const second = await startSocksProxy();
    const options = {
      upstream: `https://localhost:${upstream.port}`,
      upstreamKey: SERVER_KEY,
      upstreamCa: tls.ca.cert,
    } satisfies AmpProxyOptions;
    const router = ampRouter({ ...options, upstreamProxy: first.url });
    const app = await listen((req, res) => router(req, res));
    try {
      const received = upstream.record();
      // A finished call leaves a kept-alive connection through the first proxy in the pool.
      assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
      const mark = held.mark();
      const stream = openEventStream(`${app.url}${PROVIDER_PATH}?stream`, CLIENT_KEY);
      await within(stream.firstChunk, 5000, 'the first event');

      router.reload({ ...options, upstreamProxy: second.url.replace(/^socks5:/, 'socks5h:') });
      assert.equal((await send(`${app.url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' })).status, 200);
      assert.equal(
        (await send(`${app.url}/api/threads`, { headers: { authorization: 'Bearer u' } })).status,
        200,
      );

      const [hold] = await held.until(mark, (items) => items.length === 1);
      hold!.res.end('data: [DONE]\n\n');
      const { text } = await within(stream.all, 5000, 'the end of the stream');
      assert.equal(text, 'event: message_start\ndata: {"n":1}\n\ndata: [DONE]\n\n');

      const via = received.requests.map((r) =>
        first.outboundPorts().includes(r.remotePort)
          ? 'first'
          : second.outboundPorts().includes(r.remotePort)
            ? 'second'
            : 'direct',
      );
      assert.deepEqual(
        received.requests.map((r, i) => [r.url, via[i]]),
        [
          [PROVIDER_PATH, 'first'],
          [`${PROVIDER_PATH}?stream`, 'first'],
          [PROVIDER_PATH, 'second'],
          ['/api/threads', 'second'],
        ],
      );
    } finally {
      await router.close();
      await app.close();
      await first.close();
      await second.close();
      await upstream.close();
    }
  });

  it('requests that started before each of 100 reloads go the way they started; the new pool keeps its connection', async () => {
    const upstream = await startUpstream();
    const proxies = [await startHttpProxy(), await startSocksProxy()];
    // With modelMappings a provider call reaches the proxy only once its body is read: a call whose
    // headers came before a reload and its body after is one that started before the reload.
    const options = {
      upstream: upstream.url,
      upstreamKey: SERVER_KEY,
      modelMappings: [{ from: 'a', to: 'b' }],
    };
    const router = ampRouter({ ...options, upstreamProxy: proxies[0]!.url });
    const app = await listen((req, res) => router(req, res));
    const body = JSON.stringify({ model: 'a' });
    const call = (): Promise<number> =>
      send(`${app.url}${PROVIDER_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }).then((res) => res.status);
    const via = (remotePort: number): number =>
      proxies.findIndex((p) => p.outboundPorts().includes(remotePort));
    try {
      for (let round = 1; round <= 100; round++) {
        const [before, after] = [(round + 1) % 2, round % 2];
        const received = upstream.record();
        const late = request(`${app.url}${PROVIDER_PATH}`, {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
        const lateStatus = new Promise<number>((resolve, reject) => {
          late.on('response', (res) => res.resume().once('end', () => resolve(res.statusCode ?? 0)));
          late.on('error', reject);
        });
        const arrived = once(app.server, 'request');
        late.flushHeaders();
        await arrived;
        router.reload({ ...options, upstreamProxy: proxies[after]!.url });
        assert.equal(await call(), 200);
        late.end(body);
        assert.equal(await lateStatus, 200);
        assert.equal(await call(), 200);
        const [fresh, old, again] = received.requests;
        assert.deepEqual(
          [fresh, old, again].map((r) => r && via(r.remotePort)),
          [after, before, after],
          `round ${round}: each call goes through the proxy of the options it started with`,
        );
        assert.equal(
          again!.remotePort,
          fresh!.remotePort,
          `round ${round}: the new pool lost its connection`,
        );
      }
    } finally {
      await router.close();
      await app.close();
      await Promise.all(proxies.map((proxy) => proxy.close()));
      await upstream.close();
    }
  });
});

describe('the standalone gateway', () => {
  it('goes through HTTPS_PROXY from its environment; the start table and --print-config show the proxy, never its password', async () => {
    const tls = await tlsFixtures();
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    const proxy = await startHttpProxy({ credentials: { username: PROXY_USER, password: PROXY_PASSWORD } });
    const dir = await mkdtemp(join(tmpdir(), 'amp-egress-gateway-'));
    await writeFile(join(dir, 'package.json'), '{}');
    // upstreamCa as a file relative to the config file, which is not in the working directory.
    await mkdir(join(dir, 'conf'));
    await writeFile(join(dir, 'conf', 'ca.pem'), tls.ca.cert);
    await writeFile(
      join(dir, 'conf', 'amp.json'),
      JSON.stringify({ upstream: `https://localhost:${upstream.port}`, upstreamCa: { file: 'ca.pem' } }),
    );
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      HTTPS_PROXY: withCredentials(proxy.url, PROXY_USER, PROXY_PASSWORD),
      AMP_PROXY_UPSTREAM_KEY: SERVER_KEY,
    };
    const config = ['--config', 'conf/amp.json'];
    const proxyAddress = `127.0.0.1:${proxy.port}`;
    const gateway = startCli(dir, env, config);
    try {
      const url = await gateway.listening;
      assert.ok(
        gateway.output().includes(proxyAddress),
        `the start table names the proxy:\n${gateway.output()}`,
      );

      const received = upstream.record();
      const res = await send(`${url}${PROVIDER_PATH}`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 200, gateway.output());
      const seen = received.only();
      assert.equal(seen.headers.authorization, `Bearer ${SERVER_KEY}`);
      const tunnel = tunnelOf(proxy, seen.remotePort);
      assert.equal(tunnel.target, `localhost:${upstream.port}`);
      assert.equal(tunnel.proxyAuthorization, BASIC);
      assertNoSecretIn(proxy.relayed(), [SERVER_KEY], 'the tunnel');

      await gateway.stop();
      const output = gateway.output();
      assert.ok(
        !output.includes(PROXY_PASSWORD),
        `the gateway's output shows the proxy password:\n${output}`,
      );

      const { code, output: printed } = await runCli(dir, env, [...config, '--print-config']);
      assert.equal(code, 0, printed);
      assert.ok(printed.includes(proxyAddress), `--print-config names the proxy:\n${printed}`);
      assert.ok(!printed.includes(PROXY_PASSWORD), `--print-config shows the proxy password:\n${printed}`);
    } finally {
      await gateway.stop();
      await upstream.close();
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('through a socks5 proxy to a named upstream', () => {
  it('the gateway resolves the name and asks for the address (socks5h would send the name); the name is still verified', async (t) => {
    const { address } = await lookup('localhost');
    if (address !== '127.0.0.1') return t.skip(`localhost resolves to ${address} here`);
    const tls = await tlsFixtures();
    const upstream = await startUpstream(undefined, { tls: tls.leaf });
    try {
      const { tunnel, seen } = await throughSocks5(tls, upstream, `https://localhost:${upstream.port}`);
      assert.equal(tunnel.addressType, 'ipv4');
      assert.equal(tunnel.target, `127.0.0.1:${upstream.port}`);
      // The name was still verified against the certificate, and sent as SNI.
      assert.equal(seen.headers.host, `localhost:${upstream.port}`);
      assert.equal(
        upstream.connections.find((c) => c.remotePort === tunnel.outboundPort)?.servername,
        'localhost',
      );
    } finally {
      await upstream.close();
    }
  });
});
