// Request framing across the shared upstream pool (issue 9, section 1): for every method, framing
// variant and route group, what the upstream receives on the wire — parsed from the raw TCP byte
// stream by a parser of our own, not Node's — must be exactly the requests the gateway accepted,
// and a second client's request on the same pooled connection must arrive intact.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { AmpProxyOptions } from '../src/index.js';
import { RawClient, exchangeRaw, type ClientRawResponse } from './support/raw-client.js';
import {
  GROUPS,
  HOSTS,
  SECOND_BODY,
  assertAnswers,
  assertUpstreamReceived,
  gatewayOptions,
  rawRequest,
  secondClientRequest,
  startGateway,
  type ExpectedRequest,
  type GroupCase,
  type Host,
} from './support/raw-gateway.js';
import { startHttpProxy, startSocksProxy, type EgressProxy } from './support/egress-proxies.js';
import { chunked } from './support/raw-http.js';
import { describeConnections, startRawUpstream } from './support/raw-upstream.js';

const METHODS = ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH'] as const;
type Method = (typeof METHODS)[number];

/** A complete request, sent as the *body* of another: if it is ever parsed as a request, it was smuggled. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: upstream.test\r\nX-Smuggled: yes\r\n\r\n';

/**
 * `forward`: valid framing, the gateway must forward it. `refuse`: no body length can be
 * determined safely, the gateway (or Node's parser) must answer 400. `either`: ambiguous framing
 * the gateway may refuse with 400, but if it forwards, the upstream must see exactly the body.
 */
type Expectation = 'forward' | 'either' | 'refuse';

interface Variant {
  readonly name: string;
  readonly version?: 'HTTP/1.0';
  /** Header lines, each ending in CRLF, after Host, Authorization and X-Case. */
  readonly headers: string;
  /** The bytes after the head. */
  readonly body: string;
  /** The body the upstream must receive when the request is forwarded. */
  readonly forwarded: string;
  readonly expect: Expectation;
  /** Send the head, wait for `100 Continue`, then the body. */
  readonly expectContinue?: boolean;
  /** The body is a second, pipelined request of the same client (see `trailingRequest`). */
  readonly trailing?: boolean;
}

const HELLO = 'hello';

function trailingRequest(group: GroupCase): string {
  return rawRequest({
    method: 'GET',
    target: group.target,
    authorization: group.alice.sent,
    label: 'trailing',
  });
}

