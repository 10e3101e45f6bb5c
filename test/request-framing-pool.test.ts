// The shared upstream pool (issue 9, section 1): a connection goes back to the pool only after a
// request fully written and a response fully read; connections that carry the server key are not
// shared with other groups; bodies a host parser consumed, pipelined requests and refused
// preflights leave the upstream byte stream exactly framed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AmpProxyOptions } from '../src/index.js';
import { RawClient, exchangeRaw } from './support/raw-client.js';
import {
  HOSTS,
  SECOND_BODY,
  assertAnswers,
  assertUpstreamReceived,
  gatewayOptions,
  groupCase,
  rawRequest,
  secondClientRequest,
  startGateway,
  type ExpectedRequest,
  type FramingGateway,
  type GroupCase,
  type Host,
} from './support/raw-gateway.js';
import { chunked, headerValue, headerValues, parseRequestStream } from './support/raw-http.js';
import {
  describeConnections,
  startRawUpstream,
  summarise,
  type RawConnection,
  type RawUpstream,
  type RawUpstreamOptions,
} from './support/raw-upstream.js';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: upstream.test\r\nX-Smuggled: yes\r\n\r\n';

interface Setup {
  upstream: RawUpstream;
  gateway: FramingGateway;
}

async function withGateway(
  host: Host,
  {
    upstream: upstreamOptions,
    options,
    bodyParser,
  }: {
    upstream?: RawUpstreamOptions;
    options?: AmpProxyOptions;
    bodyParser?: boolean;
  },
  run: (setup: Setup) => Promise<void>,
): Promise<void> {
  const upstream = await startRawUpstream(upstreamOptions);
  const gateway = await startGateway(host, gatewayOptions(upstream.url, options), { bodyParser });
  try {
    await run({ upstream, gateway });
  } finally {
    await gateway.close();
    await upstream.close();
  }
}

function labelOf(request: { headers: readonly (readonly [string, string])[] }): string | undefined {
  return headerValue(request, 'x-case');
}

/** The connection the request labelled `label` arrived on. */
function connectionOf(upstream: RawUpstream, label: string): RawConnection {
  const arrival = upstream.arrivals().find(({ request }) => labelOf(request) === label);
  assert.ok(
    arrival,
    `the ${label} request never reached the upstream\n${describeConnections(upstream.connections)}`,
  );
  return arrival.connection;
}

/** A connection's bytes are exactly these requests, whole, and nothing else. */
function assertConnectionCarries(
  upstream: RawUpstream,
  connection: RawConnection,
  labels: readonly string[],
): void {
  const parsed = connection.parse();
  const dump = `\n${describeConnections(upstream.connections)}`;
  assert.equal(parsed.error, undefined, `connection ${connection.id}: ${parsed.error}${dump}`);
  assert.equal(parsed.leftover.length, 0, `connection ${connection.id} has leftover bytes${dump}`);
  assert.deepEqual(
    parsed.requests.map((request) => labelOf(request) ?? summarise(request)),
    labels,
    `connection ${connection.id}${dump}`,
  );
}

function secondOnFreshConnection(upstream: RawUpstream, previous: RawConnection, why: string): void {
  const second = connectionOf(upstream, 'second');
  assert.notEqual(
    second,
    previous,
    `${why}: the next request must arrive on a new upstream connection\n${describeConnections(upstream.connections)}`,
  );
  assertConnectionCarries(upstream, second, ['second']);
}

