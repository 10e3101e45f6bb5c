// WebSocket upgrades and framing (issue 9, section 1): an upgrade request that announces a body is
// refused with 400 and nothing reaches the upstream; an upgrade the upstream refuses (non-101)
// reaches the client without CORS permissions, and its upstream connection is never reused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { RawClient, exchangeRaw } from './support/raw-client.js';
import {
  ALICE,
  HOSTS,
  SECOND_BODY,
  assertAnswers,
  assertUpstreamReceived,
  gatewayOptions,
  groupCase,
  rawRequest,
  secondClientRequest,
  startGateway,
  type FramingGateway,
  type Host,
} from './support/raw-gateway.js';
import { chunked, headerValue, headerValues, type RawRequest } from './support/raw-http.js';
import {
  describeConnections,
  describeRequest,
  startRawUpstream,
  type RawReply,
  type RawUpstream,
} from './support/raw-upstream.js';

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: upstream.test\r\nX-Smuggled: yes\r\n\r\n';

/** Upgrade routes of two groups: actors (the user's token) and provider (the server key). */
const UPGRADE_ROUTES = [
  {
    group: 'actors',
    target: '/actors/gateway/threadActor/websocket/',
    authorization: 'Bearer user-token-alice',
  },
  { group: 'provider', target: '/api/provider/openai/v1/realtime', authorization: `Bearer ${ALICE.key}` },
] as const;

function upgradeRequest(target: string, authorization: string, label: string, extra = '', body = ''): string {
  return rawRequest({
    method: 'GET',
    target,
    authorization,
    label,
    headers:
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
      `Sec-WebSocket-Key: ${WS_KEY}\r\n${extra}`,
    body,
  });
}

/** Switches protocols for WebSocket upgrades (then echoes), answers everything else as usual. */
function switching(request: RawRequest, connection: Parameters<typeof describeRequest>[1]): RawReply {
  if (headerValue(request, 'upgrade')?.toLowerCase() !== 'websocket')
    return describeRequest(request, connection);
  const key = headerValue(request, 'sec-websocket-key') ?? '';
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  return {
    status: 101,
    reason: 'Switching Protocols',
    headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Accept': accept },
  };
}

async function withUpgradeGateway(
  host: Host,
  reply: (request: RawRequest, connection: Parameters<typeof describeRequest>[1]) => RawReply,
  run: (upstream: RawUpstream, gateway: FramingGateway) => Promise<void>,
): Promise<void> {
  const upstream = await startRawUpstream({ reply });
  const gateway = await startGateway(host, gatewayOptions(upstream.url), { upgrades: true });
  try {
    await run(upstream, gateway);
  } finally {
    await gateway.close();
    await upstream.close();
  }
}

const BODY_VARIANTS = [
  { name: 'Content-Length: 5 and 5 bytes', headers: 'Content-Length: 5\r\n', body: 'hello' },
  {
    name: 'a Content-Length body that is a complete request',
    headers: `Content-Length: ${SMUGGLED.length}\r\n`,
    body: SMUGGLED,
  },
  {
    name: 'Transfer-Encoding: chunked with a body',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked(['hello']),
  },
  { name: 'Transfer-Encoding: chunked, empty', headers: 'Transfer-Encoding: chunked\r\n', body: chunked([]) },
  {
    name: 'Transfer-Encoding: chunked hiding a request',
    headers: 'Transfer-Encoding: chunked\r\n',
    body: chunked([SMUGGLED]),
  },
  {
    name: 'Transfer-Encoding: gzip, chunked',
    headers: 'Transfer-Encoding: gzip, chunked\r\n',
    body: chunked(['hello']),
  },
];