const VARIANTS: readonly Variant[] = [
  {
    name: 'Content-Length',
    headers: 'Content-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'forward',
  },
  { name: 'Content-Length: 0', headers: 'Content-Length: 0\r\n', body: '', forwarded: '', expect: 'forward' },
  {
    name: 'chunked',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked(['he', 'llo']),
    forwarded: HELLO,
    expect: 'forward',
  },
  {
    name: 'chunked, with trailers',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked([HELLO], 'X-Trailer: t\r\n'),
    forwarded: HELLO,
    expect: 'forward',
  },
  {
    // CVE-2026-29057: http-proxy's deleteLength turns DELETE/OPTIONS + chunked into
    // Content-Length: 0 and still writes the body, which the upstream parses as a request.
    name: 'chunked body that is a complete request (CVE-2026-29057)',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked([SMUGGLED]),
    forwarded: SMUGGLED,
    expect: 'forward',
  },
  {
    name: 'Content-Length body that is a complete request',
    headers: `Content-Length: ${SMUGGLED.length}\r\n`,
    body: SMUGGLED,
    forwarded: SMUGGLED,
    expect: 'forward',
  },
  {
    name: 'neither Content-Length nor Transfer-Encoding, then a pipelined request',
    headers: '',
    body: '',
    forwarded: '',
    expect: 'forward',
    trailing: true,
  },
  {
    // The bytes after the head are the start of another request, never completed: Node waits for
    // the rest, and none of it may reach the upstream.
    name: 'neither Content-Length nor Transfer-Encoding, then an incomplete request',
    headers: '',
    body: 'POST /smuggled HTTP/1.1\r\nHost: upstream.test\r\nContent-Le',
    forwarded: '',
    expect: 'forward',
  },
  {
    name: 'Content-Length and Transfer-Encoding: chunked',
    headers: 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Connection: content-length',
    headers: 'Connection: content-length\r\nContent-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Connection: transfer-encoding',
    headers: 'Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Connection: keep-alive, Transfer-Encoding (smuggled body)',
    headers: 'Connection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([SMUGGLED]),
    forwarded: SMUGGLED,
    expect: 'either',
  },
  {
    name: 'Connection: host',
    headers: 'Connection: host\r\nContent-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'obs-fold in Content-Length',
    headers: 'Content-Length:\r\n 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'obs-fold in Transfer-Encoding',
    headers: 'Transfer-Encoding:\r\n chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'duplicate Content-Length, equal',
    headers: 'Content-Length: 5\r\nContent-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'duplicate Content-Length, different',
    headers: 'Content-Length: 5\r\nContent-Length: 6\r\n',
    body: 'hello!',
    forwarded: 'hello!',
    expect: 'refuse',
  },
  {
    name: 'Content-Length: +5',
    headers: 'Content-Length: +5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'refuse',
  },
  {
    name: 'Content-Length: 5, 5',
    headers: 'Content-Length: 5, 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Transfer-Encoding: gzip, chunked',
    headers: 'Transfer-Encoding: gzip, chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    // Not chunked last: the length cannot be determined (RFC 9112 §6.3 rule 4).
    name: 'Transfer-Encoding: chunked, identity',
    headers: 'Transfer-Encoding: chunked, identity\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'refuse',
  },
  {
    name: 'Transfer-Encoding: chunked twice',
    headers: 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Transfer-Encoding: gzip and Transfer-Encoding: chunked fields',
    headers: 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'HTTP/1.0 with Content-Length',
    version: 'HTTP/1.0',
    headers: 'Content-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'forward',
  },
  {
    name: 'HTTP/1.0 without a body',
    version: 'HTTP/1.0',
    headers: '',
    body: '',
    forwarded: '',
    expect: 'forward',
  },
  {
    name: 'HTTP/1.0 with Transfer-Encoding: chunked',
    version: 'HTTP/1.0',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked([HELLO]),
    forwarded: HELLO,
    expect: 'either',
  },
  {
    name: 'Expect: 100-continue with Content-Length',
    headers: 'Expect: 100-continue\r\nContent-Length: 5\r\n',
    body: HELLO,
    forwarded: HELLO,
    expect: 'forward',
    expectContinue: true,
  },
  {
    name: 'Expect: 100-continue with chunked',
    headers: 'Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n',
    body: chunked([SMUGGLED]),
    forwarded: SMUGGLED,
    expect: 'forward',
    expectContinue: true,
  },
];

/** CORS preflights are refused on identity routes by design (403), so OPTIONS goes to the other groups. */
function groupsFor(method: Method): readonly GroupCase[] {
  return method === 'OPTIONS'
    ? GROUPS.filter((g) => g.group === 'provider' || g.group === 'browser')
    : GROUPS;
}