for (const host of HOSTS) {
  describe(`upstream connections that end early are not reused (${host})`, () => {
    for (const group of [groupCase('management'), groupCase('provider')]) {
      it(`an upstream that answers before the request body was sent (${group.group}): its connection is not reused`, () =>
        withGateway(
          host,
          {
            upstream: {
              earlyReply: (head) =>
                labelOf(head) === 'early'
                  ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{"case":"early"}' }
                  : undefined,
            },
          },
          async ({ upstream, gateway }) => {
            const client = await RawClient.open(gateway.port);
            try {
              client.write(
                rawRequest({
                  target: group.target,
                  authorization: group.alice.sent,
                  label: 'early',
                  headers: 'Content-Length: 10\r\n',
                  body: 'hello',
                }),
              );
              assertAnswers(await client.finalResponse(), 'early');
              // The rest of the body, after the answer: the gateway may drop it or send it on.
              client.write('world');
              const early = upstream.connections[0];
              assert.ok(early, 'the early request never reached the upstream');
              await upstream.waitUntil(
                () => early.closed || early.requests.length > 0,
                'the early request to complete upstream, or its connection to close',
              );
              assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
              secondOnFreshConnection(upstream, early, 'the upstream answered before the body was sent');
              await upstream.waitForClose(early);
            } finally {
              client.destroy();
            }
          },
        ));
    }

    const partialBodies = [
      { name: 'Content-Length', method: 'POST', headers: 'Content-Length: 10\r\n', body: 'hello' },
      { name: 'chunked', method: 'POST', headers: 'Transfer-Encoding: chunked\r\n', body: '5\r\nhello\r\n' },
      {
        name: 'chunked DELETE',
        method: 'DELETE',
        headers: 'Transfer-Encoding: chunked\r\n',
        body: '5\r\nhello\r\n',
      },
    ];
    for (const partial of partialBodies) {
      it(`a client that aborts mid-body (${partial.name}): the upstream connection is closed, not reused`, () =>
        withGateway(host, {}, async ({ upstream, gateway }) => {
          const group = groupCase('management');
          const client = await RawClient.open(gateway.port);
          client.write(
            rawRequest({
              method: partial.method,
              target: group.target,
              authorization: group.alice.sent,
              label: 'aborted',
              headers: partial.headers,
              body: partial.body,
            }),
          );
          await upstream.waitUntil(
            () => upstream.connections[0]?.bytes.includes('hello') === true,
            'the partial body to reach the upstream',
          );
          const aborted = upstream.connections[0]!;
          client.destroy();
          await upstream.waitForClose(aborted);
          assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
          secondOnFreshConnection(upstream, aborted, 'the client aborted mid-body');
        }));
    }
  });

  describe(`connections that carry the server key are not shared with other groups (${host})`, () => {
    const provider = groupCase('provider');

    async function sendInOrder(
      gateway: FramingGateway,
      steps: ReadonlyArray<[GroupCase, string]>,
    ): Promise<void> {
      for (const [group, label] of steps) {
        const response = await exchangeRaw(
          gateway.port,
          rawRequest({
            target: group.target,
            authorization: group.bob.sent,
            label,
            headers: `Content-Length: ${SECOND_BODY.length}\r\n`,
            body: SECOND_BODY,
          }),
        );
        assertAnswers(response, label);
      }
    }

    it('two provider requests in a row share the pooled connection (the pool works)', () =>
      withGateway(host, {}, async ({ upstream, gateway }) => {
        await sendInOrder(gateway, [
          [provider, 'one'],
          [provider, 'two'],
        ]);
        assert.equal(connectionOf(upstream, 'one'), connectionOf(upstream, 'two'));
        assertConnectionCarries(upstream, connectionOf(upstream, 'one'), ['one', 'two']);
      }));

    for (const other of [groupCase('management'), groupCase('actors'), groupCase('browser')]) {
      for (const order of ['provider first', `${other.group} first`] as const) {
        it(`provider (inject) and ${other.group}, ${order}: never the same upstream connection`, () =>
          withGateway(host, {}, async ({ upstream, gateway }) => {
            const steps: Array<[GroupCase, string]> = [
              [provider, 'provider'],
              [other, 'other'],
            ];
            await sendInOrder(gateway, order === 'provider first' ? steps : steps.reverse());
            assert.notEqual(
              connectionOf(upstream, 'provider'),
              connectionOf(upstream, 'other'),
              `a connection that carries the server key was shared with ${other.group}\n${describeConnections(upstream.connections)}`,
            );
          }));
      }
    }

    it('a custom policy that injects the server key: its connection is not reused by another group', () =>
      withGateway(
        host,
        {
          options: {
            policies: {
              management: async (_req, context) => ({
                headers: { authorization: `Bearer ${await context.serverKey()}` },
              }),
            },
          },
        },
        async ({ upstream, gateway }) => {
          await sendInOrder(gateway, [
            [groupCase('management'), 'keyed'],
            [groupCase('actors'), 'other'],
          ]);
          const keyed = upstream.arrivals().find(({ request }) => labelOf(request) === 'keyed')!;
          assert.deepEqual(headerValues(keyed.request, 'authorization'), [
            `Bearer ${gatewayOptions('').upstreamKey}`,
          ]);
          assert.notEqual(
            keyed.connection,
            connectionOf(upstream, 'other'),
            `a connection that carried the server key was reused by actors\n${describeConnections(upstream.connections)}`,
          );
        },
      ));
  });

  describe(`pipelined requests (${host})`, () => {
    const cases = [
      {
        name: 'two POSTs with Content-Length bodies',
        group: groupCase('management'),
        requests: [
          { method: 'POST', headers: 'Content-Length: 5\r\n', body: 'hello', forwarded: 'hello' },
          { method: 'POST', headers: 'Content-Length: 5\r\n', body: 'world', forwarded: 'world' },
        ],
      },
      {
        name: 'a DELETE whose chunked body is a complete request, then a GET',
        group: groupCase('actors'),
        requests: [
          {
            method: 'DELETE',
            headers: 'Transfer-Encoding: chunked\r\n',
            body: chunked([SMUGGLED]),
            forwarded: SMUGGLED,
          },
          { method: 'GET', headers: '', body: '', forwarded: '' },
        ],
      },
      {
        name: 'an OPTIONS with a chunked body, then a chunked POST',
        group: groupCase('provider'),
        requests: [
          {
            method: 'OPTIONS',
            headers: 'Transfer-Encoding: chunked\r\n',
            body: chunked([SMUGGLED]),
            forwarded: SMUGGLED,
          },
          {
            method: 'POST',
            headers: 'Transfer-Encoding: chunked\r\n',
            body: chunked(['wor', 'ld']),
            forwarded: 'world',
          },
        ],
      },
    ];
    for (const { name, group, requests } of cases) {
      it(`${name} in one write arrive as two correctly framed upstream requests (${group.group})`, () =>
        withGateway(host, {}, async ({ upstream, gateway }) => {
          const labels = requests.map((_, i) => `pipelined-${i + 1}`);
          const client = await RawClient.open(gateway.port);
          try {
            client.write(
              requests
                .map((request, i) =>
                  rawRequest({
                    ...request,
                    target: group.target,
                    authorization: group.alice.sent,
                    label: labels[i]!,
                  }),
                )
                .join(''),
            );
            for (const [i, request] of requests.entries()) {
              assertAnswers(
                await client.finalResponse({ method: request.method }),
                labels[i]!,
                request.method,
              );
            }
          } finally {
            client.destroy();
          }
          assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
          const expected: ExpectedRequest[] = requests.map((request, i) => ({
            label: labels[i]!,
            method: request.method,
            body: request.forwarded,
            authorization: group.alice.upstream,
          }));
          expected.push({
            label: 'second',
            method: 'POST',
            body: SECOND_BODY,
            authorization: group.bob.upstream,
          });
          assertUpstreamReceived(upstream, group.target, expected);
        }));
    }
  });

  describe(`refused preflights on identity routes forward nothing (${host})`, () => {
    for (const group of [groupCase('management'), groupCase('actors')]) {
      it(`OPTIONS ${group.group} with a chunked body that is a complete request: 403, nothing upstream`, () =>
        withGateway(host, {}, async ({ upstream, gateway }) => {
          const response = await exchangeRaw(
            gateway.port,
            rawRequest({
              method: 'OPTIONS',
              target: group.target,
              authorization: group.alice.sent,
              label: 'preflight',
              headers: 'Origin: https://evil.test\r\nTransfer-Encoding: chunked\r\n',
              body: chunked([SMUGGLED]),
            }),
            { method: 'OPTIONS' },
          );
          assert.equal(response.status, 403, response.raw);
          assert.equal((response.json() as { error: string }).error, 'amp_preflight_forbidden');
          assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
          assertUpstreamReceived(upstream, group.target, [
            { label: 'second', method: 'POST', body: SECOND_BODY, authorization: group.bob.upstream },
          ]);
        }));
    }
  });
}

