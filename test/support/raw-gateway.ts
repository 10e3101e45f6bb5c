import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ampRouter, attachUpgrade, type AmpMiddleware, type AmpProxyOptions } from '../../src/index.js';
import { EXPRESS_VERSIONS } from './apps.js';
import type { ClientRawResponse } from './raw-client.js';
import { headerValues } from './raw-http.js';
import { cleanArrivals, describeConnections, summarise, type RawUpstream } from './raw-upstream.js';
import { closeServer } from './upstream.js';

/**
 * The hosts the framing suites run the gateway in: both Express majors, a plain `node:http`
 * server, and one with `insecureHTTPParser` — there Node lets through requests its strict parser
 * would refuse, so the gateway's own refusal is what is tested.
 */
export const HOSTS = ['express 4', 'express 5', 'node:http', 'node:http (insecureHTTPParser)'] as const;
export type Host = (typeof HOSTS)[number];

export const SERVER_KEY = 'server-key-framing-0001';
export const ALICE = { key: 'gw-alice-framing-0002', upstreamKey: 'alice-amp-framing-0003', name: 'alice' };
export const BOB = { key: 'gw-bob-framing-0004', name: 'bob' };

export interface GroupCase {
  readonly group: 'provider' | 'management' | 'actors' | 'browser';
  /** The request target the client sends, which is also what the upstream must receive. */
  readonly target: string;
  /** The first client's credential header, and what the upstream must get in its place. */
  readonly alice: { readonly sent: string; readonly upstream: string };
  /** The second client's. */
  readonly bob: { readonly sent: string; readonly upstream: string };
}

/**
 * One route per group. On `inject` the first client (alice) spends her own mapped key and the
 * second (bob) the server key: an attacker's bytes prefixed to bob's request would ride on the
 * server key. On the passthrough groups each user's own token travels.
 */
export const GROUPS: readonly GroupCase[] = [
  {
    group: 'provider',
    target: '/api/provider/anthropic/v1/messages',
    alice: { sent: `Bearer ${ALICE.key}`, upstream: `Bearer ${ALICE.upstreamKey}` },
    bob: { sent: `Bearer ${BOB.key}`, upstream: `Bearer ${SERVER_KEY}` },
  },
  {
    group: 'management',
    target: '/api/internal?x',
    alice: { sent: 'Bearer user-token-alice', upstream: 'Bearer user-token-alice' },
    bob: { sent: 'Bearer user-token-bob', upstream: 'Bearer user-token-bob' },
  },
  {
    group: 'actors',
    target: '/actors/gateway/x',
    alice: { sent: 'Bearer user-token-alice', upstream: 'Bearer user-token-alice' },
    bob: { sent: 'Bearer user-token-bob', upstream: 'Bearer user-token-bob' },
  },
  {
    group: 'browser',
    target: '/threads/x',
    alice: { sent: 'Bearer user-token-alice', upstream: 'Bearer user-token-alice' },
    bob: { sent: 'Bearer user-token-bob', upstream: 'Bearer user-token-bob' },
  },
];

export function groupCase(group: GroupCase['group']): GroupCase {
  return GROUPS.find((entry) => entry.group === group)!;
}

/** The router options every framing test uses, pointed at `upstream`. */
export function gatewayOptions(upstream: string, extra: AmpProxyOptions = {}): AmpProxyOptions {
  return {
    upstream,
    upstreamKey: SERVER_KEY,
    clients: [ALICE, BOB],
    // A safety net: a request the upstream never sees the end of fails fast instead of hanging.
    timeoutMs: 3000,
    ...extra,
  };
}

export interface FramingGateway {
  readonly port: number;
  readonly server: Server;
  readonly router: AmpMiddleware;
  /** Requests that Node's parser accepted and handed to the server's `request` listeners. */
  readonly dispatched: number;
  close(): Promise<void>;
}

export interface GatewayHostOptions {
  /** Mount `express.json()` before the router (Express hosts only). */
  bodyParser?: boolean;
  /** Wire WebSocket upgrades with `attachUpgrade`. */
  upgrades?: boolean;
}

function listenerFor(host: Host, router: AmpMiddleware, bodyParser: boolean): RequestListener {
  const express = EXPRESS_VERSIONS.find(([name]) => name === host)?.[1];
  if (!express) {
    if (bodyParser) throw new Error('a body parser needs an Express host');
    return (req, res) => router(req, res);
  }
  const app = express();
  if (bodyParser) app.use(express.json());
  app.use(router);
  app.use((_req, res) => {
    res.statusCode = 404;
    res.end('not amp');
  });
  return app;
}