/** Runs one case on a fresh upstream and gateway; returns the upstream's port, to see how it was reached. */
async function runCase(
  t: TestContext,
  host: Host,
  group: GroupCase,
  method: Method,
  variant: Variant,
  options: AmpProxyOptions = {},
): Promise<number> {
  const upstream = await startRawUpstream();
  const gateway = await startGateway(host, gatewayOptions(upstream.url, options));
  try {
    const head = rawRequest({
      method,
      target: group.target,
      authorization: group.alice.sent,
      label: 'first',
      headers: variant.headers,
      ...(variant.version ? { version: variant.version } : {}),
    });
    const body = variant.trailing ? trailingRequest(group) : variant.body;
    const client = await RawClient.open(gateway.port);
    let response: ClientRawResponse;
    try {
      if (variant.expectContinue) {
        client.write(head);
        response = await client.response({ method });
        if (response.status === 100) {
          client.write(body);
          response = await client.finalResponse({ method });
        }
      } else {
        client.write(head + body);
        response = await client.finalResponse({ method });
      }
      if (variant.trailing && response.status === 200) {
        assertAnswers(response, 'first', method);
        assertAnswers(await client.finalResponse(), 'trailing', 'GET');
      }
    } finally {
      client.destroy();
    }

    const upstreamError = response.header('x-raw-upstream-error');
    assert.equal(
      upstreamError,
      undefined,
      `the upstream could not parse what the gateway sent it (${upstreamError}) and answered 400` +
        `\n${describeConnections(upstream.connections)}`,
    );
    const accepted: ExpectedRequest[] = [];
    if (response.status === 400) {
      assert.notEqual(variant.expect, 'forward', `a validly framed request was refused: ${response.raw}`);
      if (gateway.dispatched === 0) {
        // Node's parser refused it before any middleware ran: its bare 400 is all there is.
        assert.equal(response.header('content-type'), undefined, response.raw);
        t.diagnostic("refused by Node's own parser (bare 400) before any middleware ran");
      } else {
        const refusal = `the gateway's refusal must be its JSON 400 amp_bad_request: ${response.raw}`;
        assert.match(String(response.header('content-type')), /^application\/json/, refusal);
        if (method !== 'HEAD')
          assert.equal((response.json() as { error: string }).error, 'amp_bad_request', refusal);
        t.diagnostic('refused by the gateway: 400 amp_bad_request');
      }
    } else {
      assert.notEqual(
        variant.expect,
        'refuse',
        `this request has no determinable length and must be refused with 400, got ${response.raw}`,
      );
      if (!variant.trailing) assertAnswers(response, 'first', method);
      accepted.push({ label: 'first', method, body: variant.forwarded, authorization: group.alice.upstream });
      if (variant.trailing)
        accepted.push({ label: 'trailing', method: 'GET', body: '', authorization: group.alice.upstream });
      t.diagnostic('forwarded');
    }

    // A second client, other credentials: on the pooled connection, its request must arrive intact.
    assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
    accepted.push({
      label: 'second',
      method: 'POST',
      body: SECOND_BODY,
      authorization: group.bob.upstream,
    });
    assertUpstreamReceived(upstream, group.target, accepted);
    return Number(new URL(upstream.url).port);
  } finally {
    await gateway.close();
    await upstream.close();
  }
}

for (const host of HOSTS) {
  describe(`request framing through the pooled upstream (${host})`, { concurrency: 16 }, () => {
    for (const variant of VARIANTS) {
      for (const method of METHODS) {
        for (const group of groupsFor(method)) {
          it(`${method} ${group.group} · ${variant.name}`, async (t) => {
            await runCase(t, host, group, method, variant);
          });
        }
      }
    }
  });
}

// Through an egress proxy the tunnel relays the gateway's bytes as they are, so every guarantee
// above must hold unchanged: the same matrix on the provider group (the server key's connections)
// through an HTTP CONNECT proxy and a SOCKS5 proxy.
describe('request framing through an egress proxy (node:http)', { concurrency: 16 }, () => {
  const proxies: { kind: string; proxy?: EgressProxy }[] = [{ kind: 'CONNECT' }, { kind: 'socks5' }];
  before(async () => {
    proxies[0]!.proxy = await startHttpProxy();
    proxies[1]!.proxy = await startSocksProxy();
  });
  after(() => Promise.all(proxies.map(({ proxy }) => proxy?.close())));
  const provider = GROUPS.find((g) => g.group === 'provider')!;
  for (const entry of proxies) {
    for (const variant of VARIANTS) {
      for (const method of ['GET', 'DELETE', 'POST'] as const) {
        it(`${entry.kind} ${method} provider · ${variant.name}`, async (t) => {
          const upstreamPort = await runCase(t, 'node:http', provider, method, variant, {
            upstreamProxy: entry.proxy!.url,
          });
          assert.ok(
            entry.proxy!.tunnels.items.some((tunnel) => tunnel.port === upstreamPort),
            'the upstream was reached through the proxy',
          );
        });
      }
    }
  }
});