for (const host of ['express 4', 'express 5'] as const) {
  describe(`a host body parser before the router (express.json(), ${host})`, () => {
    const json = '{"model":"m","n":[1,2]}';
    const cases = [
      {
        method: 'POST',
        group: groupCase('management'),
        headers: `Content-Length: ${json.length}\r\n`,
        body: json,
      },
      {
        method: 'POST',
        group: groupCase('provider'),
        headers: 'Transfer-Encoding: chunked\r\n',
        body: chunked([json]),
      },
      {
        method: 'DELETE',
        group: groupCase('management'),
        headers: 'Transfer-Encoding: chunked\r\n',
        body: chunked([json]),
      },
      {
        method: 'OPTIONS',
        group: groupCase('browser'),
        headers: 'Transfer-Encoding: chunked\r\n',
        body: chunked([json]),
      },
      {
        method: 'GET',
        group: groupCase('actors'),
        headers: `Content-Length: ${json.length}\r\n`,
        body: json,
      },
      {
        method: 'PATCH',
        group: groupCase('provider'),
        headers: `Expect: 100-continue\r\nContent-Length: ${json.length}\r\n`,
        body: json,
      },
    ];
    for (const { method, group, headers, body } of cases) {
      const framing = headers.includes('chunked') ? 'chunked' : 'Content-Length';
      it(`${method} ${group.group}, ${framing}${headers.includes('Expect') ? ', Expect: 100-continue' : ''}: the rebuilt body is framed by its own Content-Length`, () =>
        withGateway(host, { bodyParser: true }, async ({ upstream, gateway }) => {
          const client = await RawClient.open(gateway.port);
          try {
            const head = rawRequest({
              method,
              target: group.target,
              authorization: group.alice.sent,
              label: 'parsed',
              headers: `Content-Type: application/json\r\n${headers}`,
            });
            if (headers.includes('Expect')) {
              client.write(head);
              const interim = await client.response({ method });
              assert.equal(interim.status, 100, interim.raw);
              client.write(body);
            } else {
              client.write(head + body);
            }
            assertAnswers(await client.finalResponse({ method }), 'parsed', method);
          } finally {
            client.destroy();
          }
          assertAnswers(await exchangeRaw(gateway.port, secondClientRequest(group)), 'second');
          assertUpstreamReceived(upstream, group.target, [
            {
              label: 'parsed',
              method,
              body: JSON.stringify(JSON.parse(json)),
              authorization: group.alice.upstream,
            },
            { label: 'second', method: 'POST', body: SECOND_BODY, authorization: group.bob.upstream },
          ]);
          for (const { request } of upstream.arrivals()) {
            assert.equal(
              request.framing,
              'content-length',
              `${summarise(request)}: framed by ${request.framing}`,
            );
            assert.deepEqual(headerValues(request, 'content-length'), [String(request.body.length)]);
            assert.deepEqual(headerValues(request, 'content-encoding'), []);
          }
        }));
    }
  });
}