/** The gateway under test in `host`, listening on a loopback port. */
export async function startGateway(
  host: Host,
  options: AmpProxyOptions,
  { bodyParser = false, upgrades = false }: GatewayHostOptions = {},
): Promise<FramingGateway> {
  const router = ampRouter(options);
  const listener = listenerFor(host, router, bodyParser);
  const server =
    host === 'node:http (insecureHTTPParser)'
      ? createServer({ insecureHTTPParser: true }, listener)
      : createServer(listener);
  let dispatched = 0;
  server.on('request', () => dispatched++);
  if (upgrades) attachUpgrade(server, router);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    router,
    get dispatched() {
      return dispatched;
    },
    close: async () => {
      await router.close();
      await closeServer(server);
    },
  };
}

export interface RequestSpec {
  method?: string;
  target: string;
  /** The `Authorization` value, if any. */
  authorization?: string;
  /** Sent as `X-Case`: the upstream echoes it, and assertions find the request by it. */
  label: string;
  /** More header lines, each ending in CRLF. */
  headers?: string;
  body?: string;
  version?: 'HTTP/1.1' | 'HTTP/1.0';
}

/** The exact bytes of a request. */
export function rawRequest({
  method = 'POST',
  target,
  authorization,
  label,
  headers = '',
  body = '',
  version = 'HTTP/1.1',
}: RequestSpec): string {
  const auth = authorization === undefined ? '' : `Authorization: ${authorization}\r\n`;
  return `${method} ${target} ${version}\r\nHost: gateway.test\r\n${auth}X-Case: ${label}\r\n${headers}\r\n${body}`;
}

export const SECOND_BODY = '{"from":"bob"}';

/** The second client's request: bob's credentials, a small JSON body, labelled `second`. */
export function secondClientRequest(group: GroupCase): string {
  return rawRequest({
    target: group.target,
    authorization: group.bob.sent,
    label: 'second',
    headers: `Content-Type: application/json\r\nContent-Length: ${SECOND_BODY.length}\r\n`,
    body: SECOND_BODY,
  });
}

/** The upstream's answer names the request it answers: a client must get the answer to its own. */
export function assertAnswers(response: ClientRawResponse, label: string, method = 'POST'): void {
  assert.equal(
    response.status,
    200,
    `expected the upstream's 200 for the ${label} request, got ${response.raw}`,
  );
  if (method === 'HEAD') return;
  const answered = response.json() as { case: string | null };
  assert.equal(
    answered.case,
    label,
    `the ${label} request got the answer to another request: ${response.text}`,
  );
}

export interface ExpectedRequest {
  readonly label: string;
  readonly method: string;
  readonly body: string;
  readonly authorization: string;
}

/**
 * Every upstream connection parses into whole requests with nothing left over; together they are
 * exactly `expected`. The request labelled `second` (another client's, sent last) arrived last on
 * its connection, and on a connection an earlier request used when there was one: the pooled
 * connection was reused, and nothing was prepended to it.
 */
export function assertUpstreamReceived(
  upstream: RawUpstream,
  target: string,
  expected: readonly ExpectedRequest[],
): void {
  const dump = (): string => `\n${describeConnections(upstream.connections)}`;
  const received = cleanArrivals(upstream);
  assert.deepEqual(
    received.map(({ request }) => summarise(request)).sort(),
    expected
      .map((want) => `${want.method} ${target} #${want.label} body=${JSON.stringify(want.body)}`)
      .sort(),
    `the upstream must receive exactly the requests the gateway accepted, each with its own body${dump()}`,
  );
  for (const want of expected) {
    const { request } = received.find(({ request }) => headerValues(request, 'x-case')[0] === want.label)!;
    assert.deepEqual(
      headerValues(request, 'authorization'),
      [want.authorization],
      `the ${want.label} request's Authorization${dump()}`,
    );
  }
  const second = received.find(({ request }) => headerValues(request, 'x-case')[0] === 'second');
  if (!second) return;
  assert.equal(
    second.index,
    second.of - 1,
    `the second client's request must be the last on its connection${dump()}`,
  );
  const earlier = new Set(
    received.filter((arrival) => arrival !== second).map(({ connection }) => connection),
  );
  if (earlier.size > 0) {
    assert.ok(
      earlier.has(second.connection),
      `the second client's request should reuse the pooled upstream connection of the first client${dump()}`,
    );
  }
}