for (const host of HOSTS) {
  describe(`WebSocket upgrades that announce a body (${host})`, { concurrency: 8 }, () => {
    for (const route of UPGRADE_ROUTES) {
      it(`an upgrade without a body is forwarded, framed, and switched (${route.group}; the control case)`, () =>
        withUpgradeGateway(host, switching, async (upstream, gateway) => {
          const client = await RawClient.open(gateway.port);
          try {
            client.write(upgradeRequest(route.target, route.authorization, 'upgrade'));
            const response = await client.response();
            assert.equal(response.status, 101, response.raw);
            client.write('ping');
            await upstream.waitUntil(
              () => upstream.connections[0]?.bytes.includes('ping') === true,
              'the tunnel',
            );
          } finally {
            client.destroy();
          }
          const connection = upstream.connections[0]!;
          const parsed = connection.parse();
          assert.deepEqual(
            [parsed.error, parsed.leftover.length, parsed.requests.length],
            [undefined, 0, 1],
            describeConnections(upstream.connections),
          );
          assert.equal(parsed.requests[0]!.body.length, 0);
          assert.equal(connection.bytes.subarray(connection.upgradedAt).toString(), 'ping');
        }));

      for (const variant of BODY_VARIANTS) {
        it(`${route.group} upgrade with ${variant.name}: 400, nothing upstream`, () =>
          withUpgradeGateway(host, switching, async (upstream, gateway) => {
            const response = await exchangeRaw(
              gateway.port,
              upgradeRequest(route.target, route.authorization, 'with-body', variant.headers, variant.body),
            ).catch((error: Error) => {
              throw new Error(`${error.message}\n${describeConnections(upstream.connections)}`);
            });
            assert.equal(response.status, 400, `an upgrade with a body must be refused: ${response.raw}`);
            // Node's parser lets all of these through to the upgrade listener: the refusal is ours.
            assert.equal((response.json() as { error: string }).error, 'amp_bad_request', response.raw);
            // Then a plain request on the same gateway: the only thing the upstream ever sees.
            const group = groupCase(route.group);
            assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
            assertUpstreamReceived(upstream, group.target, [
              { label: 'second', method: 'POST', body: SECOND_BODY, authorization: group.bob.upstream },
            ]);
          }));
      }
    }
  });

  describe(`an upgrade the upstream refuses (${host})`, { concurrency: 4 }, () => {
    const refusing = (request: RawRequest, connection: Parameters<typeof describeRequest>[1]): RawReply =>
      headerValue(request, 'upgrade') === undefined
        ? describeRequest(request, connection)
        : {
            status: 403,
            reason: 'Forbidden',
            headers: {
              'Content-Type': 'application/json',
              'Access-Control-Allow-Origin': '*',
              'Access-Control-Allow-Credentials': 'true',
            },
            body: '{"error":"no upgrade for you"}',
          };

    for (const group of [groupCase('actors'), groupCase('management')]) {
      const target = group.group === 'actors' ? '/actors/gateway/threadActor/websocket/' : '/api/some-ws';
      const refuseUpgrade = async (gateway: FramingGateway) => {
        const client = await RawClient.open(gateway.port);
        try {
          client.write(upgradeRequest(target, group.alice.sent, 'refused-upgrade'));
          const response = await client.finalResponse();
          assert.equal(response.status, 403, response.raw);
          return response;
        } finally {
          client.destroy();
        }
      };

      it(`${group.group}: the client gets the upstream's status without Access-Control-*`, () =>
        withUpgradeGateway(host, refusing, async (_upstream, gateway) => {
          const response = await refuseUpgrade(gateway);
          assert.deepEqual(
            response.headers.filter(([name]) => name.toLowerCase().startsWith('access-control-')),
            [],
            `the upstream's CORS permissions reached the client: ${response.raw}`,
          );
        }));

      it(`${group.group}: the upstream connection of the refused upgrade is closed, never reused`, () =>
        withUpgradeGateway(host, refusing, async (upstream, gateway) => {
          await refuseUpgrade(gateway);
          const refused = upstream.connections[0]!;
          assert.deepEqual(
            refused.requests.map((request) => headerValues(request, 'x-case')),
            [['refused-upgrade']],
          );
          assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
          const second = upstream
            .arrivals()
            .find(({ request }) => headerValue(request, 'x-case') === 'second')!;
          assert.notEqual(
            second.connection,
            refused,
            `the connection of a refused upgrade went back to the pool\n${describeConnections(upstream.connections)}`,
          );
          await upstream.waitForClose(refused);
        }));
    }
  });
}