// The recorder's own parser, on the byte streams the suites above rely on it to judge.
describe('the raw upstream parser', () => {
  it('splits a smuggled body into the request it hides, and flags ambiguous framing', () => {
    const desynced = Buffer.from(
      'DELETE /a HTTP/1.1\r\nHost: u\r\nContent-Length: 0\r\n\r\n' +
        SMUGGLED +
        'POST /b HTTP/1.1\r\nHost: u\r\nContent-Length: 2\r\n\r\nok',
      'latin1',
    );
    assert.deepEqual(
      parseRequestStream(desynced).requests.map((r) => `${r.method} ${r.target}`),
      ['DELETE /a', 'GET /smuggled', 'POST /b'],
    );
    const unframed = parseRequestStream(
      Buffer.from('GET /a HTTP/1.1\r\nHost: u\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: u\r\n\r\n'),
    );
    assert.deepEqual(
      unframed.requests.map((r) => r.method),
      ['GET', 'helloGET'],
    );
    for (const bad of [
      'POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello',
      'POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: +5\r\n\r\nhello',
      'POST /a HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: chunked, identity\r\n\r\nhello',
      'POST /a HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /a HTTP/1.1\r\nHost: u\r\nContent-Length:\r\n 5\r\n\r\nhello',
      'POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n',
      'POST /a HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n',
    ]) {
      const parsed = parseRequestStream(Buffer.from(bad, 'latin1'));
      assert.ok(parsed.error, `should be a framing error: ${JSON.stringify(bad)}`);
      assert.equal(parsed.requests.length, 0);
    }
    const withTrailers = parseRequestStream(
      Buffer.from(
        `POST /a HTTP/1.1\r\nHost: u\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked(['he', 'llo'], 'X-T: 1\r\n')}`,
      ),
    );
    assert.equal(withTrailers.error, undefined);
    assert.equal(withTrailers.requests[0]!.body.toString(), 'hello');
    assert.deepEqual(withTrailers.requests[0]!.trailers, [['X-T', '1']]);
    const incomplete = 'POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: 5\r\n\r\nhel';
    const cut = parseRequestStream(Buffer.from(incomplete));
    assert.deepEqual([cut.requests.length, cut.leftover.toString(), cut.error], [0, incomplete, undefined]);
  });
});
